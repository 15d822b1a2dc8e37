#!/usr/bin/python3
"""Injected faults: network partitions and resets through a proxy (faultproxy.py), crashes and
stops of the master and of workers, with real processes on 127.0.0.1; and the proxy's own checks.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_faults.py [Class.test]

Figures worth reading (the breaker's CPU use) are printed as lines starting with "figure:"."""

import os
import random
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy  # noqa: E402
import harness  # noqa: E402
from harness import find_node, group_gone, kill_group, wait_until  # noqa: E402

REGISTERED = "registered with the master"
LOST_BY_WORKER = ("worker restarted", "lost by worker")
OUTAGE_S = 10.0        # how long the master stays down in the breaker test (the fault's length)
CPU_BOUND_S = 1.0      # worker CPU allowed over that outage: catches a busy loop, nothing finer
SOCK_TIMEOUT = 10.0    # bound on every blocking socket call of the proxy tests


def figure(text):
    print("figure: " + text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# the proxy itself, against a small echo server


class EchoServer:
    """A threaded echo server on 127.0.0.1 that records every byte it received."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.accepted = 0
        self.lock = threading.Lock()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                break
            if not d:
                break
            with self.lock:
                self.received += d
            try:
                c.sendall(d)
            except OSError:
                break
        c.close()

    def close(self):
        # shutdown wakes the thread blocked in accept (a bare close would leave it listening)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class FaultProxyBehaviour(unittest.TestCase):

    def setUp(self):
        self.echo = EchoServer()
        self.addCleanup(self.echo.close)
        self.p = faultproxy.FaultProxy(self.echo.port, name="unit").start()
        self.addCleanup(self.p.close)
        self.socks = []
        self.addCleanup(lambda: [s.close() for s in self.socks])

    def dial(self):
        s = socket.create_connection(("127.0.0.1", self.p.port), timeout=SOCK_TIMEOUT)
        self.socks.append(s)
        return s

    def recv_exactly(self, s, n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                break
            buf += d
        return buf

    def assert_reset(self, s):
        """The peer reset the connection: recv fails with ECONNRESET (an RST, not a FIN)."""
        with self.assertRaises(ConnectionResetError):
            d = s.recv(10)
            raise AssertionError("expected a reset, got %r" % d)

    def assert_dial_reset(self):
        """A new connection is accepted and reset at once: the reset shows in connect() itself
        when it comes before the connecting thread returned, else in the first recv."""
        try:
            s = self.dial()
        except ConnectionResetError:
            return
        self.assert_reset(s)

    def assert_nothing_to_read(self, s):
        s.setblocking(False)
        try:
            with self.assertRaises(BlockingIOError):
                d = s.recv(10)
                raise AssertionError("expected silence, got %r" % d)
        finally:
            s.settimeout(SOCK_TIMEOUT)

    def test_proxy_passes_bytes_both_ways_in_order_and_counts_connections(self):
        a, b = self.dial(), self.dial()
        blob = os.urandom(3 << 20)
        t = threading.Thread(target=a.sendall, args=(blob,), daemon=True)
        t.start()
        self.assertEqual(self.recv_exactly(a, len(blob)), blob)
        t.join(SOCK_TIMEOUT)
        b.sendall(b"ping")
        self.assertEqual(self.recv_exactly(b, 4), b"ping")
        # the counters move right after the bytes went out
        st = wait_until(lambda: (lambda st: st if st["bytes_down"] == len(blob) + 4 else None)(
            self.p.stats()), what="bytes_down to count every byte echoed")
        self.assertEqual((st["accepted"], st["active"]), (2, 2), st)
        self.assertEqual(st["bytes_up"], len(blob) + 4, st)
        self.assertEqual(st["faults"], {}, st)
        # a half-close is passed on: the echo server sees EOF and closes, we see EOF
        b.shutdown(socket.SHUT_WR)
        self.assertEqual(b.recv(10), b"")
        wait_until(lambda: self.p.stats()["active"] == 1, what="the closed connection to go")

    def test_proxy_cut_resets_current_connections_and_new_ones_until_pass(self):
        a = self.dial()
        a.sendall(b"x")
        self.assertEqual(self.recv_exactly(a, 1), b"x")
        self.p.cut()
        self.assert_reset(a)
        self.assert_dial_reset()  # accepted by the listener, then reset
        st = self.p.stats()
        self.assertEqual((st["reset"], st["refused"], st["faults"]), (1, 1, {"cut": 1}), st)
        self.p.pass_()
        c = self.dial()
        c.sendall(b"back")
        self.assertEqual(self.recv_exactly(c, 4), b"back")
        self.assertEqual(self.echo.accepted, 2)  # a and c reached the server, b never did

    def test_proxy_blackhole_swallows_old_and_new_connections_and_old_ones_stay_silent(self):
        a = self.dial()
        a.sendall(b"1")
        self.assertEqual(self.recv_exactly(a, 1), b"1")
        self.p.blackhole()
        a.sendall(b"lost-old")
        b = self.dial()  # the connect succeeds: the proxy accepts
        b.sendall(b"lost-new")
        wait_until(lambda: self.p.stats()["discarded"] >= 16, what="16 bytes discarded")
        self.assert_nothing_to_read(a)
        self.assert_nothing_to_read(b)
        self.assertEqual(bytes(self.echo.received), b"1")
        self.assertEqual(self.echo.accepted, 1)  # b was never connected to the server
        st = self.p.stats()
        self.assertEqual((st["silenced"], st["faults"]), (2, {"blackhole": 1}), st)
        self.p.pass_()
        a.sendall(b"still-lost")
        wait_until(lambda: self.p.stats()["discarded"] >= 26, what="26 bytes discarded")
        self.assert_nothing_to_read(a)
        self.assertEqual(bytes(self.echo.received), b"1")
        c = self.dial()
        c.sendall(b"new")
        self.assertEqual(self.recv_exactly(c, 3), b"new")

    def test_proxy_drop_replies_forwards_only_towards_the_target(self):
        a = self.dial()
        self.p.drop_replies()
        a.sendall(b"up")
        wait_until(lambda: bytes(self.echo.received) == b"up", what="the server to get 'up'")
        wait_until(lambda: self.p.stats()["discarded"] >= 2, what="the echo to be discarded")
        self.assert_nothing_to_read(a)
        self.assertEqual(self.p.stats()["faults"], {"drop_replies": 1})

    def test_proxy_delay_keeps_every_byte_in_order(self):
        a = self.dial()
        self.p.delay(50)
        chunks = [("chunk-%d;" % i).encode() for i in range(20)]
        for c in chunks:
            a.sendall(c)
        want = b"".join(chunks)
        self.assertEqual(self.recv_exactly(a, len(want)), want)
        st = self.p.stats()
        self.assertGreater(st["delayed_chunks"], 0, st)
        self.assertEqual(st["faults"], {"delay": 1}, st)

    def test_proxy_resets_the_client_when_the_target_refuses(self):
        self.echo.close()
        self.assert_dial_reset()
        wait_until(lambda: self.p.stats()["target_failed"] == 1, what="one target failure")


# ---------------------------------------------------------------------------------------------
# the cluster under faults


class Faults(harness.ClusterTest, harness.TaskOps):
    timeout = 240

    def proxy(self, name="proxy"):
        """A fault proxy in front of the master (started already), closed after the test."""
        p = faultproxy.FaultProxy(self.c.port, name=name).start()
        self.addCleanup(p.close)
        return p

    def online(self, *workers):
        """Waits until every worker registered and shows online; returns their node keys."""
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers], timeout=30)
        return [find_node(ns, name=w.name)["key"] for w in workers]

    def running_pid(self, tid, timeout=30):
        """Waits until the task runs with a pid; that pid is its process group, killed at the end
        of the test whatever happens."""
        t = self.wait_tasks([tid], lambda t: t["status"] == "running" and t["pid"] > 0, timeout,
                            "task %s to run with a pid" % tid)[tid]
        self.addCleanup(kill_group, t["pid"])
        return t["pid"]

    def wait_started_on(self, key):
        """Submits `echo later` to node key and waits until it runs there with its output
        stored. (Its final status is not awaited: a short task's final status is what
        test_slow_network_loses_no_final_status_nor_output is about.)"""
        later = self.submit1("--node=%s" % key, "--", "echo", "later")
        self.wait_tasks([later], lambda t: t["status"] in ("running", "finished") and
                        t["log_lines"] == 1, 60, "task %s to run on %s" % (later, key))
        return later

    # ---- a slow network

    def test_slow_network_loses_no_final_status_nor_output(self):
        # every chunk either way is held 100 ms: replies come late, nothing is lost
        self.c.start_master()
        p = self.proxy()
        w = self.c.start_worker("w1", master_addr=p.addr)
        key, = self.online(w)
        p.delay(100)
        ids = [self.submit1("--", "sh", "-c", "echo quick-%d" % i) for i in range(5)]
        argv, ran, totals = self.streamer()
        ids.append(self.submit1("--", *argv, "--lines", "2000", "--batch", "100",
                                "--items-every", "10", "--pace", "0.01"))
        ts = self.wait_final(ids, timeout=60)
        problems = ["task %s: %s %r" % (i, t["status"], t["error"]) for i, t in ts.items()
                    if t["status"] != "finished"]
        problems += ["task %s: logs %r" % (i, self.logs(i)) for i in ids[:5]
                     if self.logs(i) != ["quick-%d" % ids.index(i)]]
        problems += self.check_output(ids[5], totals, ts[ids[5]])
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertGreater(p.stats()["delayed_chunks"], 0)

    # ---- a: a blackholed worker

    def blackhole_a_running_task(self, master_extra=()):
        """A worker behind the proxy runs `sleep 300`, then the proxy swallows everything: returns
        (proxy, worker, node key, task id, task pid) once the task waits as node_disconnected."""
        self.c.start_master(extra=list(master_extra))
        p = self.proxy()
        w = self.c.start_worker("w1", master_addr=p.addr, extra=["--log-level=debug"])
        key, = self.online(w)
        tid = self.submit1("--", "sleep", "300")
        pid = self.running_pid(tid)
        p.blackhole()
        self.c.wait_status("offline", keys=[key], timeout=30)
        self.wait_task_status(tid, "node_disconnected", timeout=30)
        return p, w, key, tid, pid

    def heal(self, p, w, key):
        """Lets the proxy pass again; returns once the worker registered anew and is online."""
        registered = w.count(REGISTERED)
        p.pass_()
        w.wait_log(REGISTERED, count=registered + 1, timeout=90)
        self.c.wait_status("online", keys=[key], timeout=30)

    def test_blackholed_worker_goes_offline_and_its_task_runs_on_when_the_network_heals(self):
        p, w, key, tid, pid = self.blackhole_a_running_task()
        self.assertFalse(group_gone(pid), "the task's process died with the network")

        self.heal(p, w, key)
        t = self.wait_task_status(tid, "running", timeout=30)
        self.assertEqual(t["pid"], pid, t)
        self.assertEqual(t["assigned_node"], key, t)
        self.assertFalse(group_gone(pid), "the task's process is gone")
        self.assertGreaterEqual(p.stats()["faults"].get("blackhole"), 1)

        # and it is still the master's to cancel
        rc, out, err = self.c.cli("cancel", "--force", tid)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(tid, "cancelled")
        wait_until(lambda: group_gone(pid), what="the task's process group to end")

    def test_task_of_a_worker_blackholed_beyond_the_disconnect_grace_ends_abnormal(self):
        p, w, key, tid, pid = self.blackhole_a_running_task(["--disconnect-grace=3s"])
        # the blackhole lasts until the grace is over, however long that takes
        t = self.wait_task_status(tid, "abnormal", timeout=60)
        self.assertEqual(t["assigned_node"], key, t)

        self.heal(p, w, key)
        # a later task on the same node started and its output is stored: whatever the worker
        # said about the old one on reconnecting (resync, reports) came before and is heard
        self.wait_started_on(key)
        self.assertEqual(self.task(tid)["status"], "abnormal", "an abnormal task came back")
        figure("process group of the abnormal task after the worker came back: %s"
               % ("gone" if group_gone(pid) else "still running %r"
                  % harness.group_members(pid)))

    # ---- b: an assigned task whose node goes offline before starting it

    def test_assigned_task_whose_node_goes_offline_before_starting_it_runs_elsewhere_once(self):
        # Staging: worker a's FetchTask must reach the master (the task becomes assigned to a)
        # while the answer never reaches a, which cannot start it; then a is cut off entirely,
        # goes offline, and b comes up. The master cannot know that a never started it: the task
        # waits (node_disconnected) for the grace, then is queued again.
        # The fetch is made deterministic: a has one runner, busy with a blocker, so it has no
        # fetch out and makes none while the task is queued (a push, or a poll, would race with
        # the dropping). Once replies are dropped, the blocker is killed: the runner it frees
        # makes a fetch at once, whose answer is dropped.
        self.c.start_master(extra=["--disconnect-grace=3s"])
        p = self.proxy()
        a = self.c.start_worker("a", master_addr=p.addr,
                                extra=["--log-level=debug", "--max-runners=1"])
        ka, = self.online(a)
        blocker = self.submit1("--", "sleep", "300")
        pid = self.wait_tasks([blocker], lambda t: t["status"] == "running" and t["pid"] > 0,
                              30, "the blocker to run")[blocker]["pid"]
        ran = self.c.path("ran.txt")
        tid = self.submit1("--", "sh", "-c",
                           'echo "$CRAWLAB_TASK_ID $CRAWLAB_NODE_KEY" >> %s; echo ran' % ran)
        self.assertEqual(self.task(tid)["status"], "pending")
        p.drop_replies()
        os.killpg(pid, signal.SIGKILL)  # the task's process group: pgid = pid
        self.wait_tasks([tid], lambda t: t["status"] == "assigned" and t["assigned_node"] == ka,
                        30, "task %s to be assigned to a" % tid)
        p.blackhole()
        self.c.wait_status("offline", keys=[ka], timeout=30)
        self.wait_task_status(tid, "node_disconnected", timeout=30)
        self.wait_task_status(tid, "pending", timeout=30)

        b = self.c.start_worker("b")
        kb, = self.online(b)
        t = self.wait_task_status(tid, "finished", timeout=30)
        self.assertEqual(t["assigned_node"], kb, t)
        self.assertEqual(self.logs(tid), ["ran"])

        # a comes back and has nothing to say about it
        registered = a.count(REGISTERED)
        p.pass_()
        a.wait_log(REGISTERED, count=registered + 1, timeout=90)
        self.wait_started_on(ka)
        t = self.task(tid)
        self.assertEqual((t["status"], t["assigned_node"]), ("finished", kb), t)
        with open(ran) as f:
            self.assertEqual(f.read().splitlines(), ["%s %s" % (tid, kb)])
        self.assertEqual(a.count("task %s started" % tid), 0)

    # ---- b2: no double run (the fenced claim, docs/reliability.md)

    def sleeper(self, ran):
        """Submits an unaddressed task that notes its run in ran and sleeps; returns its id."""
        return self.submit1("--", "sh", "-c",
                            'echo "$CRAWLAB_TASK_ID $CRAWLAB_NODE_KEY $$" >> %s; exec sleep 300'
                            % ran)

    def test_task_whose_running_report_is_lost_and_whose_node_stays_away_runs_on_one_node(self):
        # The hole this closes: node a starts the task, its report naming the pid is lost, and a
        # stays away past the grace. Staging: every chunk through a's proxy is held 300 ms, so
        # when the task's own line shows it started, the report that names its pid is still in
        # the proxy; the blackhole drops it. Node b comes up only then, so it could take the task
        # only if the master handed it out again.
        self.c.start_master(extra=["--disconnect-grace=3s"])
        p = self.proxy()
        a = self.c.start_worker("a", master_addr=p.addr, extra=["--log-level=debug"])
        ka, = self.online(a)
        ran = self.c.path("ran.txt")
        self.addCleanup(self.kill_runs, ran)
        p.delay(300)
        tid = self.sleeper(ran)
        first = wait_until(lambda: [r for r in harness.read_runs(ran) if r[0] == tid],
                           timeout=30, what="task %s to start" % tid)[0]
        p.blackhole()
        first_pgid = os.getpgid(first[2])
        self.assertEqual(first[1], ka)
        t = self.task(tid)
        self.assertEqual((t["assigned_node"], t["pid"]), (ka, 0),
                         "staging: the master heard the report naming the pid before the "
                         "blackhole: %r" % t)
        b = self.c.start_worker("b")
        kb, = self.online(b)
        self.c.wait_status("offline", keys=[ka], timeout=30)

        # a stays away until the task has left it: ended, or handed to b and started there
        def settled():
            t = self.task(tid)
            on_b = [r for r in harness.read_runs(ran) if r[0] == tid and r[1] == kb]
            return t if t["status"] in ("abnormal", "error") or on_b else None
        t = wait_until(settled, timeout=60, what="task %s to leave node a" % tid)
        figure("task %s after node a stayed away past the grace: %s on %s"
               % (tid, t["status"], "a" if t["assigned_node"] == ka else "b"))

        registered = a.count(REGISTERED)
        p.pass_()
        a.wait_log(REGISTERED, count=registered + 1, timeout=90)
        self.wait_started_on(ka)
        # whichever way it went, a's copy does not run on beside another run or an ended task
        wait_until(lambda: group_gone(first_pgid), timeout=30,
                   what="node a's copy of task %s to stop" % tid)
        runs = [r for r in harness.read_runs(ran) if r[0] == tid]
        t = self.task(tid)
        self.assertEqual(len(runs), 1, "task %s ran %d times: %r; the master says %s on %s"
                         % (tid, len(runs), runs, t["status"], t["assigned_node"]))
        # the master knew it had started (the claim): it ended it as a started task, on a
        self.assertEqual((t["status"], t["assigned_node"]), ("abnormal", ka), t)

    def test_task_whose_claim_is_lost_runs_elsewhere_once_and_never_on_the_node_that_fetched_it(
            self):
        # Node a fetched the task, but its claim never reached the master: a must not start it,
        # since the master, not having heard of a start, gives the task to another node once a
        # has been away past the grace. Staging: chunks are held 1 s, and the blackhole comes as
        # soon as a has sent its claim, which is then still in the proxy. a fetches the task (a
        # free node would have it pushed, without a claim): it has one runner, busy with a
        # blocker while the task is submitted, and the blocker's end frees it.
        self.c.start_master(extra=["--disconnect-grace=3s"])
        p = self.proxy()
        a = self.c.start_worker("a", master_addr=p.addr,
                                extra=["--log-level=debug", "--max-runners=1"])
        ka, = self.online(a)
        blocker = self.submit1("--", "sleep", "300")
        pid = self.running_pid(blocker)
        ran = self.c.path("ran.txt")
        self.addCleanup(self.kill_runs, ran)
        tid = self.sleeper(ran)
        self.assertEqual(self.task(tid)["status"], "pending")
        p.delay(1000)
        os.killpg(pid, signal.SIGKILL)
        a.wait_log("task %s: claiming it" % tid, timeout=30)
        p.blackhole()
        t = self.task(tid)
        self.assertEqual((t["status"], t["assigned_node"]), ("assigned", ka),
                         "staging: the master heard the claim before the blackhole: %r" % t)
        b = self.c.start_worker("b")
        kb, = self.online(b)
        self.c.wait_status("offline", keys=[ka], timeout=30)
        wait_until(lambda: [r for r in harness.read_runs(ran) if r[0] == tid], timeout=60,
                   what="task %s to start somewhere" % tid)

        registered = a.count(REGISTERED)
        p.pass_()
        a.wait_log(REGISTERED, count=registered + 1, timeout=90)
        self.wait_started_on(ka)
        runs = [r for r in harness.read_runs(ran) if r[0] == tid]
        self.assertEqual([r[1] for r in runs], [kb], "runs of task %s: %r" % (tid, runs))
        t = self.task(tid)
        self.assertEqual((t["status"], t["assigned_node"]), ("running", kb), t)
        self.assertEqual(a.count("task %s started" % tid), 0)
        # a's late holding was refused: by the resync cursor, or by the master at its claim
        dropped = (a.count("task %s: taken back while we were away" % tid) +
                   a.count("task %s: the master refused our claim" % tid))
        self.assertEqual(dropped, 1, "node a did not log dropping task %s" % tid)

    # ---- c: the worker's circuit breaker while the master is away

    def test_worker_breaker_opens_while_the_master_is_down_without_spinning(self):
        m = self.c.start_master()
        w = self.c.start_worker("w1", extra=["--log-level=debug"])
        key, = self.online(w)
        m.kill9()
        w.wait_log("lost the connection", timeout=30)
        t0 = time.monotonic()
        cpu0 = harness.cpu_seconds(w.pid)
        w.wait_log("breaker open", timeout=60)
        # the outage's length is the fault being injected, not a wait for something to happen
        wait_until(lambda: time.monotonic() - t0 >= OUTAGE_S, timeout=OUTAGE_S + 5,
                   what="the end of the %.0f s outage" % OUTAGE_S)
        cpu = harness.cpu_seconds(w.pid) - cpu0
        elapsed = time.monotonic() - t0
        figure("worker CPU over a %.1f s master outage: %.2f s (%d 'breaker open' lines, "
               "%d connection attempts logged)" % (elapsed, cpu, w.count("breaker open"),
                                                   w.count("session: waiting to retry -> "
                                                           "dialing")))
        self.assertLessEqual(cpu, CPU_BOUND_S, "the worker used %.2f s of CPU in a %.1f s outage"
                             % (cpu, elapsed))
        self.assertTrue(w.alive(), w)

        self.c.start_master()  # same port, same data dir
        w.wait_log(REGISTERED, count=2, timeout=60)
        self.c.wait_status("online", keys=[key], timeout=30)

    # ---- d: the master killed while tasks stream

    def test_master_kill9_while_tasks_stream_loses_and_duplicates_nothing_and_changes_no_status(
            self):
        # A restarted master gives a node three heartbeat intervals to come back before its tasks
        # change status. The workers' breaker, open after the failures of the outage, may wait
        # up to 16 s before its next try (resilience/retry.h): with 10 s intervals the 30 s
        # window holds that even on a slow (sanitizer) build.
        hb = ["--heartbeat-interval=10s"]
        m = self.c.start_master(extra=hb)
        ws = [self.c.start_worker("w%d" % i, extra=hb) for i in (1, 2)]
        keys = self.online(*ws)
        argv, ran, totals = self.streamer()
        gate = self.c.path("gate")
        ids = [self.submit1("--name=stream-%d" % i, "--", *argv, "--gate", gate,
                            "--items-every", "10", "--batch", "50", "--pace", "0.02")
               for i in range(6)]
        for tid in ids:
            self.addCleanup(self.kill_runs, ran, tid)
        before = self.wait_tasks(ids, lambda t: t["status"] == "running" and
                                 t["log_lines"] >= 1000, 60,
                                 "every task to run and have 1000 lines stored")
        m.kill9()
        for w in ws:
            w.wait_log("lost the connection", timeout=30)
        # the master stays down a while (the fault's length) while the tasks print on
        outage = random.uniform(1.0, 3.0)
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 >= outage, timeout=outage + 5,
                   what="the end of the %.1f s outage" % outage)
        self.c.start_master(extra=hb)
        for w in ws:
            w.wait_log(REGISTERED, count=2, timeout=90)
        self.c.wait_status("online", keys=keys, timeout=30)
        # output flows into the restarted master
        after = self.wait_tasks(ids, lambda t: t["log_lines"] > before[t["id"]]["log_lines"], 60,
                                "every task to have more lines stored than before the kill")
        self.assertEqual({i: t["status"] for i, t in after.items()}, {i: "running" for i in ids})

        with open(gate, "w"):
            pass
        final = self.wait_final(ids, timeout=120)
        problems = []
        for tid, t in final.items():
            if (t["status"], t["exit_code"]) != ("finished", 0):
                problems.append("task %s: %s, exit %r, error %r" % (tid, t["status"],
                                                                   t["exit_code"], t["error"]))
            problems += self.check_output(tid, totals, t)
        runs = [r[0] for r in harness.read_runs(ran)]
        problems += ["task %s ran %d times" % (i, runs.count(i)) for i in ids
                     if runs.count(i) != 1]
        hist = harness.task_history(self.c)
        if hist is None:
            problems.append("the master's status history could not be read")
        else:
            want = [("pending", "assigned"), ("assigned", "running"), ("running", "finished")]
            problems += ["task %s: status history %r" % (i, hist.get(i)) for i in ids
                         if hist.get(i) != want]
        self.assertEqual(problems, [], "\n".join(problems))

    # ---- e: a worker killed during a task, restarted with its data dir

    def test_worker_kill9_and_restart_ends_its_task_in_error_and_kills_its_process_group(self):
        self.c.start_master()
        w = self.c.start_worker("w1")
        key, = self.online(w)
        tid = self.submit1("--", "sh", "-c", "sleep 300 & sleep 300; wait")
        pgid = self.running_pid(tid)
        wait_until(lambda: sum(1 for pid, _ in harness.group_members(pgid)
                               if comm(pid) == "sleep") >= 2,
                   what="two sleeps in the task's process group")
        w.kill9()
        w2 = self.c.start_worker("w1", data_dir=w.data_dir)
        w2.wait_log(REGISTERED, timeout=60)
        t = self.wait_final([tid], timeout=60)[tid]
        self.assertEqual(t["status"], "error", t)
        self.assertTrue(any(s in t["error"] for s in LOST_BY_WORKER), t)
        try:
            wait_until(lambda: group_gone(pgid), timeout=30,
                       what="process group %d of the lost task to be gone" % pgid)
        except harness.Timeout:
            raise AssertionError("process group %d of task %s still has %r"
                                 % (pgid, tid, harness.group_members(pgid)))
        self.c.wait_status("online", keys=[key], timeout=30)

    # ---- f: a worker stopped with SIGTERM while a task runs

    def test_worker_sigterm_stops_fetching_cancels_after_the_grace_and_stores_all_output(self):
        self.c.start_master()
        w = self.c.start_worker("w1", extra=["--shutdown-grace=2s"])
        key, = self.online(w)
        argv, ran, totals = self.streamer()
        # runs until it is stopped (at most 120 s)
        tid = self.submit1("--", *argv, "--gate", self.c.path("never"), "--items-every", "10",
                           "--batch", "20", "--pace", "0.02")
        self.addCleanup(self.kill_runs, ran, tid)
        self.wait_tasks([tid], lambda t: t["status"] == "running" and t["log_lines"] >= 100, 30,
                        "the task to run with 100 lines stored")
        w.signal(signal.SIGTERM)
        w.wait_log("waiting up to 2 s for 1 running task(s)")
        late = self.submit1("--", "sh", "-c", 'echo "$CRAWLAB_TASK_ID" >> %s'
                            % self.c.path("late.txt"))
        self.assertEqual(w.wait_exit(timeout=60), 0, w.tail())
        w.wait_log("shutdown grace over; cancelling it")
        w.wait_log("worker stopped")
        t = self.task(tid)
        # cancelled: it prints until it is stopped, so it cannot have finished within the grace
        self.assertEqual(t["status"], "cancelled", t)
        problems = self.check_output(tid, totals, t)
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertEqual(self.task(late)["status"], "pending")
        self.assertFalse(os.path.exists(self.c.path("late.txt")), "a task started after SIGTERM")
        self.assertEqual(w.count("task %s started" % late), 0)

    # ---- g: the master stopped with SIGTERM

    def test_master_sigterm_drains_workers_exits_0_and_loses_nothing_acknowledged(self):
        m = self.c.start_master()
        ws = [self.c.start_worker("w%d" % i) for i in (1, 2)]
        keys = self.online(*ws)
        argv, ran, totals = self.streamer()
        quick = [self.submit1("--name=quick-%d" % i, "--", *argv, "--lines", "300",
                              "--batch", "50", "--items-every", "7", "--pace", "0")
                 for i in range(4)]
        done = self.wait_final(quick, timeout=60)
        gate = self.c.path("gate")
        stream = self.submit1("--name=stream", "--", *argv, "--gate", gate, "--items-every", "10",
                              "--batch", "50", "--pace", "0.02")
        self.addCleanup(self.kill_runs, ran, stream)
        before = self.wait_tasks([stream], lambda t: t["status"] == "running" and
                                 t["log_lines"] >= 200, 30, "the stream to have 200 lines")[stream]

        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(timeout=60), 0, m.tail())
        m.wait_log("master stopped")
        for w in ws:
            w.wait_log("master asked to drain", timeout=30)
            self.assertTrue(w.alive(), w)

        self.c.start_master()
        for w in ws:
            w.wait_log(REGISTERED, count=2, timeout=90)
        self.c.wait_status("online", keys=keys, timeout=30)
        ts = self.tasks()
        problems = []
        for tid in quick:
            if ts[tid] != done[tid]:
                problems.append("finished task %s changed across the stop: %r -> %r"
                                % (tid, done[tid], ts[tid]))
            problems += self.check_output(tid, totals, ts[tid])
        # what was acknowledged before the stop is there, in order
        n = before["log_lines"]
        want, _ = harness.streamer_expected(stream, {"lines": n, "items": 0})
        got = self.logs(stream)
        if got[:n] != want:
            problems.append("the first %d lines of the stream, stored before the stop: %s"
                            % (n, harness.diff_summary(got[:n], want)))
        if ts[stream]["status"] != "running":
            problems.append("the stream is %s after the restart" % ts[stream]["status"])
        with open(gate, "w"):
            pass
        t = self.wait_final([stream], timeout=90)[stream]
        if (t["status"], t["exit_code"]) != ("finished", 0):
            problems.append("the stream ended %s (exit %r, %r)" % (t["status"], t["exit_code"],
                                                                   t["error"]))
        problems += self.check_output(stream, totals, t)
        runs = [r[0] for r in harness.read_runs(ran)]
        problems += ["task %s ran %d times" % (i, runs.count(i)) for i in quick + [stream]
                     if runs.count(i) != 1]
        self.assertEqual(problems, [], "\n".join(problems))


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


if __name__ == "__main__":
    harness.main()
