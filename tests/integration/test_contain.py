#!/usr/bin/python3
"""No escape: processes that leave a task's process group (setsid, a double fork, a bounded fork
bomb) die with the task -- on cancel, on timeout, when it ends, and when its worker restarts.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_contain.py"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

# Every escapee appends its pid to $PIDS, then sleeps long; the task's own shell waits for all of
# them to be recorded (the number is passed as $1) and then runs what it was given in $2.
ESCAPE = r"""
PIDS=%(pids)s
setsid sh -c 'echo $$ >> '$PIDS'; exec sleep 300' &
sh -c 'sh -c "echo \$\$ >> '$PIDS'; exec sleep 301" &' &
i=0
while [ $i -lt 8 ]; do
  ( setsid sh -c 'sh -c "echo \$\$ >> '$PIDS'; exec sleep 302" & sh -c "echo \$\$ >> '$PIDS'; exec sleep 303" &' & )
  i=$((i + 1))
done
while [ "$(wc -l < $PIDS)" -lt 18 ]; do sleep 0.05; done
echo escaped
%(then)s
"""
N_ESCAPEES = 18


class Contain(harness.ClusterTest, harness.TaskOps):

    def setUp(self):
        super().setUp()
        self.pids_file = self.c.path("escaped.pids")
        self.addCleanup(self.kill_escapees)

    def escapees(self):
        try:
            with open(self.pids_file) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def alive(self, pid):
        """True while pid is a live (not zombie) process that we recorded."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    def kill_escapees(self):
        """Cleanup by pid, whatever the test found."""
        for pid in self.escapees():
            if self.alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def start(self, then="sleep 600", extra=()):
        self.c.start_master()
        w = self.c.start_worker("w1", extra=list(extra))
        w.wait_log("registered with the master")
        script = self.script("escape.sh", ESCAPE % {"pids": self.pids_file, "then": then})
        tid = self.submit1(*extra_submit(self), "--", "sh", script)
        wait_until(lambda: len(self.escapees()) >= N_ESCAPEES,
                   what="%d escaped processes to record their pids" % N_ESCAPEES)
        self.assertTrue(all(self.alive(p) for p in self.escapees()), "escapees died too early")
        return w, tid

    def assert_all_dead(self):
        try:
            wait_until(lambda: not any(self.alive(p) for p in self.escapees()),
                       what="every escaped process to die")
        except harness.Timeout:
            raise AssertionError("still alive: %r" % [p for p in self.escapees() if self.alive(p)])

    def test_escapees_die_on_cancel(self):
        _, tid = self.start()
        rc, out, err = self.c.cli("cancel", tid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.wait_final([tid])[tid]["status"], "cancelled")
        self.assert_all_dead()

    def test_escapees_die_on_timeout(self):
        self.submit_extra = ["--timeout=3s"]
        _, tid = self.start()
        t = self.wait_final([tid])[tid]
        self.assertEqual((t["status"], t["error"]), ("error", "timeout"), t)
        self.assert_all_dead()

    def test_escapees_die_when_the_task_ends(self):
        _, tid = self.start(then="exit 0")
        self.assertEqual(self.wait_final([tid])[tid]["status"], "finished")
        self.assert_all_dead()

    def test_escapees_die_when_the_worker_restarts(self):
        w, tid = self.start()
        w.kill9()
        w.wait_exit()
        self.assertTrue(any(self.alive(p) for p in self.escapees()),
                        "nothing survived the worker's death: the test proves nothing")
        w2 = self.c.start_worker("w1")
        w2.wait_log("registered with the master")
        t = self.wait_final([tid])[tid]
        self.assertEqual((t["status"], t["error"]), ("error", "worker restarted"), t)
        self.assert_all_dead()


def extra_submit(test):
    return getattr(test, "submit_extra", [])


if __name__ == "__main__":
    harness.main()
