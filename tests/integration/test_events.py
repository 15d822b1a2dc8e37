#!/usr/bin/python3
"""Events: what the master records for nodes and tasks (and a worker's SendNotification),
`crawlab-node events` from a cursor with --follow, and the --on-event hooks: in order, at least
once, a failing or hung hook retried (a hung one killed), one that always fails holding back only
itself, and a restarted master going on from each hook's cursor. A real master and worker on
127.0.0.1. Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_events.py"""

import http.server
import json
import os
import shutil
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REGISTERED = "registered with the master"

# Fails the first time it is given an event, records it (its stdin, one JSON line) the second.
FIRST_FAILS = """#!/bin/sh
m="%(dir)s/tried.$CRAWLAB_EVENT_ID"
if [ ! -e "$m" ]; then : > "$m"; exit 1; fi
cat >> "%(dir)s/delivered.jsonl"
"""

# Hangs the first time it is given node.online; records every event while the gate file exists
# and fails while it does not.
HANGS_THEN_GATED = """#!/bin/sh
m="%(dir)s/hung.$CRAWLAB_EVENT_ID"
if [ "$CRAWLAB_EVENT_KIND" = node.online ] && [ ! -e "$m" ]; then : > "$m"; sleep 60; fi
[ -e "%(dir)s/gate" ] || exit 1
cat >> "%(dir)s/delivered.jsonl"
"""

ITEM = '{"type":"data","payload":{"i":1},"ipc":true}'
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook on 127.0.0.1 that keeps what is POSTed to it (server.got: (headers, body))."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Events(harness.ClusterTest, harness.TaskOps):

    def hook(self, name, template):
        path = self.script(name, template % {"dir": self.c.dir})
        os.chmod(path, 0o755)
        return path

    def events(self, *args):
        rc, out, err = self.c.cli("events", "--json", *args)
        self.assertEqual(rc, 0, err)
        return [json.loads(line) for line in out.splitlines()]

    def delivered(self):
        path = self.c.path("delivered.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]

    def node(self, action, node):
        """`crawlab-node node ACTION NODE` (the sub-command comes right after the command)."""
        return self.c.run_cli("node", action, node, "--master=%s" % self.c.master_addr,
                              "--admin-key-file=%s" % self.c.admin_key_file)

    def wait_kind(self, kind, *args):
        return harness.wait_until(lambda: [e for e in self.events(*args) if e["kind"] == kind],
                                  what="an event %s" % kind)

    def test_node_and_task_events_followed_and_delivered_to_hooks(self):
        recorder = self.hook("first-fails.sh", FIRST_FAILS)
        self.c.start_master(extra=["--on-event=%s" % recorder, "--on-event=exit 1"])
        # Nothing has happened yet: a follower from the start sees what comes.
        self.assertEqual(self.events(), [])
        # An admin method: the node key does not open it.
        rc, _, err = self.c.run_cli("events", "--master=%s" % self.c.master_addr,
                                    "--admin-key-file=%s" % self.c.key_file)
        self.assertEqual(rc, 3, err)
        self.assertIn("the node key cannot call admin methods", err)
        follower = self.c.spawn_cli("follower", "events", "--follow", "--json", "--after=0")
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        online = self.wait_kind("node.online")[0]
        self.assertTrue(online["node_key"])
        self.assertEqual(online["data"]["name"], "w1")

        with_item = self.submit1("--", "sh", "-c", "echo '%s'" % ITEM)
        empty = self.submit1("--", "true")
        failing = self.submit1("--", "sh", "-c", "exit 3")
        long = self.submit1("--", "sleep", "60")
        self.wait_task_status(long, "running")
        rc, _, err = self.c.cli("cancel", long)
        self.assertEqual(rc, 0, err)
        self.wait_final([with_item, empty, failing, long])
        w.stop()
        self.wait_kind("node.offline")

        evs = self.events()
        ids = [e["id"] for e in evs]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))

        def kinds_of(task):
            return [e["kind"] for e in evs if e["task_id"] == task]

        # Our worker notifies once, with the final status: after it, as the report went first.
        for task, end in [(with_item, "task.finished"), (empty, "task.finished_empty"),
                          (failing, "task.error"), (long, "task.cancelled")]:
            ks = kinds_of(task)
            self.assertEqual([k for k in ks if k != "task.notification"],
                             ["task.started", end], (task, ks))
            self.assertEqual(ks.count("task.notification"), 1, (task, ks))
        by_kind = {(e["kind"], e["task_id"]): e for e in evs}
        self.assertEqual(by_kind[("task.finished", with_item)]["data"]["data_items"], 1)
        self.assertEqual(by_kind[("task.error", failing)]["data"]["exit_code"], 3)
        self.assertEqual(by_kind[("task.notification", with_item)]["node_key"],
                         online["node_key"])
        self.assertEqual(evs[-1]["kind"], "node.offline")

        # A cursor: the events after one of them, and a limit.
        mid = ids[len(ids) // 2]
        self.assertEqual([e["id"] for e in self.events("--after=%d" % mid)],
                         [i for i in ids if i > mid])
        self.assertEqual([e["id"] for e in self.events("--after=%d" % mid, "--limit=2")],
                         [i for i in ids if i > mid][:2])
        rc, out, err = self.c.cli("events", "--after=%d" % ids[0], "--limit=1")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^%d \S+ \S+ " % ids[1])

        # The follower saw every event as it came, and is still following.
        harness.wait_until(lambda: follower.count('"kind":"node.offline"'),
                           what="the follower to see node.offline")
        self.assertTrue(follower.alive())
        followed = [json.loads(line) for line in follower.lines() if line.startswith("{")]
        self.assertEqual([e["id"] for e in followed], ids)

        # The recorder got each event twice (it failed the first time), in order, once recorded;
        # the hook that always fails held back nobody.
        harness.wait_until(lambda: len(self.delivered()) == len(ids),
                           what="the hook to record every event")
        self.assertEqual(self.delivered(), evs)
        self.c.master.wait_log("hook 'exit 1': event %d failed" % ids[0], count=2)
        self.assertEqual(self.c.master.count("hook 'exit 1': event %d " % ids[1]), 0)

    def test_retries_and_the_node_life_cycle_are_recorded(self):
        self.c.start_master()
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        key = self.wait_kind("node.online")[0]["node_key"]
        first = self.submit1("--retries=1", "--retry-delay=0s", "--", "sh", "-c", "exit 3")
        retried = self.wait_kind("task.retried")[0]
        second = retried["task_id"]
        self.assertEqual((retried["data"]["retry_of"], retried["data"]["attempt"]), (first, 2))
        self.assertEqual(retried["node_key"], key)
        self.wait_final([second])
        rc, _, err = self.node("drain", "w1")  # it holds nothing: disabled at once
        self.assertEqual(rc, 0, err)
        disabled = self.wait_kind("node.disabled")[0]
        self.assertEqual((disabled["node_key"], disabled["data"]["reason"]), (key, "it holds no task"))
        w.stop()
        self.wait_kind("node.offline")
        rc, _, err = self.node("rm", "w1")
        self.assertEqual(rc, 0, err)
        self.wait_kind("node.removed")

        order = [(e["kind"], e["task_id"]) for e in self.events()
                 if e["kind"] not in ("task.started", "task.notification")]
        self.assertEqual(order, [("node.online", ""), ("task.error", first),
                                 ("task.retried", second), ("task.error", second),
                                 ("node.disabled", ""), ("node.offline", ""),
                                 ("node.removed", "")])

    def test_hung_hook_is_killed_and_a_restarted_master_resumes_from_its_cursor(self):
        hook = self.hook("hangs.sh", HANGS_THEN_GATED)
        open(self.c.path("gate"), "w").close()
        extra = ["--on-event=%s" % hook, "--on-event-timeout=1s"]
        self.c.start_master(extra=extra)
        w = self.c.start_worker("w1")
        w.wait_log(REGISTERED)
        # The first try of node.online hangs: killed after 1 s, then retried and recorded.
        harness.wait_until(lambda: [e["kind"] for e in self.delivered()] == ["node.online"],
                           what="node.online to be delivered after the hung try")
        self.assertEqual(self.c.master.count("took longer than 1000 ms: killed"), 1)

        # Gate closed: the next events fail; the master stops before it could deliver them.
        os.unlink(self.c.path("gate"))
        tid = self.submit1("--", "true")
        self.wait_final([tid])
        pending = self.wait_kind("task.notification")
        last = self.events()[-1]["id"]
        self.c.master.wait_log("failed: exit status 1")
        self.c.master.stop()
        self.assertEqual(len(self.delivered()), 1)

        open(self.c.path("gate"), "w").close()
        self.c.start_master(extra=extra)
        harness.wait_until(lambda: self.delivered() and self.delivered()[-1]["id"] >= last,
                           what="the hook to catch up after the restart")
        got = [e["id"] for e in self.delivered()]
        self.assertEqual(got, list(range(got[0], got[-1] + 1)), "each event once, in order")
        self.assertIn(pending[0]["id"], got)

    @harness.sqlite_only
    def test_many_events_come_in_pages_and_a_hook_far_behind_skips_them(self):
        # White-box: 10,001 events written into a stopped master's store, and a hook whose cursor
        # says it delivered none of them.
        self.c.start_master()
        self.c.master.stop()
        hook = "cat >> %s" % self.c.path("delivered.jsonl")
        db = sqlite3.connect(os.path.join(self.c.master_dir, "crawlab.db"))
        with db:
            # Of now: the default --retention (30 days) would purge older ones meanwhile.
            db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                       " WHERE i < 10001) INSERT INTO events (at_ms, kind, node_key, task_id,"
                       " data) SELECT ?, 'node.online', 'w' || i, '',"
                       " '{\"name\":\"' || hex(randomblob(100)) || '\"}' FROM n",
                       (int(time.time() * 1000),))
            db.execute("INSERT INTO event_cursors VALUES (?, 0)", (hook,))
        db.close()
        self.c.start_master(extra=["--on-event=%s" % hook])
        # The hook skips the 10,001 and is told so, by the next event.
        harness.wait_until(self.delivered, what="the hook to get hook.overflow")
        got = self.delivered()
        self.assertEqual([(e["id"], e["kind"]) for e in got], [(10002, "hook.overflow")])
        self.assertEqual(got[0]["data"], {"hook": hook, "skipped": 10001, "after": 0,
                                          "through": 10001})
        # Pages of at most 1000: every event once, in order.
        self.assertEqual([e["id"] for e in self.events()], list(range(1, 10003)))
        self.assertEqual([e["id"] for e in self.events("--after=100", "--limit=1500")],
                         list(range(101, 1601)))

    def test_the_webhook_example_posts_each_event(self):
        if not shutil.which("curl"):
            self.skipTest("curl is not installed")
        server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
        server.got = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.shutdown)
        hook = "WEBHOOK_URL=http://127.0.0.1:%d/hook %s" % (
            server.server_address[1], os.path.join(EXAMPLES, "hook-webhook.sh"))
        self.c.start_master(extra=["--on-event=%s" % hook])
        self.c.start_worker("w1").wait_log(REGISTERED)
        self.wait_final([self.submit1("--", "true")])
        self.wait_kind("task.notification")
        self.wait_kind("task.finished_empty")
        evs = self.events()
        harness.wait_until(lambda: len(server.got) == len(evs), what="every event POSTed")
        self.assertEqual([json.loads(body) for _, body in server.got], evs)
        self.assertEqual([h["X-Crawlab-Event"] for h, _ in server.got], [e["kind"] for e in evs])


if __name__ == "__main__":
    harness.main()
