#!/usr/bin/python3
"""A master on PostgreSQL whose database goes away while tasks stream their output (issue 14,
"lost while running"): the server is shut down mid-run, and started again once the outage has
been seen (the master's failed commit, a listing refused). Meanwhile the master stays up, keeps
its worker connected and acknowledges nothing it could not store: output is answered
UNAVAILABLE on a connection that stays up, and the worker keeps it and sends it again. Once the
database is back, every task finishes with every line and item exactly once and in order, and
ran once, and the worker never lost its connection.

Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_store_outage.py
(a build with libpq, and Debian's postgresql-15 server: skipped without them)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_chaos_masters import postgres_available  # noqa: E402

N_TASKS = 6
LINES = 3000


@unittest.skipUnless(postgres_available(), "needs a build with libpq and Debian's postgresql-15")
class StoreOutage(harness.ClusterTest, harness.TaskOps):

    def test_database_down_mid_run_loses_and_repeats_nothing(self):
        server = harness.pg_server()
        self.c.start_master(extra=["--store=" + harness.pg_store_uri(self.c.dir)])
        # At debug level the worker says each time its output was refused for want of a store.
        w = self.c.start_worker("w1", extra=["--max-runners=%d" % N_TASKS, "--log-level=debug"])
        self.c.wait_status("online", names=["w1"])
        argv, ran, totals = self.streamer()
        self.addCleanup(self.kill_runs, ran)
        ids = [self.submit1("--", *argv, "--lines", str(LINES), "--batch", "50",
                            "--items-every", "100", "--pace", "0.05", "--max-seconds", "120")
               for _ in range(N_TASKS)]
        self.wait_tasks(ids, lambda t: t["status"] == "running" and t["log_lines"] > 0,
                        what="every task to be running and to have stored output")

        failed_before = self.c.master.count("failed")
        server.pause()
        # The master finds the database gone on its next commit, and says so; the worker's
        # output is refused, and so is its registration while the database is away.
        harness.wait_until(lambda: self.c.master.count("failed") > failed_before,
                           what="the master to notice the outage")
        rc, _, err = self.c.cli("tasks")
        self.assertNotEqual(rc, 0, "a listing answered from a store that is away")
        # Output refused, more than once, and sent again on the same connection.
        w.wait_log("the master could not store the output", count=3)
        self.assertTrue(self.c.master.alive(), "the master died with its database")
        server.resume()

        final = self.wait_final(ids, timeout=180)
        self.assertTrue(self.c.master.alive())
        self.assertEqual(w.count("lost the connection to the master"), 0,
                         "the worker lost its master during the outage")
        problems = []
        for i in ids:
            self.assertEqual((final[i]["status"], final[i]["exit_code"]), ("finished", 0),
                             final[i])
            problems += self.check_output(i, totals, final[i])
        runs = harness.read_runs(ran)
        self.assertEqual(sorted(t for t, _, _ in runs), sorted(ids), "a task ran twice")
        self.assertEqual(problems, [])


if __name__ == "__main__":
    harness.main()
