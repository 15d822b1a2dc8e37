#!/usr/bin/python3
"""The master's metrics: `crawlab-node metrics` (and GET /metrics with --metrics-listen) after a
task ran, parsed with the Prometheus client library's own parser; a real master and worker on
127.0.0.1. Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_metrics.py"""

import json
import os
import socket
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


def http(port, request, timeout=harness.CLI_TIMEOUT):
    """Sends request (bytes) to 127.0.0.1:port and reads until the server closes: (status line,
    headers as a lowercase dict, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in
                   (line.split(":", 1) for line in lines[1:]))
    return lines[0], headers, body


def get(port, path="/metrics"):
    return http(port, ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode())


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

    def start_with_http(self):
        """run_one_task with --metrics-listen on a free port of 127.0.0.1: (task, port)."""
        port = harness.free_port()
        task = self.run_one_task(extra=["--metrics-listen=127.0.0.1:%d" % port])
        self.c.master.wait_log("metrics on http://127.0.0.1:%d/metrics" % port)
        return task, port

    def test_get_metrics_over_http_serves_the_same_figures(self):
        task, port = self.start_with_http()
        status, headers, body = get(port)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(headers["connection"], "close")
        self.assertEqual(int(headers["content-length"]), len(body))
        self.check_values(body.decode("utf-8"), task)
        # HTTP/1.0 without Host is a whole request too
        status, _, body = http(port, b"GET /metrics HTTP/1.0\r\n\r\n")
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.check_values(body.decode("utf-8"), task)

    def test_other_paths_methods_and_malformed_requests_are_refused_and_serving_goes_on(self):
        task, port = self.start_with_http()
        self.assertEqual(get(port, "/")[0], "HTTP/1.1 404 Not Found")
        self.assertEqual(get(port, "/metrics?x=1")[0], "HTTP/1.1 404 Not Found")
        status, headers, _ = http(port, b"POST /metrics HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(status, "HTTP/1.1 405 Method Not Allowed")
        self.assertEqual(headers["allow"], "GET")
        bad = [
            b"GARBAGE\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n\r\n",                       # no Host
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two
            b"GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",             # double space
            b"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n",
            b"GET /metrics HTTP/1.1\nHost: a\n\n",                    # bare LF
            b"GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n",
            b"\x00\xff\r\n\r\n",
        ]
        for req in bad:
            self.assertEqual(http(port, req)[0], "HTTP/1.1 400 Bad Request", req[:40])
        # a client that connects and says nothing does not stop the others
        with socket.create_connection(("127.0.0.1", port)):
            status, _, body = get(port)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.check_values(body.decode("utf-8"), task)
        self.assertTrue(self.c.master.alive())

    def test_metrics_listen_needs_a_named_address(self):
        rc, out, err = self.c.run_cli("--role=master", "--metrics-listen=9100", timeout=10)
        self.assertEqual(rc, 2, (out, err))
        self.assertIn("--metrics-listen", err)
        rc, out, err = self.c.run_cli("--role=master", "--metrics-listen=:9100", timeout=10)
        self.assertEqual(rc, 2, (out, err))


if __name__ == "__main__":
    harness.main()
