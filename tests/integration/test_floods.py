#!/usr/bin/python3
"""Hostile connections against a master that serves a worker and a client at the same time: an
HTTP/2 rapid reset (CVE-2023-44487) from one connection, over plaintext and over TLS, a ping
flood, and connections that send the HTTP/2 preface and then only answer PINGs. Each is written
by hand with h2raw.py (no key, or a certificate but no key) and bounded in streams and time.

What must hold: the hostile connection is closed and logged at most once a second, the worker
never goes offline, `nodes` keeps answering, and the master's memory stays bounded; idle
connections are closed after --auth-timeout, and a worker kept out by them then gets in.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_floods.py"""

import json
import os
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2raw  # noqa: E402
import harness  # noqa: E402
from harness import find_node, wait_until  # noqa: E402

REGISTERED = "registered with the master"
LOST = "lost the connection to the master"
CLOSED = "closed the connection from"
OVER_BUDGET = "refused or cancelled before an answer, over the budget"
NO_AUTH = "no authenticated call within"
REFUSED_KEY = "missing or wrong auth key"

FLOOD_STREAMS = 100000    # at most this many streams from the hostile connection
FLOOD_SECONDS = 20.0      # and for at most this long
RSS_GROWTH_MB = 200       # generous: an unchecked flood of this size takes more than 1 GB
AUTH_TIMEOUT = "2s"        # where a test sets --auth-timeout; the default is 10 s


def address_sanitized(pid):
    """Whether pid runs with AddressSanitizer, whose allocator keeps freed memory in quarantine
    (256 MB by default): its RSS then says nothing about what the program holds."""
    with open("/proc/%d/maps" % pid) as f:
        return any("libasan" in line for line in f)


class Clients:
    """`nodes --json` run again and again on a thread until stopped; remembers every answer."""

    def __init__(self, cluster, name):
        self.c = cluster
        self.name = name
        self.answers = []  # (rc, status of the worker or None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            rc, out, err = self.c.cli("nodes", "--json")
            status = None
            if rc == 0:
                status = (find_node(json.loads(out), name=self.name) or {}).get("status")
            self.answers.append((rc, status))

    def finish(self):
        self.stop.set()
        self.thread.join(harness.CLI_TIMEOUT + 5)
        return self.answers


class Floods(harness.ClusterTest):

    def setUp(self):
        super().setUp()
        self.conns = []
        self.addCleanup(self.close_conns)

    def close_conns(self):
        for c in self.conns:
            c.close()

    def connect(self, **kw):
        host, port = self.c.master_addr.rsplit(":", 1)
        c = h2raw.H2Conn((host, int(port)), **kw)
        self.conns.append(c)
        return c

    def online_worker(self, extra=()):
        w = self.c.start_worker("w1", extra=list(extra))
        w.wait_log(REGISTERED)
        self.c.wait_status("online", names=["w1"])
        return w

    def flood(self, conn, path):
        """Rapid reset of calls to path from conn until the master closes it, FLOOD_STREAMS were
        sent or FLOOD_SECONDS passed. Returns the streams sent."""
        deadline = time.monotonic() + FLOOD_SECONDS
        sent = 0
        while sent < FLOOD_STREAMS and time.monotonic() < deadline and not conn.closed.is_set():
            sent += conn.rapid_reset(1000, path=path, batch=100)
        return sent

    def assert_survived(self, m, w, clients, rss_before):
        answers = clients.finish()
        self.assertTrue(answers, "no `nodes` finished during the flood")
        self.assertEqual([a for a in answers if a != (0, "online")], [],
                         "`nodes` failed or showed the worker not online")
        self.assertEqual(w.count(LOST), 0, "the worker lost its connection")
        self.assertEqual(m.count("offline"), 0, "the master saw the worker go offline")
        growth = harness.rss_mb(m.pid) - rss_before
        if address_sanitized(m.pid):
            print("figure: master RSS grew by %.0f MB (AddressSanitizer: not checked)" % growth,
                  file=sys.stderr)
        else:
            self.assertLess(growth, RSS_GROWTH_MB, "master RSS grew by %.0f MB" % growth)
        self.assertTrue(m.alive())

    def assert_flood_logged_sparingly(self, m, seconds):
        self.assertEqual(m.count(OVER_BUDGET), 1, "one closed connection, one line")
        # Refusals of the flood: at most a line a second (and one more for the edges).
        self.assertLessEqual(m.count(REFUSED_KEY), int(seconds) + 2)

    # ---- rapid reset

    def check_rapid_reset(self, master_extra=(), worker_extra=(),
                          path="/grpc.AdminService/ListNodes", **conn_kw):
        m = self.c.start_master(extra=list(master_extra))
        w = self.online_worker(worker_extra)
        rss_before = harness.rss_mb(m.pid)
        clients = Clients(self.c, "w1")
        wait_until(lambda: clients.answers, what="a first `nodes` answer")
        conn = self.connect(**conn_kw)
        started = time.monotonic()
        sent = self.flood(conn, path)
        self.assertTrue(conn.wait_closed(harness.WAIT),
                        "the master did not close the flooding connection (%d streams)" % sent)
        m.wait_log(OVER_BUDGET)
        # A heartbeat from more than 3 intervals after the flood (when a stalled master would
        # have marked the worker offline) reaches the master.
        after_ms = (time.time() + 3.5) * 1000
        self.c.wait_nodes(lambda ns: (find_node(ns, name="w1") or {}).get("last_seen_ms", 0) >
                          after_ms, what="a heartbeat 3.5 s after the flood")
        self.assert_survived(m, w, clients, rss_before)
        self.assert_flood_logged_sparingly(m, time.monotonic() - started)
        print("figure: %d streams sent before the master closed the connection" % sent,
              file=sys.stderr)

    def test_rapid_reset_over_plaintext_closes_that_connection_and_nothing_else(self):
        self.check_rapid_reset()

    def test_rapid_reset_of_a_worker_method_is_closed_too(self):
        # The workers' unary methods have request slots of their own, whose calls gRPC reads
        # with their request (rpc/server.c): a flood of them is bounded the same way.
        self.check_rapid_reset(path="/grpc.NodeService/SendHeartbeat")

    def test_rapid_reset_over_tls_with_a_certificate_but_no_key_is_closed_too(self):
        pki = self.c.path("pki")
        rc, out, err = self.c.run_cli("cert", "init", "--dir=%s" % pki,
                                      "--master-host=localhost,127.0.0.1")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.c.run_cli("cert", "issue", "--dir=%s" % pki, "--name=ops",
                                      "--role=admin")
        self.assertEqual(rc, 0, err)
        pem = lambda name, ext="pem": os.path.join(pki, "%s.%s" % (name, ext))  # noqa: E731
        client_tls = ["--tls-ca=%s" % pem("ca"), "--tls-cert=%s" % pem("worker"),
                      "--tls-key=%s" % pem("worker", "key")]
        # Client commands with an admin certificate; the worker with cert init's, whose name is
        # its node key (node keys are bound to certificates).
        self.c.cli_args = ["--tls-ca=%s" % pem("ca"), "--tls-cert=%s" % pem("ops"),
                           "--tls-key=%s" % pem("ops", "key")]
        ctx = ssl.create_default_context(cafile=pem("ca"))
        ctx.load_cert_chain(pem("worker"), pem("worker", "key"))
        ctx.set_alpn_protocols(["h2"])
        self.check_rapid_reset(
            master_extra=["--tls-cert=%s" % pem("master"), "--tls-key=%s" % pem("master", "key"),
                          "--tls-ca=%s" % pem("ca")],
            worker_extra=client_tls + ["--node-key=worker"], tls_context=ctx,
            server_hostname="localhost")

    def test_a_ping_flood_ends_the_connection(self):
        m = self.c.start_master()
        w = self.online_worker()
        conn = self.connect()
        conn.ping_flood(100)
        self.assertTrue(conn.wait_closed(harness.WAIT), "the master kept a ping flood going")
        self.assertEqual(conn.goaway, 0xb, "GOAWAY ENHANCE_YOUR_CALM expected")
        self.assertEqual(w.count(LOST), 0)
        self.assertIsNotNone(self.c.nodes())
        self.assertTrue(m.alive())

    # ---- connections that never authenticate

    def test_idle_connections_are_closed_after_the_auth_timeout_and_a_worker_gets_in(self):
        # The default --auth-timeout (10 s).
        m = self.c.start_master(extra=["--max-connections=4"])
        idle = [self.connect() for _ in range(4)]
        # The master holds all four: the worker's connections are turned away at once.
        w = self.c.start_worker("w1")
        m.wait_log("connection limit (4) reached")
        self.assertTrue(h2raw.wait_until_closed(idle, harness.WAIT),
                        "the idle connections were not closed")
        # They answered the master's PINGs like live peers until then. Refused meanwhile, the
        # worker's breaker may wait up to its longest cool-down (30 s) before it tries again.
        w.wait_log(REGISTERED, timeout=45)
        self.c.wait_status("online", names=["w1"])
        # Four closed in the same second or two: fewer lines than connections.
        self.assertGreaterEqual(m.count(NO_AUTH), 1)
        self.assertLess(m.count(NO_AUTH), 4)

    def test_one_address_is_held_to_the_connection_rate_and_the_host_is_not(self):
        # A burst of 10, then 1 a second: of 15 made in well under 5 s, at least one is refused.
        # An admitted connection gets the master's SETTINGS; a refused one is closed before a byte.
        m = self.c.start_master(extra=["--max-connection-rate=1", "--auth-timeout=120s"])
        conns = [self.connect(source="127.0.0.2") for _ in range(15)]
        wait_until(lambda: all(c.frames or c.closed.is_set() for c in conns), harness.WAIT,
                   "every connection answered or closed")
        self.assertTrue(all(c.frames for c in conns[:10]), "the burst was not let in")
        refused = [c for c in conns[10:] if c.closed.is_set()]
        self.assertGreaterEqual(len(refused), 1)
        self.assertTrue(all(c.frames == 0 for c in refused), "a refused connection got frames")
        m.wait_log("connection rate limit (1 a second from one address) reached: refused 127.0.0.2")
        # Another address has its own allowance, and the host's own (the worker, the command) is
        # not limited.
        other = self.connect(source="127.0.0.3")
        wait_until(lambda: other.frames or other.closed.is_set(), harness.WAIT, "an answer")
        self.assertGreater(other.frames, 0)
        self.online_worker()
        self.assertIsNotNone(self.c.nodes())
        self.assertTrue(m.alive())

    def test_an_idle_worker_keeps_both_connections_past_the_auth_timeout(self):
        m = self.c.start_master(extra=["--auth-timeout=" + AUTH_TIMEOUT])
        w = self.online_worker()
        # Three auth timeouts with nothing to do: its data connection carries no stream.
        deadline = time.monotonic() + 3 * 2.0
        wait_until(lambda: time.monotonic() >= deadline or m.count(CLOSED), harness.WAIT,
                   "three auth timeouts")
        self.assertEqual(m.count(CLOSED), 0, "the master closed a connection of the worker")
        self.assertEqual(w.count(LOST), 0)
        self.c.wait_status("online", names=["w1"])


if __name__ == "__main__":
    harness.main()
