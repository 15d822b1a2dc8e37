#!/usr/bin/python3
"""Node registration, liveness, restarts, auth and shutdown: a real master and workers on
127.0.0.1. Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_nodes.py"""

import os
import resource
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402
import harness  # noqa: E402
from harness import find_node, read_key, status_of  # noqa: E402

REGISTERED = "registered with the master"
# How long a client stalls its call across the master's stop: longer than the 3 s every call got
# before --shutdown-grace was the master's (the fault's length, not a wait for an event).
STALL_S = 4.0


class Nodes(harness.ClusterTest, harness.TaskOps):

    def start_cluster(self, n):
        """A master and n workers w1..wn, all online; returns (master, [workers], [keys])."""
        m = self.c.start_master()
        workers = [self.c.start_worker("w%d" % i) for i in range(1, n + 1)]
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers])
        keys = [find_node(ns, name=w.name)["key"] for w in workers]
        return m, workers, keys

    def test_master_and_three_workers_register_and_show_online(self):
        m, workers, keys = self.start_cluster(3)
        self.assertEqual(len(set(keys)), 3, keys)
        ns = self.c.nodes()
        self.assertEqual(len(ns), 3, ns)
        for w, key in zip(workers, keys):
            self.assertEqual(read_key(os.path.join(w.data_dir, "node.key")), key)
            node = find_node(ns, key=key)
            self.assertEqual(node["status"], "online")
            self.assertEqual(node["name"], w.name)
            for field in ("last_seen_ms", "max_runners", "running", "version"):
                self.assertIn(field, node)
            m.wait_log("node %s (%s) online" % (key, w.name))

    def test_worker_killed_with_sigkill_shows_offline(self):
        m, workers, keys = self.start_cluster(2)
        workers[0].kill9()
        ns = self.c.wait_status("offline", keys=[keys[0]])
        self.assertEqual(status_of(ns, key=keys[1]), "online")
        m.wait_log("node %s (%s) offline" % (keys[0], workers[0].name))

    def test_master_sigkilled_and_restarted_gets_all_workers_back_without_restarting_them(self):
        m, workers, keys = self.start_cluster(3)
        pids = [w.pid for w in workers]
        m.kill9()
        # every worker notices, then comes back on its own
        for w in workers:
            w.wait_log("lost the connection")
        self.c.start_master()  # same port, same data dir
        for w in workers:
            w.wait_log(REGISTERED, count=2)
        ns = self.c.wait_status("online", keys=keys)
        self.assertEqual(sorted(n["key"] for n in ns), sorted(keys))
        for w, pid in zip(workers, pids):
            self.assertTrue(w.alive(), w)
            self.assertEqual(w.pid, pid)

    def test_wrong_auth_key_is_refused_and_the_worker_keeps_retrying(self):
        m, workers, keys = self.start_cluster(1)
        bad = self.c.path("wrong.key")
        with open(bad, "w") as f:
            f.write("0" * 64 + "\n")
        os.chmod(bad, 0o600)
        w = self.c.start_worker("intruder", key_file=bad, extra=["--log-level=debug"])
        # one warn line, then a debug line per further attempt
        w.wait_log("registration refused: UNAUTHENTICATED", count=3)
        m.wait_log("wrong auth key")
        self.assertTrue(w.alive(), w)
        ns = self.c.nodes()
        self.assertIsNone(find_node(ns, name="intruder"), ns)
        own_key = read_key(os.path.join(w.data_dir, "node.key"))
        self.assertIsNone(find_node(ns, key=own_key), ns)
        self.assertEqual([n["key"] for n in ns], keys)
        self.assertEqual(w.count(REGISTERED), 0)

    def test_same_node_key_from_another_machine_is_refused_and_same_machine_takes_over(self):
        m = self.c.start_master()
        key = "shared-node-key"
        a = self.c.start_worker("a", extra=["--node-key=%s" % key])
        a.wait_log(REGISTERED)
        self.c.wait_status("online", keys=[key])
        b = self.c.start_worker("b", extra=["--node-key=%s" % key])
        b.wait_log("ALREADY_EXISTS")
        self.assertTrue(b.alive(), b)
        ns = self.c.nodes()
        self.assertEqual(len(ns), 1, ns)
        self.assertEqual(ns[0]["status"], "online")
        self.assertEqual(ns[0]["name"], "a")
        self.assertEqual(b.count(REGISTERED), 0)
        self.assertEqual(a.count(REGISTERED), 1)
        self.assertTrue(a.alive(), a)
        # b out of the way, so that the restarted a is the only candidate for the key
        self.assertEqual(b.stop(), 0)
        a.kill9()
        a2 = self.c.start_worker("a", data_dir=a.data_dir, extra=["--node-key=%s" % key])
        a2.wait_log(REGISTERED)
        self.assertEqual(a2.count("ALREADY_EXISTS"), 0)
        ns = self.c.wait_status("online", keys=[key])
        self.assertEqual(find_node(ns, key=key)["name"], "a")

    def test_master_without_an_address_or_tls_listens_on_loopback_only(self):
        # No --listen, no TLS: the master must not offer its plaintext key exchange to the
        # network. The port comes from the environment, which names no address.
        self.c.port = harness.free_port()
        env = dict(os.environ, CRAWLAB_GRPC_SERVER_PORT=str(self.c.port))
        m = self.c.spawn("master", [self.c.bin, "--role=master",
                                    "--data-dir=%s" % self.c.master_dir], env=env)
        self.c.master = m
        m.wait_log("master listening on 127.0.0.1:%d (plaintext)" % self.c.port)
        self.assertEqual(m.count("without TLS"), 0)  # loopback: nothing travels the network
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)

    def test_sighup_is_logged_and_master_and_worker_keep_serving(self):
        m, workers, keys = self.start_cluster(1)
        w = workers[0]
        # twice each: the first signal must not have used up the handler either
        for n in (1, 2):
            m.signal(signal.SIGHUP)
            m.wait_log("SIGHUP: nothing to reload", count=n)   # fails at once if m died
            w.signal(signal.SIGHUP)
            w.wait_log("SIGHUP: nothing to reload", count=n)
        # both still serve: a task submitted now runs on that worker and is stored
        tid = self.submit1("--", "echo", "after sighup")
        t = self.wait_task_status(tid, "finished")
        self.assertEqual(t["assigned_node"], keys[0])
        self.assertEqual(self.logs(tid), ["after sighup"])
        self.assertTrue(m.alive(), m)
        self.assertTrue(w.alive(), w)
        self.assertEqual(self.c.nodes()[0]["status"], "online")
        self.assertEqual(w.count(REGISTERED), 1)

    def test_worker_with_a_name_the_master_would_refuse_exits_2_at_start(self):
        self.c.start_master()
        w = self.c.start_worker("w1", node_name="n" * 129)
        self.assertEqual(w.wait_exit(), 2)
        w.wait_log("--node-name: expected 1 to 128 bytes")

    def test_worker_with_a_key_file_the_flag_would_refuse_exits_2_at_start(self):
        self.c.start_master()
        bad = self.c.path("bad.key")
        with open(bad, "w") as f:
            f.write(harness.read_key(self.c.key_file) + "\nsecond line\n")
        w = self.c.start_worker("w1", key_file=bad)
        self.assertEqual(w.wait_exit(), 2)
        w.wait_log("the key must be printable ASCII without spaces")

    def test_sigterm_stops_master_and_worker_cleanly(self):
        m, workers, keys = self.start_cluster(2)
        # a connected worker
        w2 = workers[1]
        w2.signal(signal.SIGTERM)
        self.assertEqual(w2.wait_exit(timeout=10), 0)
        w2.wait_log("worker stopped")
        self.c.wait_status("offline", keys=[keys[1]])
        # the master, with a worker connected
        w1 = workers[0]
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(timeout=10), 0)
        m.wait_log("master stopped")
        harness.wait_until(
            lambda: w1.count("master asked to drain") or w1.count("lost the connection"),
            what="w1 to log a drain or a lost connection")
        # a worker whose master is gone
        self.assertTrue(w1.alive(), w1)
        w1.signal(signal.SIGTERM)
        self.assertEqual(w1.wait_exit(timeout=10), 0)
        w1.wait_log("worker stopped")

    # ---- the master's stop: what waits for news ends at once, calls in flight get the grace

    def test_master_sigterm_ends_followers_and_task_streams_at_once_whatever_its_grace(self):
        grace = ["--shutdown-grace=1h"]
        m = self.c.start_master(extra=grace)
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        tid = self.submit1("--", "sh", "-c", "while :; do echo tick; sleep 0.05; done")
        self.wait_tasks([tid], lambda t: t["status"] == "running" and t["log_lines"] >= 1, 30,
                        "task %s to run and print" % tid)
        logs = self.c.spawn_cli("logs-follow", "logs", "--follow", tid)
        events = self.c.spawn_cli("events-follow", "events", "--follow", "--json", "--after=0")
        logs.wait_log("tick")
        events.wait_log(tid)

        m.signal(signal.SIGTERM)
        m.wait_log("calls in flight have up to 3600 s to finish")
        # An hour's grace: the master is out long before unless every stream ended by itself.
        self.assertEqual(m.wait_exit(timeout=30), 0, m.tail())
        self.assertEqual(m.count("calls still open"), 0, m.tail())
        for f in (logs, events):
            self.assertEqual(f.wait_exit(timeout=30), 3, f.tail())
            f.wait_log("UNAVAILABLE: master stopping")
            self.assertEqual(f.count("is the master running"), 0, f.tail())
        # The task ran on: its output flows into the master started again, and a cancel
        # reaches it there.
        self.c.start_master(extra=grace)
        w.wait_log(REGISTERED, count=2, timeout=60)
        before = self.task(tid)["log_lines"]
        self.wait_tasks([tid], lambda t: t["log_lines"] > before, 30,
                        "more lines of task %s stored after the restart" % tid)
        rc, out, err = self.c.cli("cancel", tid)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(tid, "cancelled")

    def stalled_call(self):
        """A ListNodes call of which only the first two bytes of the request came: returns
        (connection, stream id, the rest of the request). A complete call on the same connection
        answered after it shows that the master took it in."""
        auth = [("authorization", read_key(self.c.admin_key_file))]
        conn = h2raw.H2Conn(("127.0.0.1", self.c.port))
        self.addCleanup(conn.close)
        body = b"\x00\x00\x00\x00\x00"  # an empty request: flags and length
        sid = conn.open_stream("/grpc.AdminService/ListNodes", auth)
        conn.send_bytes(sid, body[:2])
        self.assertIsNotNone(conn.unary("/grpc.AdminService/ListNodes", b"", auth))
        return conn, sid, body[2:]

    def test_master_sigterm_lets_a_call_in_flight_finish_within_its_grace(self):
        m = self.c.start_master(extra=["--shutdown-grace=1h"])
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        conn, sid, rest = self.stalled_call()
        m.signal(signal.SIGTERM)
        m.wait_log("calls in flight have up to 3600 s to finish")
        # the client stalls a while (the fault), the master waits for it
        t0 = time.monotonic()
        harness.wait_until(lambda: time.monotonic() - t0 >= STALL_S, timeout=STALL_S + 5,
                           what="the end of the %.0f s stall" % STALL_S)
        self.assertTrue(m.alive(), m.tail())
        conn.send_bytes(sid, rest, end=True)
        # the last call's answer reaches the client, though the master exits right after it
        reply = conn.reply(sid)
        self.assertIsNotNone(reply, "the call in flight was not answered")
        self.assertIn(b"w1", reply)
        self.assertEqual(m.wait_exit(timeout=30), 0, m.tail())
        self.assertEqual(m.count("calls still open"), 0, m.tail())

    def test_master_sigterm_cancels_a_call_still_in_flight_after_its_grace(self):
        m = self.c.start_master(extra=["--shutdown-grace=500ms"])
        conn, sid, rest = self.stalled_call()
        m.signal(signal.SIGTERM)
        m.wait_log("calls in flight have up to 500 ms to finish")
        self.assertEqual(m.wait_exit(timeout=30), 0, m.tail())
        m.wait_log("calls still open after the shutdown grace; cancelling them")
        # the master is gone, so is the connection: no answer came on it
        self.assertTrue(conn.closed.wait(harness.WAIT), "the connection outlived the master")
        self.assertEqual(conn.replies.get(sid, b""), b"",
                         "a call cancelled by the master was answered")

    def test_master_sigterm_delivers_a_long_answer_whole_to_a_slow_reader(self):
        m = self.c.start_master(extra=["--shutdown-grace=1h"])
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        self.read_long_log_across_a_stop(m)

    def test_master_sigterm_lets_a_follower_of_an_ended_task_read_to_the_end(self):
        # `logs --follow` of a task that is over: nothing more can come, so the stop does not
        # cut it short with "master stopping"
        m = self.c.start_master(extra=["--shutdown-grace=1h"])
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        self.read_long_log_across_a_stop(m, follow=True)

    def test_connections_over_the_limit_are_refused_and_the_others_keep_working(self):
        # One worker holds both connections the master allows (control and data).
        m = self.c.start_master(extra=["--max-connections=2"])
        w = self.c.start_worker("w1")
        w.wait_log("registered with the master")
        rc, out, err = self.c.cli("nodes", "--json")
        self.assertEqual(rc, 3, err)
        m.wait_log("connection limit (2) reached")
        self.assertTrue(w.alive())
        # Once the worker is gone, its connections are free again.
        w.stop()
        ns = self.c.wait_nodes(lambda ns: status_of(ns, name="w1") == "offline")
        self.assertEqual(len(ns), 1)

    def test_master_raises_its_descriptor_limit_to_three_per_connection(self):
        # The master inherits a low soft limit from us, then raises it by itself.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            m = self.c.start_master(extra=["--max-connections=100"])
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with open("/proc/%d/limits" % m.pid) as f:
            got = [line.split()[3] for line in f if line.startswith("Max open files")][0]
        want = 3 * 100 + 512
        self.assertEqual(int(got), want if hard == resource.RLIM_INFINITY else min(want, hard))

    def test_bad_flags_exit_2_with_one_line(self):
        rc, out, err = self.c.run_cli("--role=worker", "--max-runners=x", timeout=10)
        self.assertEqual(rc, 2, (out, err))
        self.assertEqual(out, "")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.endswith("\n"), err)
        rc, out, err = self.c.run_cli("--bogus", timeout=10)
        self.assertEqual(rc, 2, (out, err))
        self.assertNotEqual(err.strip(), "")


if __name__ == "__main__":
    harness.main()
