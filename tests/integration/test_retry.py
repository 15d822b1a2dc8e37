"""Restarts, retries and priority order end to end: `task restart` links the new task to the old
one; `submit --retries` makes one linked task per attempt of a failing command and stops after
the last, never retries a cancelled task, and keeps exactly one retry across a kill -9 of the
master; an upstream-only peer (Register and FetchTask, Crawlab's own messages) fetches the lower
priority number first; bad input is refused before anything is stored.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_retry.py"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402
import harness  # noqa: E402
from h2raw import pb_fields, pb_string, pb_varint  # noqa: E402

REGISTERED = "registered with the master"
NO_TASK = "000000000000000000000000"


class Retry(harness.ClusterTest, harness.TaskOps):

    def start_cluster(self):
        self.c.start_master()
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        self.c.wait_status("online", names=["w1"])

    def attempts_of(self, first):
        """{attempt: task} of the tasks that retry task `first`, the first one included."""
        return {t["attempt"]: t for t in self.tasks().values()
                if t["id"] == first or t["retry_of"] == first}

    def refused(self, *args):
        """`submit ARGS` must exit 2 with one line on stderr; returns that line."""
        rc, out, err = self.c.cli("submit", *args)
        self.assertEqual((rc, out), (2, ""), err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        return err

    # ---- retries

    def test_a_failing_command_is_retried_n_times_then_stops(self):
        self.start_cluster()
        first = self.submit1("--retries=2", "--retry-delay=100ms", "--name=flaky", "--",
                             "sh", "-c", "echo try; exit 3")

        def third_ended():
            a = self.attempts_of(first)
            return a if 3 in a and a[3]["status"] in harness.FINAL_STATUSES else None
        a = harness.wait_until(third_ended, what="the third attempt of %s to end" % first)
        # The last attempt's end and any further attempt would be stored together: none came.
        self.assertEqual(sorted(a), [1, 2, 3], a)
        for n in (1, 2, 3):
            self.assertEqual(a[n]["status"], "error", a[n])
            self.assertEqual(a[n]["exit_code"], 3, a[n])
            self.assertEqual((a[n]["name"], a[n]["retries"], a[n]["retry_delay_ms"]),
                             ("flaky", 2, 100), a[n])
        self.assertEqual(a[1]["retry_of"], "")
        self.assertEqual((a[2]["retry_of"], a[3]["retry_of"]), (first, first))
        self.assertEqual(len({a[n]["id"] for n in a}), 3)
        self.assertGreater(a[3]["eligible_ms"], 0)
        self.assertEqual(self.logs(a[3]["id"]), ["try"])
        # The table names the first attempt by a prefix the commands accept.
        rc, out, err = self.c.cli("tasks")
        self.assertEqual(rc, 0, err)
        self.assertIn("attempt 3 of %s" % first[:8], out)

        # A cancelled task is not retried.
        sleeper = self.submit1("--retries=2", "--retry-delay=100ms", "--", "sleep", "30")
        self.wait_task_status(sleeper, "running")
        rc, out, err = self.c.cli("cancel", sleeper)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(sleeper, "cancelled")
        self.assertEqual([t["id"] for t in self.tasks().values() if t["retry_of"] == sleeper], [])

        # A finished one neither: the second attempt of this one succeeds, and is the last.
        counter = self.c.path("count")
        second_ok = self.submit1("--retries=3", "--retry-delay=100ms", "--", "sh", "-c",
                                 "n=$(cat %s 2>/dev/null || echo 0); echo $((n+1)) > %s; "
                                 "[ $n -ge 1 ]" % (counter, counter))

        def second_finished():
            a = self.attempts_of(second_ok)
            return a if 2 in a and a[2]["status"] == "finished" else None
        a = harness.wait_until(second_finished, what="the second attempt to finish")
        self.assertEqual(sorted(a), [1, 2], a)
        self.assertEqual(a[1]["status"], "error")

    def test_a_retry_survives_a_master_kill(self):
        """The failed end and its retry are one store transaction: once the end is visible the
        retry is stored too, so killing the master right then leaves exactly one, which runs
        after the restart (its wait is stored, not kept in memory)."""
        self.start_cluster()
        first = self.submit1("--retries=1", "--retry-delay=1s", "--", "sh", "-c", "exit 1")
        self.wait_task_status(first, "error")
        self.c.master.kill9()
        self.c.start_master()
        a = self.attempts_of(first)
        self.assertEqual(sorted(a), [1, 2], a)
        self.assertEqual(a[1]["status"], "error")
        second = a[2]["id"]
        self.wait_task_status(second, "error")
        a = self.attempts_of(first)
        self.assertEqual(sorted(a), [1, 2], a)  # retries=1: the second attempt is the last

    # ---- restart

    def test_restart_makes_a_linked_task_with_the_same_spec(self):
        self.start_cluster()
        old = self.submit1("--priority=3", "--name=again", "--timeout=1m", "--retries=1",
                           "--env=K=v", "--", "sh", "-c", "echo $K")
        self.wait_task_status(old, "finished")
        rc, out, err = self.c.cli("task", "restart", old[:8])
        self.assertEqual(rc, 0, err)
        new = out.strip()
        self.assertRegex(new, r"^[0-9a-f]{24}$")
        self.assertNotEqual(new, old)
        t = self.wait_task_status(new, "finished")
        o = self.task(old)
        self.assertEqual(t["restart_of"], old)
        self.assertEqual((t["retry_of"], t["attempt"]), ("", 1))
        for k in ("cmd", "name", "priority", "timeout_ms", "retries", "node_key"):
            self.assertEqual(t[k], o[k], k)
        self.assertEqual(self.logs(new), ["v"])
        rc, out, err = self.c.cli("tasks")
        self.assertIn("restart of %s" % old[:8], out)
        # Bad input: a malformed id is refused by the client, an unknown one by the master.
        rc, out, err = self.c.cli("task", "restart", "xyz")
        self.assertEqual(rc, 2, err)
        self.assertIn("TASK_ID", err)
        rc, out, err = self.c.cli("task", "restart", "abcdef")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("unknown task", err)

    # ---- priority, as an upstream-only peer sees it

    def test_an_upstream_peer_fetches_lower_priority_numbers_first(self):
        self.c.start_master()
        ids = {}
        for label, args in (("p9", ["--priority=9"]), ("p1a", ["--priority=1"]),
                            ("default", []), ("p5", ["--priority=5"]), ("p1b", ["--priority=1"])):
            ids[label] = self.submit1(*args, "--", "true")
        ts = self.tasks()
        self.assertEqual(ts[ids["default"]]["priority"], 5)
        self.assertEqual(ts[ids["p9"]]["priority"], 9)

        # Bad input is refused before anything is stored: exit 2, one line naming the field.
        self.assertIn("--priority", self.refused("--priority=0", "--", "true"))
        self.assertIn("--priority", self.refused("--priority=11", "--", "true"))
        self.assertIn("--retries", self.refused("--retries=101", "--", "true"))
        self.assertIn("--retry-delay", self.refused("--retry-delay=25h", "--", "true"))
        self.assertEqual(len(self.tasks()), 5)

        # A stock Crawlab worker: Register, then FetchTask until the queue is empty. It has a
        # runner for each task: the master hands a node no more tasks than its max_runners.
        key = harness.read_key(self.c.key_file)
        auth = [("authorization", key)]
        conn = h2raw.H2Conn(("127.0.0.1", self.c.port))
        self.addCleanup(conn.close)
        reg = pb_string(1, "upstream-1") + pb_string(2, "upstream") + pb_varint(3, len(ids))
        self.assertIsNotNone(conn.unary("/grpc.NodeService/Register", reg, auth))
        got = []
        for _ in range(len(ids) + 1):
            reply = conn.unary("/grpc.TaskService/FetchTask", pb_string(1, "upstream-1"), auth)
            self.assertIsNotNone(reply, "FetchTask failed after %r" % got)
            tid = pb_fields(reply).get(2, [b""])[0].decode()
            if tid in ("", NO_TASK):
                break
            got.append(tid)
        want = [ids[k] for k in ("p1a", "p1b", "default", "p5", "p9")]
        self.assertEqual(got, want, {v: k for k, v in ids.items()})


if __name__ == "__main__":
    harness.main()
