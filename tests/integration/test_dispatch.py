#!/usr/bin/python3
"""Dispatch by push: a task that becomes pending while a node that takes pushed tasks has room is
assigned to it at once and pushed with its spec after the commit; the worker starts it without
FetchTask or a claim (docs/protocol.md, "Subscribe"; docs/reliability.md, "No double run"). A
node that does not say it takes pushed tasks (an upstream Crawlab worker) still gets
TASK_AVAILABLE and fetches. A push that never arrives is settled like any assignment whose node
went away. Real processes on 127.0.0.1.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_dispatch.py"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy  # noqa: E402
import h2raw  # noqa: E402
import harness  # noqa: E402
from harness import find_node  # noqa: E402
from h2raw import pb_fields, pb_string, pb_varint  # noqa: E402

REGISTERED = "registered with the master"
TASK_AVAILABLE = 100
CANCEL = 102
NO_TASK = "000000000000000000000000"


def stream_messages(conn, sid):
    """The messages received so far on the open stream sid (protobuf bytes each), not consumed."""
    data, out = conn.replies.get(sid, b""), []
    while len(data) >= 5:
        n = struct.unpack(">I", data[1:5])[0]
        if len(data) < 5 + n:
            break
        out.append(data[5:5 + n])
        data = data[5 + n:]
    return out


class Dispatch(harness.ClusterTest, harness.TaskOps):

    def start_master(self, *extra):
        """The master logs at debug level: it says when it has answered a node's Resync, after
        which (and only after) tasks are pushed to the node."""
        return self.c.start_master(extra=["--log-level=debug"] + list(extra))

    def online(self, *workers):
        """Waits until every worker registered, shows online and has resynced; their keys."""
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers], timeout=30)
        keys = [find_node(ns, name=w.name)["key"] for w in workers]
        for k in keys:
            self.c.master.wait_log("node %s resynced" % k)
        return keys

    def pushed_total(self):
        rc, out, err = self.c.cli("metrics")
        self.assertEqual(rc, 0, err)
        for line in out.splitlines():
            if line.startswith("crawlab_tasks_pushed_total "):
                return int(line.split()[1])
        self.fail("no crawlab_tasks_pushed_total in %r" % out)

    def noting(self, ran, text="ran"):
        """A task that notes its id and node in ran, then prints text; returns its id."""
        return self.submit1("--", "sh", "-c", 'echo "$CRAWLAB_TASK_ID $CRAWLAB_NODE_KEY" >> %s; '
                            'echo %s' % (ran, text))

    def ran_lines(self, ran):
        with open(ran) as f:
            return f.read().splitlines()

    def push_into_silence(self):
        """A master, worker a online through a proxy that then goes silent, and a task submitted:
        the task is assigned to a and pushed, but a never hears of it. Returns (master, proxy,
        a, a's key, the file the task notes its run in, the task's id)."""
        m = self.start_master()
        p = faultproxy.FaultProxy(self.c.port).start()
        self.addCleanup(p.close)
        a = self.c.start_worker("a", master_addr=p.addr)
        ka, = self.online(a)
        p.blackhole()
        ran = self.c.path("ran.txt")
        return m, p, a, ka, ran, self.noting(ran)

    def test_an_idle_worker_starts_a_pushed_task_and_an_upstream_peer_still_fetches(self):
        self.start_master()
        a = self.c.start_worker("a")
        ka, = self.online(a)
        ran = self.c.path("ran.txt")
        tid = self.noting(ran)
        t = self.wait_task_status(tid, "finished", timeout=30)
        self.assertEqual(t["assigned_node"], ka, t)
        self.assertEqual(self.logs(tid), ["ran"])
        self.assertEqual(self.ran_lines(ran), ["%s %s" % (tid, ka)])
        # Started on the push: the worker says so, and the master counted the push.
        a.wait_log("task %s started (pid " % tid)
        self.assertEqual(a.count("task %s started" % tid), 1)
        self.assertIn(", pushed)", [ln for ln in a.lines() if "task %s started" % tid in ln][0])
        self.assertEqual(self.pushed_total(), 1)

        # An upstream Crawlab worker: Register (no takes_pushed_tasks), Subscribe, and on
        # TASK_AVAILABLE a FetchTask. a is stopped first so that the task can only go there.
        a.stop()
        self.c.wait_status("offline", keys=[ka], timeout=30)
        auth = [("authorization", harness.read_key(self.c.key_file))]
        conn = h2raw.H2Conn(("127.0.0.1", self.c.port))
        self.addCleanup(conn.close)
        reg = pb_string(1, "upstream-1") + pb_string(2, "upstream") + pb_varint(3, 1)
        self.assertIsNotNone(conn.unary("/grpc.NodeService/Register", reg, auth))
        sub = conn.open_stream("/grpc.NodeService/Subscribe", auth)
        conn.send_message(sub, pb_string(1, "upstream-1"), end=True)
        self.c.wait_status("online", keys=["upstream-1"], timeout=30)
        # The stream is attached once the master read its request: a heartbeat comes on it.
        harness.wait_until(lambda: stream_messages(conn, sub), what="a message on Subscribe")
        seen = len(stream_messages(conn, sub))
        up = self.submit1("--", "true")

        def task_available():
            for m in stream_messages(conn, sub)[seen:]:
                f = pb_fields(m)
                if f.get(1, [0])[0] == TASK_AVAILABLE:
                    return f
            return None
        f = harness.wait_until(task_available, what="TASK_AVAILABLE on the upstream stream")
        self.assertNotIn(100, f, "a task pushed to a node that did not ask for it: %r" % f)
        self.assertEqual(self.task(up)["status"], "pending")
        reply = conn.unary("/grpc.TaskService/FetchTask", pb_string(1, "upstream-1"), auth)
        self.assertIsNotNone(reply, "FetchTask failed")
        self.assertEqual(pb_fields(reply).get(2, [b""])[0].decode(), up)
        t = self.task(up)
        self.assertEqual((t["status"], t["assigned_node"]), ("assigned", "upstream-1"), t)
        self.assertEqual(self.pushed_total(), 1)

    def test_a_cancel_comes_on_the_node_stream_only_to_a_node_that_asked(self):
        # A raw peer per case: Register with or without takes_pushed_tasks (105) and
        # takes_pushed_cancels (106); Subscribe; Resync with no task. A task for it is pushed
        # (105) or fetched; the push or the FetchTask answer says where its cancel will come
        # (cancel_here, 102), and the cancel comes on the node stream (code CANCEL with the
        # task's id and force) only where 106 was sent. Elsewhere it waits for the task's stream.
        self.start_master()
        auth = [("authorization", harness.read_key(self.c.key_file))]
        for key, pushed, takes_cancels in (("raw-plain", True, False),
                                           ("raw-cancels", True, True),
                                           ("raw-fetches", False, True)):
            conn = h2raw.H2Conn(("127.0.0.1", self.c.port))
            self.addCleanup(conn.close)
            reg = (pb_string(1, key) + pb_string(2, key) + pb_varint(3, 1) +
                   pb_string(102, "%032x" % len(key)) + (pb_varint(105, 1) if pushed else b"") +
                   (pb_varint(106, 1) if takes_cancels else b""))
            self.assertIsNotNone(conn.unary("/grpc.NodeService/Register", reg, auth))
            sub = conn.open_stream("/grpc.NodeService/Subscribe", auth)
            conn.send_message(sub, pb_string(1, key), end=True)
            harness.wait_until(lambda: stream_messages(conn, sub), what="a message on Subscribe")
            self.assertIsNotNone(conn.unary("/grpc.NodeService/Resync", pb_string(1, key), auth))
            self.c.master.wait_log("node %s resynced" % key)
            tid = self.submit1("--node=%s" % key, "--", "sleep", "300")

            def message(code, field=None, value=None):
                for m in stream_messages(conn, sub):
                    f = pb_fields(m)
                    if f.get(1, [0])[0] == code and (field is None or field in f) and \
                            (value is None or f.get(field) == [value]):
                        return f
                return None
            if pushed:
                got = harness.wait_until(lambda: message(TASK_AVAILABLE, 100),
                                         what="the task pushed to %s" % key)
            else:
                harness.wait_until(lambda: message(TASK_AVAILABLE),
                                   what="TASK_AVAILABLE for %s" % key)
                reply = conn.unary("/grpc.TaskService/FetchTask", pb_string(1, key), auth)
                self.assertIsNotNone(reply, "FetchTask failed")
                got = pb_fields(reply)
                self.assertEqual(got.get(2, [b""])[0].decode(), tid)
            self.assertEqual(got.get(102, [0])[0], 1 if takes_cancels else 0, got)
            rc, out, err = self.c.cli("cancel", "--force", tid)
            self.assertEqual(rc, 0, err)
            if takes_cancels:
                f = harness.wait_until(lambda: message(CANCEL, 103, tid.encode()),
                                       what="CANCEL for %s on the node stream" % tid)
                self.assertEqual(f.get(104), [1], f)  # force
            else:
                self.c.master.wait_log("task %s: cancel recorded" % tid)
                self.assertIsNone(message(CANCEL))

    def test_a_node_that_holds_as_many_tasks_as_its_runners_fetches_nothing_more(self):
        # A worker fetches when a process ends, before its final status is through: the runner it
        # fetches for may have been given to a pushed task meanwhile. The master counts the node's
        # held tasks and hands it no more than max_runners, whichever way they went.
        self.start_master()
        auth = [("authorization", harness.read_key(self.c.key_file))]
        conn = h2raw.H2Conn(("127.0.0.1", self.c.port))
        self.addCleanup(conn.close)
        reg = pb_string(1, "upstream-1") + pb_string(2, "upstream") + pb_varint(3, 1)
        self.assertIsNotNone(conn.unary("/grpc.NodeService/Register", reg, auth))
        first, second = self.submit1("--", "true"), self.submit1("--", "true")

        def fetch():
            reply = conn.unary("/grpc.TaskService/FetchTask", pb_string(1, "upstream-1"), auth)
            self.assertIsNotNone(reply, "FetchTask failed")
            return pb_fields(reply).get(2, [b""])[0].decode()
        self.assertEqual(fetch(), first)
        self.assertIn(fetch(), ("", NO_TASK), "a second task for a node with one runner")
        self.assertEqual(self.task(second)["status"], "pending")

    def test_a_push_lost_with_its_killed_worker_runs_once_after_its_recovery(self):
        # Staging: a's connection goes silent (blackhole) before the submit, so the push leaves
        # the master but never reaches a; then a is killed with SIGKILL. The master cannot know
        # whether a started the task, so it does not queue it again on its own (it would end
        # abnormal after the grace, as a started one). a restarts (its own data dir, straight to
        # the master), lists no such task at its Resync, and the task goes back to the queue and
        # runs once, on a or on b.
        _, _, a, ka, ran, tid = self.push_into_silence()
        t = self.task(tid)
        self.assertEqual((t["status"], t["assigned_node"]), ("assigned", ka), t)
        harness.wait_until(lambda: self.pushed_total() == 1, what="the push to leave")
        a.kill9()
        b = self.c.start_worker("b")
        kb, = self.online(b)
        self.assertIn(self.task(tid)["status"], ("assigned", "node_disconnected"))
        a2 = self.c.start_worker("a", data_dir=a.data_dir)
        a2.wait_log(REGISTERED)
        t = self.wait_task_status(tid, "finished", timeout=30)
        self.assertIn(t["assigned_node"], (ka, kb), t)
        self.assertEqual(self.ran_lines(ran), ["%s %s" % (tid, t["assigned_node"])])
        self.assertEqual(a.count("task %s started" % tid), 0)
        self.assertIn("task %s returned to the queue: its node came back without it" % tid,
                      self.c.master.log())

    def test_a_push_lost_in_a_master_restart_is_not_lost(self):
        # The assignment is committed and the push leaves, but a never gets it (its connection
        # is silent): to a, the same as a master that died between its commit and its push. The
        # master is killed and restarted; a reconnects, lists no such task at its Resync, and
        # the task goes back to the queue and runs on a, once.
        m, p, a, ka, ran, tid = self.push_into_silence()
        self.assertEqual(self.task(tid)["status"], "assigned")
        m.kill9()
        registered = a.count(REGISTERED)
        p.pass_()
        self.start_master()  # same port, same data dir
        a.wait_log(REGISTERED, count=registered + 1, timeout=60)
        t = self.wait_task_status(tid, "finished", timeout=30)
        self.assertEqual(t["assigned_node"], ka, t)
        self.assertEqual(self.ran_lines(ran), ["%s %s" % (tid, ka)])
        self.assertEqual(a.count("task %s started" % tid), 1)
        self.assertIn("task %s returned to the queue: its node came back without it" % tid,
                      self.c.master.log())


if __name__ == "__main__":
    harness.main()
