#!/usr/bin/python3
"""TLS 1.3 end to end: a master with mutual TLS, workers and client commands with certificates
made by `crawlab-node cert`; tasks run through the TLS pumps; every kind of bad peer is refused
while the master keeps serving the good ones; the auth key never shows in any log.

The expired certificate comes from `cert issue --test-expired`, a hidden flag that exists for
this test only (it backdates the validity to yesterday).
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_tls.py"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import find_node, status_of, wait_until  # noqa: E402

REGISTERED = "registered with the master"
REFUSED = "refused a TLS connection from"


class Tls(harness.ClusterTest, harness.TaskOps):

    def setUp(self):
        # Registered first, so it runs last: after every process stopped and wrote its last line.
        self.addCleanup(self.check_key_never_logged)
        super().setUp()
        self.pki = self.c.path("pki")
        self.cert("init", "--dir=%s" % self.pki, "--master-host=localhost,127.0.0.1")
        # The person at the keyboard has a client certificate of their own, an admin's.
        self.cert("issue", "--dir=%s" % self.pki, "--name=alice", "--role=admin")
        self.c.cli_args = self.tls_client("alice")

    # ---- helpers

    def cert(self, *args):
        rc, out, err = self.c.run_cli("cert", *args)
        self.assertEqual(rc, 0, "cert %r: %s" % (args, err))
        return out

    def pem(self, name, ext="pem", pki=None):
        return os.path.join(pki or self.pki, "%s.%s" % (name, ext))

    def tls_client(self, name=None, pki=None, ca_pki=None):
        """The flags of a worker or client command trusting our CA (or ca_pki's), presenting
        name's certificate from pki (or none)."""
        args = ["--tls-ca=%s" % self.pem("ca", pki=ca_pki)]
        if name:
            args += ["--tls-cert=%s" % self.pem(name, pki=pki),
                     "--tls-key=%s" % self.pem(name, "key", pki=pki)]
        return args

    def start_tls_master(self, client_auth="require", extra=()):
        m = self.c.start_master(extra=["--tls-cert=%s" % self.pem("master"),
                                       "--tls-key=%s" % self.pem("master", "key"),
                                       "--tls-ca=%s" % self.pem("ca"),
                                       "--tls-client-auth=%s" % client_auth] + list(extra))
        return m

    def start_tls_worker(self, name, cert="own", pki=None, extra=()):
        """A worker over TLS presenting cert from pki. "own": a worker certificate issued for it
        whose common name is its node key, since the master binds node keys to certificates by
        default."""
        if cert == "own":
            if not os.path.exists(self.pem(name)):
                self.cert("issue", "--dir=%s" % self.pki, "--name=%s" % name)
            cert = name
            extra = ["--node-key=%s" % name] + list(extra)
        return self.c.start_worker(name, extra=self.tls_client(cert, pki=pki) + list(extra))

    def online(self, *workers):
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers])
        return [find_node(ns, name=w.name)["key"] for w in workers]

    def assert_never_registers(self, proc, seconds=3.0):
        """proc keeps running but never gets registered within seconds (it keeps retrying)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assertEqual(proc.count(REGISTERED), 0, "%s registered" % proc.name)
            self.assertTrue(proc.alive(), "%s exited: %s" % (proc.name, proc.tail()))
            time.sleep(harness.POLL)

    def run_echo_task(self, key, text):
        """Runs a task printing text and one result item on node key; checks it end to end."""
        item = json.dumps({"type": "data", "payload": {"said": text}, "ipc": True})
        script = self.script("say-%s.sh" % text, "echo %s\necho '%s'\n" % (text, item))
        tid = self.submit1("--node=%s" % key, "--", "/bin/sh", script)
        t = self.wait_final([tid])[tid]
        self.assertEqual(t["status"], "finished", t)
        self.assertEqual(self.logs(tid), [text])
        self.assertEqual(self.results(tid), [{"said": text}])
        return tid

    def check_key_never_logged(self):
        """Neither the node key nor the admin key appears in any log of the run."""
        for key_file in (self.c.key_file, self.c.admin_key_file):
            if not os.path.exists(key_file):
                continue
            key = harness.read_key(key_file)
            self.assertTrue(len(key) >= 16, "suspiciously short key")
            for root, _, files in os.walk(self.c.dir):
                for f in files:
                    path = os.path.join(root, f)
                    if not f.endswith(".log"):
                        continue
                    with open(path, "rb") as fh:
                        self.assertNotIn(key.encode(), fh.read(),
                                         "%s found in %s" % (os.path.basename(key_file), path))

    # ---- the tests

    def test_mtls_cluster_runs_tasks_end_to_end(self):
        m = self.start_tls_master(extra=["--log-level=debug"])
        self.assertTrue(m.count("TLS 1.3, client certificates required"), m.tail())
        # One worker with the worker certificate of `cert init` (node key "worker", as node keys
        # are bound to certificates), one with its own; one dials the address (checked against
        # the IP entries), the other the name "localhost".
        self.cert("issue", "--dir=%s" % self.pki, "--name=w2")
        w1 = self.start_tls_worker("w1", cert="worker",
                                   extra=["--node-key=worker", "--log-level=debug"])
        w2 = self.c.start_worker("w2", master_addr="localhost:%d" % self.c.port,
                                 extra=self.tls_client("w2") + ["--node-key=w2",
                                                                "--log-level=debug"])
        k1, k2 = self.online(w1, w2)
        self.run_echo_task(k1, "one")
        self.run_echo_task(k2, "two")
        # Several tasks at once, over the same pumps, all of their output intact.
        lines = 2000
        script = self.script("many.sh", 'i=0; while [ $i -lt %d ]; do echo "line $i '
                             'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; '
                             'i=$((i+1)); done\n' % lines)
        ids = [self.submit1("--node=%s" % k, "--", "/bin/sh", script) for k in (k1, k2, k1, k2)]
        for tid, t in self.wait_final(ids, timeout=60).items():
            self.assertEqual(t["status"], "finished", t)
            got = self.logs(tid)
            self.assertEqual(len(got), lines)
            self.assertEqual(got[0][:7], "line 0 ")
            self.assertEqual(got[-1][:10], "line %d " % (lines - 1))
        self.assertEqual(m.count(REFUSED), 0, m.tail())

    def test_worker_with_certificate_of_another_ca_is_refused_and_others_keep_working(self):
        other = self.c.path("other-pki")
        self.cert("init", "--dir=%s" % other, "--master-host=localhost,127.0.0.1")
        m = self.start_tls_master()
        good = self.start_tls_worker("good")
        (key,) = self.online(good)
        bad = self.start_tls_worker("bad", cert="worker", pki=other)
        m.wait_log("not signed by a trusted CA")
        self.assertIn(REFUSED, m.wait_log("not signed by a trusted CA"))
        self.assert_never_registers(bad)
        self.assertTrue(m.alive())
        self.assertEqual(status_of(self.c.nodes(), name="good"), "online")
        self.assertIsNone(status_of(self.c.nodes(), name="bad"))
        self.run_echo_task(key, "still")

    def test_bound_node_key_must_match_the_worker_certificate(self):
        self.cert("issue", "--dir=%s" % self.pki, "--name=n1")
        m = self.start_tls_master(extra=["--tls-bind-node-key"])
        own = self.start_tls_worker("own", cert="n1", extra=["--node-key=n1"])
        (key,) = self.online(own)
        self.assertEqual(key, "n1")
        # The same certificate cannot speak for another node.
        thief = self.start_tls_worker("thief", cert="n1", extra=["--node-key=n2"])
        m.wait_log("node n2: refused a registration")
        thief.wait_log("status 7")
        self.assert_never_registers(thief)
        self.assertIsNone(status_of(self.c.nodes(), name="thief"))
        self.run_echo_task(key, "bound")

    def test_expired_worker_certificate_is_refused(self):
        out = self.cert("issue", "--dir=%s" % self.pki, "--name=old", "--test-expired")
        self.assertIn("EXPIRED", out)
        m = self.start_tls_master()
        good = self.start_tls_worker("good")
        (key,) = self.online(good)
        old = self.start_tls_worker("old", cert="old")
        # The worker says so itself, at start, before its handshakes fail.
        old.wait_log("TLS: the certificate %s expired on" % self.pem("old"))
        m.wait_log("the client's certificate has expired")
        old.wait_log("ended the TLS connection with alert")
        self.assert_never_registers(old)
        self.run_echo_task(key, "fresh")

    def test_a_certificate_that_ends_within_30_days_is_warned_about_and_still_works(self):
        out = self.cert("issue", "--dir=%s" % self.pki, "--name=soon", "--days=10")
        self.assertIn("valid 10 days", out)
        m = self.start_tls_master()
        soon = self.start_tls_worker("soon")
        # Issued for 10 days, judged seconds later: the tenth day has begun, not ended.
        soon.wait_log("TLS: the certificate %s expires on" % self.pem("soon"))
        self.assertEqual(soon.count("in 10 days: issue a new one"), 1)
        (key,) = self.online(soon)
        self.run_echo_task(key, "still valid")
        # The master's own certificate and the CA have years left: nothing said of them, and
        # their ends are in its metrics for whoever alerts on them.
        rc, out, err = self.c.cli("metrics")
        self.assertEqual(rc, 0, err)
        ends = dict(re.findall(
            r'^crawlab_tls_cert_expiry_timestamp_seconds\{kind="(\w+)"\} (\d+)$', out, re.M))
        self.assertEqual(sorted(ends), ["ca", "cert"], out)
        self.assertAlmostEqual(int(ends["cert"]) - time.time(), 731 * 86400, delta=2 * 86400)
        self.assertAlmostEqual(int(ends["ca"]) - time.time(), 3652 * 86400, delta=2 * 86400)
        self.assertEqual(m.count("TLS: the certificate"), 0)
        self.assertEqual(m.count("TLS: the CA certificate"), 0)
        self.assertEqual(soon.count("TLS: the CA certificate"), 0)

    def test_a_client_command_says_when_its_own_certificate_ends_or_has_ended(self):
        self.start_tls_master()
        self.cert("issue", "--dir=%s" % self.pki, "--name=bob", "--role=admin", "--days=10")
        self.cert("issue", "--dir=%s" % self.pki, "--name=carol", "--role=admin",
                  "--test-expired")
        # Ten days left: said on stderr, and the command works, its output untouched.
        self.c.cli_args = self.tls_client("bob")
        rc, out, err = self.c.cli("nodes", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), [])
        self.assertIn("warning: TLS: the certificate %s expires on" % self.pem("bob"), err)
        self.assertIn("in 10 days: issue a new one (cert issue --role=admin) before then", err)
        # Ended: said before the refused handshake, whose own words do not tell why.
        self.c.cli_args = self.tls_client("carol")
        rc, out, err = self.c.cli("nodes")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("TLS: the certificate %s expired on" % self.pem("carol"), err)
        # Alice's has years left: nothing said.
        self.c.cli_args = self.tls_client("alice")
        rc, out, err = self.c.cli("nodes")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("the certificate", err)

    def test_worker_without_certificate_is_refused_when_required(self):
        m = self.start_tls_master()
        good = self.start_tls_worker("good")
        (key,) = self.online(good)
        anon = self.start_tls_worker("anon", cert=None)
        m.wait_log("the client sent no certificate")
        anon.wait_log("alert certificate_required")
        self.assert_never_registers(anon)
        # A client command without a certificate is refused the same way: exit status 3.
        rc, out, err = self.c.run_cli("nodes", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file,
                                      *self.tls_client(None))
        self.assertEqual(rc, 3, err)
        self.assertIn("certificate_required", err)
        self.run_echo_task(key, "named")

    def test_certificate_is_optional_with_client_auth_none(self):
        m = self.start_tls_master(client_auth="none")
        self.assertTrue(m.count("client certificates verified if offered"), m.tail())
        anon = self.start_tls_worker("anon", cert=None)
        named = self.start_tls_worker("named")
        k_anon, k_named = self.online(anon, named)
        self.c.cli_args = self.tls_client(None)
        self.run_echo_task(k_anon, "anonymous")
        self.run_echo_task(k_named, "named")

    def test_plaintext_worker_against_the_tls_port_is_refused_master_keeps_serving(self):
        m = self.start_tls_master()
        good = self.start_tls_worker("good")
        (key,) = self.online(good)
        plain = self.c.start_worker("plain")
        m.wait_log("does not speak TLS")
        self.assert_never_registers(plain)
        rc, out, err = self.c.run_cli("nodes", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file)
        self.assertEqual(rc, 3, err)
        self.assertIn("--tls-ca", err)
        self.assertTrue(m.alive())
        self.run_echo_task(key, "after")

    def test_a_flood_of_refused_handshakes_is_logged_a_line_a_second(self):
        m = self.start_tls_master()
        good = self.start_tls_worker("good")
        (key,) = self.online(good)
        host, port = self.c.master_addr.rsplit(":", 1)
        attempts = 0

        def refuse_one():
            nonlocal attempts
            with socket.create_connection((host, int(port)), timeout=harness.WAIT) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    s.recv(1)  # the master ends the connection once it refused it
                except ConnectionResetError:
                    pass
            attempts += 1

        def accounted():
            """Refusals the log tells of: one per line, plus what each line says it held back."""
            held = [re.search(r"\((\d+) more refused since", line) for line in m.lines()
                    if REFUSED in line]
            return sum(1 + (int(h.group(1)) if h else 0) for h in held)

        for _ in range(100):
            refuse_one()
        # Held-back refusals are told by the next line that goes out: keep refusing until the
        # log has accounted for the whole flood.
        def flood_told():
            if accounted() >= 100:
                return True
            refuse_one()
            return False
        wait_until(flood_told, harness.WAIT, "the log to account for 100 refused handshakes")
        self.assertLess(m.count(REFUSED), attempts, "every refusal got a line of its own")
        self.assertLessEqual(accounted(), attempts)
        self.assertTrue(m.alive())
        self.run_echo_task(key, "after")

    def test_worker_refuses_a_master_with_the_wrong_name(self):
        m = self.start_tls_master()
        w = self.start_tls_worker("w", extra=["--tls-server-name=master.example.com"])
        w.wait_log("not valid for 'master.example.com'")
        self.assert_never_registers(w)
        # The master saw the worker give up on it.
        m.wait_log(REFUSED)
        # And a master certificate that names neither the address nor the host dialled.
        w2 = self.c.start_worker("w2", extra=self.tls_client("worker") +
                                 ["--tls-server-name=10.20.30.40"])
        w2.wait_log("not valid for the address 10.20.30.40")
        self.assert_never_registers(w2, seconds=1.0)

    def test_worker_refuses_a_master_certified_by_another_ca(self):
        other = self.c.path("other-pki")
        self.cert("init", "--dir=%s" % other, "--master-host=localhost,127.0.0.1")
        self.start_tls_master()
        w = self.c.start_worker("w", extra=self.tls_client("worker", ca_pki=other))
        w.wait_log("the master's certificate is not signed by a trusted CA")
        self.assert_never_registers(w)

    def test_killed_worker_is_seen_offline_through_the_pump(self):
        self.start_tls_master()
        w1 = self.start_tls_worker("w1")
        w2 = self.start_tls_worker("w2")
        k1, k2 = self.online(w1, w2)
        w1.kill9()
        self.c.wait_status("offline", keys=[k1], timeout=15)
        self.assertEqual(status_of(self.c.nodes(), key=k2), "online")
        self.run_echo_task(k2, "survivor")

    def test_workers_reconnect_over_tls_after_a_master_restart(self):
        m = self.start_tls_master()
        w = self.start_tls_worker("w")
        (key,) = self.online(w)
        m.stop()
        self.start_tls_master()
        w.wait_log(REGISTERED, count=2, timeout=30)
        self.c.wait_status("online", keys=[key])
        self.run_echo_task(key, "again")

    def renewed(self, name, *flags):
        """Another certificate of name from the same CA, issued in a directory of its own (cert
        issue never overwrites), then copied over name's files: as an operator renews one."""
        pki = tempfile.mkdtemp(prefix="renewed-", dir=self.c.dir)
        for ext in ("pem", "key"):
            shutil.copy(self.pem("ca", ext), self.pem("ca", ext, pki=pki))
        self.cert("issue", "--dir=%s" % pki, "--name=%s" % name, *flags)
        for ext in ("pem", "key"):
            shutil.copy(self.pem(name, ext, pki=pki), self.pem(name, ext))

    def test_a_worker_takes_a_renewed_certificate_on_sighup_and_its_task_runs_on(self):
        m = self.start_tls_master()
        w = self.start_tls_worker("w")
        (key,) = self.online(w)
        tid = self.submit1("--node=%s" % key, "--", "sleep", "300")
        pid = self.wait_task_status(tid, "running")["pid"]

        # Its files replaced by an expired certificate and read again: the open connection goes
        # on, and the next one, after a master restart, is refused for that certificate.
        self.renewed("w", "--test-expired")
        w.signal(signal.SIGHUP)
        w.wait_log("SIGHUP: TLS certificate, key and CA read again")
        w.wait_log("TLS: the certificate %s expired on" % self.pem("w"))
        self.assertEqual(status_of(self.c.nodes(), key=key), "online")
        m.stop()
        m = self.start_tls_master()
        m.wait_log("the client's certificate has expired")
        self.assertEqual(w.count(REGISTERED), 1)

        # A valid one, read again: the worker registers, its task still running as before.
        self.renewed("w")
        w.signal(signal.SIGHUP)
        w.wait_log("SIGHUP: TLS certificate, key and CA read again", count=2)
        w.wait_log(REGISTERED, count=2, timeout=30)
        t = self.task(tid)
        self.assertEqual((t["status"], t["pid"]), ("running", pid), t)

        # A key that cannot be read: said, and the files loaded before stay in use.
        with open(self.pem("w", "key"), "w") as f:
            f.write("not a key\n")
        w.signal(signal.SIGHUP)
        w.wait_log("SIGHUP: TLS: cannot load the private key %s" % self.pem("w", "key"))
        self.assertEqual(w.count("the files loaded before stay in use"), 1)
        m.stop()
        self.start_tls_master()
        w.wait_log(REGISTERED, count=3, timeout=30)
        rc, out, err = self.c.cli("cancel", tid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.wait_final([tid])[tid]["status"], "cancelled")

    def test_a_master_takes_new_tls_files_on_sighup_for_new_connections_only(self):
        m = self.start_tls_master()
        w = self.start_tls_worker("w")
        (key,) = self.online(w)
        saved = {ext: open(self.pem("master", ext), "rb").read() for ext in ("pem", "key")}
        # A master certificate of another CA, read again: new clients of our CA refuse it, and
        # the worker's connection, made before, goes on.
        other = self.c.path("other-pki")
        self.cert("init", "--dir=%s" % other, "--master-host=localhost,127.0.0.1")
        for ext in ("pem", "key"):
            shutil.copy(self.pem("master", ext, pki=other), self.pem("master", ext))
        m.signal(signal.SIGHUP)
        m.wait_log("SIGHUP: TLS certificate, key and CA read again")
        rc, out, err = self.c.cli("nodes")
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(w.count(REGISTERED), 1)
        # Its own files back, read again: clients get in, and the worker was online throughout.
        for ext, data in saved.items():
            with open(self.pem("master", ext), "wb") as f:
                f.write(data)
        m.signal(signal.SIGHUP)
        m.wait_log("SIGHUP: TLS certificate, key and CA read again", count=2)
        self.assertEqual(status_of(self.c.nodes(), key=key), "online")
        self.assertEqual(w.count(REGISTERED), 1)
        self.run_echo_task(key, "after")

    def test_tls_files_that_do_not_work_stop_the_daemon_with_a_clear_message(self):
        # A key that is not the certificate's: the master does not start.
        m = self.c.start_master(wait=False, extra=[
            "--tls-cert=%s" % self.pem("master"), "--tls-key=%s" % self.pem("worker", "key")])
        self.assertEqual(m.wait_exit(), 1)
        self.assertIn("does not belong to the certificate", m.log())
        # A missing CA file: the worker does not start (a command-line problem: exit 2).
        w = self.c.start_worker("w", extra=["--tls-ca=%s" % self.c.path("missing.pem")])
        self.assertEqual(w.wait_exit(), 2)
        self.assertIn("missing.pem", w.log())
        # An incomplete combination: exit 2 before anything starts.
        rc, out, err = self.c.run_cli("--role=worker", "--tls-cert=%s" % self.pem("worker"))
        self.assertEqual(rc, 2)
        self.assertIn("needs '--tls-ca'", err)

    def test_metrics_count_refused_handshakes(self):
        m = self.start_tls_master()
        host, port = self.c.master_addr.rsplit(":", 1)
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=harness.WAIT) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    s.recv(1)  # the master ends the connection once it refused it
                except ConnectionResetError:
                    pass

        def refused():
            rc, out, err = self.c.cli("metrics")  # over TLS, with alice's admin certificate
            self.assertEqual(rc, 0, err)
            got = re.search(r"^crawlab_tls_handshakes_refused_total (\d+)$", out, re.M)
            self.assertIsNotNone(got, out)
            return int(got.group(1))
        wait_until(lambda: refused() >= 3, harness.WAIT, "3 refused handshakes in the metrics")
        self.assertEqual(refused(), 3)
        self.assertTrue(m.alive())

    def test_master_sigterm_delivers_a_long_answer_whole_to_a_slow_reader_over_tls(self):
        m = self.start_tls_master(extra=["--shutdown-grace=1h"])
        self.online(self.start_tls_worker("w1"))
        ctx = ssl.create_default_context(cafile=self.pem("ca"))
        ctx.load_cert_chain(self.pem("alice"), self.pem("alice", "key"))
        ctx.set_alpn_protocols(["h2"])
        self.read_long_log_across_a_stop(m, tls=ctx)


if __name__ == "__main__":
    harness.main()
