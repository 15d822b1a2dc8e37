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
    """Each test in the containment the worker picks by itself (cgroup where it can)."""
    worker_flags = []

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

    def start(self, then="sleep 600"):
        self.c.start_master()
        w = self.c.start_worker("w1", extra=self.worker_flags)
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
        w2 = self.c.start_worker("w1", extra=self.worker_flags)
        w2.wait_log("registered with the master")
        t = self.wait_final([tid])[tid]
        self.assertEqual((t["status"], t["error"]), ("error", "worker restarted"), t)
        self.assert_all_dead()

    def test_a_second_worker_with_the_same_node_key_leaves_the_first_ones_tasks_alone(self):
        # Two data directories may name one node key (the master refuses the second worker, which
        # keeps trying): the second one's start must not take the first one's task cgroups for
        # what its own previous run left.
        self.worker_flags = self.worker_flags + ["--node-key=one-key-two-dirs"]
        w, tid = self.start()
        b = self.c.start_worker("b", extra=self.worker_flags)
        b.wait_log("ALREADY_EXISTS")
        self.assertTrue(all(self.alive(p) for p in self.escapees()),
                        "the second worker killed the first one's task")
        self.assertEqual(b.count("left by the previous run")
                         + b.count("what the previous run left"), 0)
        rc, out, err = self.c.cli("cancel", tid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.wait_final([tid])[tid]["status"], "cancelled")
        self.assert_all_dead()

    def test_nodes_json_says_which_containment_the_worker_uses(self):
        self.c.start_master()
        w = self.c.start_worker("w1", extra=self.worker_flags)
        w.wait_log("registered with the master")
        mode = "cgroup" if w.count("tasks run in cgroups") else "subreaper"
        if "--task-containment=subreaper" in self.worker_flags:
            self.assertEqual(mode, "subreaper")
        node = harness.find_node(self.c.nodes(), name="w1")
        self.assertEqual(node["containment"], mode, node)


class ContainAsSubreaper(Contain):
    """The same tests with the fallback forced: what a worker without a writable cgroup tree
    does."""
    worker_flags = ["--task-containment=subreaper"]


class TaskMaxPids(harness.ClusterTest, harness.TaskOps):

    def test_task_max_pids_caps_a_task_or_the_worker_refuses_to_start(self):
        self.c.start_master()
        w = self.c.start_worker("w1", extra=["--task-max-pids=20"])
        harness.wait_until(lambda: w.count("registered with the master") or not w.alive(),
                           what="the worker to register or exit")
        if not w.alive():
            # No pids controller for this worker: it says so and does not run tasks unbounded.
            self.assertNotEqual(w.wait_exit(), 0)
            self.assertEqual(w.count("cannot contain tasks in cgroups with a process limit"), 1,
                             w.log())
            return
        self.assertEqual(w.count("at most 20 processes each"), 1, w.log())
        # 40 sleepers in the background, each counted once forked: the kernel refuses the forks
        # past the limit, and sh gives up at the first refusal.
        count = self.c.path("forked")
        script = self.script("forks.sh", """
i=0
while [ $i -lt 40 ]; do
  sleep 30 &
  i=$((i + 1))
  echo $i > %s
done
echo all forked
""" % count)
        tid = self.submit1("--", "sh", script)
        self.wait_final([tid])
        self.assertNotIn("all forked", self.logs(tid))
        with open(count) as f:
            self.assertLess(int(f.read()), 20)


def extra_submit(test):
    return getattr(test, "submit_extra", [])


if __name__ == "__main__":
    harness.main()
