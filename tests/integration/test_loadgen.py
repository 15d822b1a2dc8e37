#!/usr/bin/python3
"""The load generator (bench/loadgen) against a real master on 127.0.0.1: 20 simulated workers
with a fifth of them writing garbage, then 20 workers draining 50 queued tasks. The well-behaved
workers see no error, every task is taken exactly once.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node CRAWLAB_LOADGEN_BIN=build/bench/loadgen \
     python3 tests/integration/test_loadgen.py"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LOADGEN = os.path.abspath(os.environ.get("CRAWLAB_LOADGEN_BIN") or
                          os.path.join(harness.HERE, "..", "..", "build", "bench", "loadgen"))


class Loadgen(harness.ClusterTest):

    def loadgen(self, *args):
        """Runs loadgen against this cluster's master; returns its JSON summary."""
        rc, out, err = harness.run_cli("--master=%s" % self.c.master_addr,
                                       "--auth-key-file=%s" % self.c.key_file,
                                       "--heartbeat-interval=1",
                                       "--master-pid=%d" % self.c.master.pid, *args,
                                       binary=LOADGEN, timeout=60)
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def test_fleet_with_garbage_then_dispatch(self):
        self.c.start_master()
        s = self.loadgen("--workers=20", "--duration=3", "--misbehave=0.2",
                         "--misbehave-kind=garbage")
        self.assertEqual(s["errors"], {})
        self.assertEqual((s["well_behaved"], s["registered"], s["online"]), (16, 16, 16))
        self.assertEqual(s["lost"], 0)
        self.assertGreater(s["calls"], 0)
        self.assertGreater(s["master"]["vmrss_kib"], 0)
        bad = s["misbehaving"]
        self.assertEqual(bad["kind"], "garbage")
        self.assertGreaterEqual(bad["connects"], 4)
        self.assertGreater(bad["garbage_bytes"], 0)
        # the master closed the garbage connections and kept serving
        self.assertTrue(self.c.master.alive())

        for _ in range(50):
            rc, out, err = self.c.cli("submit", "--", "true")
            self.assertEqual(rc, 0, err)
        s = self.loadgen("--workers=20", "--mode=dispatch", "--tasks=50", "--duration=50")
        self.assertEqual(s["errors"], {})
        self.assertEqual((s["tasks"], s["duplicates"], s["abandoned"]), (50, 0, 0))
        rc, out, err = self.c.cli("tasks", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(sorted({t["status"] for t in json.loads(out)}), ["finished"])


if __name__ == "__main__":
    harness.main()
