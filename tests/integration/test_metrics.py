#!/usr/bin/python3
"""The master's metrics: `crawlab-node metrics` (and GET /metrics with --metrics-listen) after a
task ran, parsed with the Prometheus client library's own parser; a real master and worker on
127.0.0.1. Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_metrics.py"""

import json
import os
import sys

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REGISTERED = "registered with the master"
LINES = 7


def parse(text):
    """{family name: {(sample name, frozenset of labels): value}} and {family name: type}."""
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        got = samples.setdefault(fam.name, {})
        for s in fam.samples:
            got[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples, family, name=None, **labels):
    return samples[family][(name or family, frozenset(labels.items()))]


class Metrics(harness.ClusterTest, harness.TaskOps):

    def run_one_task(self, extra=()):
        """A master (with extra flags) and one worker, and one task that logs LINES lines and
        stores one result item, finished. Returns the task as `tasks --json` shows it."""
        self.c.start_master(extra=list(extra))
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        self.c.wait_status("online", names=["w1"])
        item = json.dumps({"type": "data", "payload": {"n": 1}, "ipc": True})
        prog = self.script("job.sh", "for i in $(seq %d); do echo line $i; done\necho '%s'\n"
                           % (LINES, item))
        tid = self.submit1("--", "sh", prog)
        self.wait_final([tid])
        task = self.task(tid)
        self.assertEqual(task["status"], "finished", task)
        self.assertEqual(len(self.results(tid)), 1)
        return task

    def check_values(self, text, task):
        samples, types = parse(text)
        self.assertEqual(types["crawlab_nodes"], "gauge")
        self.assertEqual(types["crawlab_log_lines"], "counter")  # the parser drops _total
        self.assertEqual(types["crawlab_dispatch_seconds"], "histogram")
        self.assertEqual(value(samples, "crawlab_nodes", status="online"), 1)
        self.assertEqual(value(samples, "crawlab_nodes", status="offline"), 0)
        self.assertEqual(value(samples, "crawlab_tasks", status="finished"), 1)
        self.assertEqual(value(samples, "crawlab_tasks", status="pending"), 0)
        self.assertEqual(value(samples, "crawlab_queue_depth"), 0)
        self.assertGreaterEqual(task["log_lines"], LINES)
        self.assertGreaterEqual(value(samples, "crawlab_log_lines", "crawlab_log_lines_total"),
                                task["log_lines"])
        self.assertGreaterEqual(value(samples, "crawlab_log_bytes", "crawlab_log_bytes_total"),
                                task["log_lines"] * len("line 1\n"))
        self.assertEqual(
            value(samples, "crawlab_result_items", "crawlab_result_items_total"), 1)
        self.assertGreaterEqual(
            value(samples, "crawlab_store_commits", "crawlab_store_commits_total"), 1)
        self.assertEqual(value(samples, "crawlab_dispatch_seconds",
                               "crawlab_dispatch_seconds_count"), 1)
        self.assertEqual(value(samples, "crawlab_dispatch_seconds",
                               "crawlab_dispatch_seconds_bucket", le="+Inf"), 1)
        commits = value(samples, "crawlab_store_commit_seconds",
                        "crawlab_store_commit_seconds_count")
        self.assertGreaterEqual(commits, 1)
        # the buckets are cumulative: never decreasing, the last one is the count
        buckets = sorted((float(dict(k[1])["le"]), v)
                         for k, v in samples["crawlab_store_commit_seconds"].items()
                         if k[0] == "crawlab_store_commit_seconds_bucket")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(buckets[-1], (float("inf"), commits))
        # the worker's connection at least, and this command's
        self.assertGreaterEqual(value(samples, "crawlab_connections_open"), 1)
        self.assertGreaterEqual(value(samples, "crawlab_connections_accepted",
                                      "crawlab_connections_accepted_total"), 2)
        self.assertEqual(value(samples, "crawlab_tls_handshakes_refused",
                               "crawlab_tls_handshakes_refused_total"), 0)
        return samples

    def test_metrics_command_prints_parsable_text_with_the_tasks_and_nodes(self):
        task = self.run_one_task()
        rc, out, err = self.c.cli("metrics")
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        self.check_values(out, task)

    def test_metrics_command_counts_a_call_refused_for_its_key(self):
        self.c.start_master()
        bad = self.c.path("wrong.key")
        with open(bad, "w") as f:
            f.write("1" * 64 + "\n")
        os.chmod(bad, 0o600)
        rc, out, err = self.c.run_cli("metrics", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % bad)
        self.assertEqual(rc, 3, (out, err))
        rc, out, err = self.c.cli("metrics")
        self.assertEqual(rc, 0, err)
        samples, _ = parse(out)
        self.assertEqual(value(samples, "crawlab_auth_refused", "crawlab_auth_refused_total"), 1)

    def test_metrics_command_needs_the_admin_key(self):
        self.c.start_master()
        rc, out, err = self.c.run_cli("metrics", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.key_file)
        self.assertNotEqual(rc, 0, (out, err))
        self.assertEqual(out, "")


if __name__ == "__main__":
    harness.main()
