"""A real PostgreSQL (pg.py: Debian's server in a temporary directory, on a free 127.0.0.1 port,
as an unprivileged user): the binary's libpq, and the store's PostgreSQL backend
(tests/unit/test_store_pg.c, whose Check suite runs against this server)."""

import os
import subprocess

import harness
import pg

STORE_PG_TEST = os.environ.get("CRAWLAB_STORE_PG_TEST_BIN") or os.path.join(
    harness.HERE, "..", "..", "build", "tests", "unit", "test_store_pg")


class Postgres(harness.ClusterTest):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = pg.Server.start()

    @classmethod
    def tearDownClass(cls):
        root, proc = cls.server.root, cls.server.proc
        cls.server.stop()
        # Stopped by its pid, and its directory gone.
        assert not proc.alive() and not os.path.exists(root), (proc, root)

    def test_version_names_the_libpq_built_in(self):
        rc, out, err = harness.run_cli("--version")
        self.assertEqual(rc, 0, err)
        self.assertIn("libpq 15.18, without TLS", out)

    def test_store_backend_against_the_server(self):
        env = dict(os.environ, CRAWLAB_TEST_PG=self.server.conninfo().rsplit(" dbname=", 1)[0])
        out = subprocess.run([STORE_PG_TEST], env=env, capture_output=True, text=True,
                             timeout=harness.TEST_TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("100%: Checks: 7, Failures: 0, Errors: 0", out.stdout + out.stderr)
        # Every test dropped the database it made.
        self.assertEqual(self.server.psql(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'crawlab_test_%'").strip(), "0")


if __name__ == "__main__":
    harness.main()
