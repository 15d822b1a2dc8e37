"""A real PostgreSQL (pg.py: Debian's server in a temporary directory, on a free 127.0.0.1 port,
as an unprivileged user): the binary's libpq, the store's PostgreSQL backend
(tests/unit/test_store_pg.c) and the wolfSSL relay that takes libpq to a server requiring TLS
(tests/unit/test_pgtls.c). The Check suites run against servers started here, once for all."""

import os
import shutil
import signal
import subprocess

import harness
import pg

UNIT_DIR = os.path.join(harness.HERE, "..", "..", "build", "tests", "unit")
STORE_PG_TEST = os.environ.get("CRAWLAB_STORE_PG_TEST_BIN") or os.path.join(UNIT_DIR,
                                                                            "test_store_pg")
STORE_TEST = os.environ.get("CRAWLAB_STORE_TEST_BIN") or os.path.join(UNIT_DIR, "test_store")
# The tests of test_store.c that are not SQLITE_ONLY, with its PostgreSQL-only races.
STORE_CONTRACT_CHECKS = 85
PGTLS_TEST = os.environ.get("CRAWLAB_PGTLS_TEST_BIN") or os.path.join(UNIT_DIR, "test_pgtls")


class Postgres(harness.ClusterTest, harness.TaskOps):
    servers = []

    @classmethod
    def setUpClass(cls):
        cls.certs = os.path.join(harness.root_dir(), "certs")
        rc, out, err = harness.run_cli("cert", "init", "--dir=" + cls.certs,
                                       "--master-host=127.0.0.1")
        assert rc == 0, err
        # A second CA, which signed nothing the servers use.
        cls.other_certs = os.path.join(harness.root_dir(), "other-certs")
        rc, out, err = harness.run_cli("cert", "init", "--dir=" + cls.other_certs,
                                       "--master-host=127.0.0.1")
        assert rc == 0, err
        cls.plain = pg.Server.start()
        cls.servers.append(cls.plain)
        cls.tls = pg.Server.start(tls=(os.path.join(cls.certs, "master.pem"),
                                       os.path.join(cls.certs, "master.key")))
        cls.servers.append(cls.tls)

    @classmethod
    def tearDownClass(cls):
        for server in cls.servers:
            root, proc = server.root, server.proc
            server.stop()
            # Stopped by its pid, and its directory gone.
            assert not proc.alive() and not os.path.exists(root), (proc, root)

    def check_suite(self, program, env, checks):
        out = subprocess.run([program], env=dict(os.environ, **env), capture_output=True,
                             text=True, timeout=harness.TEST_TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("100%%: Checks: %d, Failures: 0, Errors: 0" % checks,
                      out.stdout + out.stderr)

    def test_store_contract_on_postgres(self):
        # The store's whole contract suite (tests/unit/test_store.c), on this server: every test
        # but those about SQLite's own files and schemas.
        self.check_suite(STORE_TEST, {
            "CRAWLAB_TEST_PG_URI": "postgres://%s@127.0.0.1:%d" % (pg.SUPERUSER,
                                                                   self.plain.port)},
            STORE_CONTRACT_CHECKS)

    def test_two_masters_never_share_a_data_directory(self):
        # On PostgreSQL the directory still holds the keys, spiders and the relay's socket.
        self.plain.createdb("crawlab_lock")
        store = "--store=postgres://%s@127.0.0.1:%d/crawlab_lock" % (pg.SUPERUSER,
                                                                    self.plain.port)
        self.c.start_master(extra=[store])
        second = self.c.spawn("second", [self.c.bin, "--role=master", "--listen=127.0.0.1:%d"
                                         % harness.free_port(), "--data-dir=" + self.c.master_dir,
                                         store])
        self.assertEqual(second.wait_exit(), 1)
        self.assertEqual(second.count("another master is using it"), 1, second.tail())
        self.assertTrue(self.c.master.alive())

    def test_version_names_the_libpq_built_in(self):
        rc, out, err = harness.run_cli("--version")
        self.assertEqual(rc, 0, err)
        self.assertIn("libpq 15.18, without TLS", out)

    def test_store_backend_against_the_server(self):
        self.check_suite(STORE_PG_TEST, {
            "CRAWLAB_TEST_PG": "host=127.0.0.1 port=%d user=%s" % (self.plain.port,
                                                                  pg.SUPERUSER)}, 9)
        # Every test dropped the database it made.
        self.assertEqual(self.plain.psql(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'crawlab_test_%'").strip(), "0")

    def test_tls_relay_against_a_server_requiring_tls(self):
        self.check_suite(PGTLS_TEST, {
            "CRAWLAB_TEST_PG_TLS_PORT": str(self.tls.port),
            "CRAWLAB_TEST_PG_TLS_CA": os.path.join(self.certs, "ca.pem"),
            "CRAWLAB_TEST_PG_TLS_OTHER_CA": os.path.join(self.other_certs, "ca.pem"),
            "CRAWLAB_TEST_PG_PLAIN_PORT": str(self.plain.port)}, 6)

    def test_sighup_rereads_store_tls(self):
        # The relay's reload itself is test_pgtls.c's; here, the master's SIGHUP reaches it. (The
        # name is short: the relay's socket is under the test's directory, and a Unix socket's
        # path has at most 107 bytes.)
        self.tls.createdb("crawlab_sighup")
        ca = self.c.path("pg-ca.pem")
        shutil.copy(os.path.join(self.certs, "ca.pem"), ca)
        store = ("--store=postgres://%s@127.0.0.1:%d/crawlab_sighup?sslmode=verify-full"
                 "&sslrootcert=%s" % (pg.SUPERUSER, self.tls.port, ca))
        m = self.c.start_master(extra=[store])
        self.c.start_worker("w1")
        first = self.submit1("--", "true")
        self.assertEqual(self.wait_final([first])[first]["status"], "finished")
        m.signal(signal.SIGHUP)
        m.wait_log("SIGHUP: PostgreSQL TLS files read again")
        # A CA file that is no certificate is refused; the store goes on with what it had.
        with open(ca, "w") as f:
            f.write("not a certificate\n")
        m.signal(signal.SIGHUP)
        m.wait_log("SIGHUP: PostgreSQL TLS: ")
        self.assertEqual(m.count("the files loaded before stay in use"), 1, m.tail())
        second = self.submit1("--", "true")
        self.assertEqual(self.wait_final([second])[second]["status"], "finished")
        self.assertTrue(m.alive())


if __name__ == "__main__":
    harness.main()
