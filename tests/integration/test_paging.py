#!/usr/bin/python3
"""Listings at any size, short task ids and retention: `tasks` past the 4 MiB message limit, the
--limit / --before walk, unique and ambiguous id prefixes, --retention and `tasks purge` (ended
tasks go with their logs and items, pending and running ones stay), and a purge killed with
SIGKILL midway; a real master (and a worker where tasks must run) on 127.0.0.1.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_paging.py"""

import json
import os
import re
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import find_node, wait_until  # noqa: E402

REGISTERED = "registered with the master"
MIB = 1 << 20


def db_rows(master_dir, sql, args=()):
    """Rows of a read-only query on the master's store (white-box: the schema of crawlab.db)."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(master_dir, "crawlab.db"), uri=True,
                         timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def log_files(master_dir):
    d = os.path.join(master_dir, "logs")
    return {f[:-4] for f in os.listdir(d) if f.endswith(".log")}


def unique_prefix(tid, ids):
    """The shortest prefix (6 digits at least) of tid that no other of ids starts with. Ids of
    one master made in one second share their first 18 digits."""
    n = 6
    while any(o != tid and o.startswith(tid[:n]) for o in ids):
        n += 1
    return tid[:n]


class Paging(harness.ClusterTest, harness.TaskOps):

    def tasks_json(self, *args):
        rc, out, err = self.c.cli("tasks", "--json", *args)
        self.assertEqual(rc, 0, err)
        return json.loads(out), err

    def walk(self, limit):
        """Every task through --limit/--before pages: [ids] in the order seen."""
        seen, before = [], None
        for _ in range(10000):
            args = ["--limit=%d" % limit] + (["--before=%s" % before] if before else [])
            page, err = self.tasks_json(*args)
            seen += [t["id"] for t in page]
            if len(page) < limit:
                self.assertEqual(err, "", "a short page is the last one")
                return seen
            if "more are older" not in err:
                return seen
            before = page[-1]["id"]
        self.fail("the walk does not end")

    # ---- listings past the message limit

    def test_listing_over_4mib(self):
        """80 tasks of 60 KB commands (4.8 MB): today's single ListTasks answer would exceed the
        4 MiB message limit; the pages stay under it and the CLI shows every task."""
        self.c.start_master()
        word = "x" * 60000
        ids = [self.submit1("--name=big%d" % i, "--", "echo", word) for i in range(80)]
        listed, _ = self.tasks_json()
        self.assertEqual(len(listed), 80)
        self.assertEqual([t["id"] for t in listed], ids[::-1], "newest first")
        self.assertTrue(all(len(t["cmd"]) > 60000 for t in listed))
        self.assertGreater(sum(len(t["cmd"]) for t in listed), 4 * MIB)
        # the table too (stdout is a pipe: every task), and a --limit under a page
        rc, out, err = self.c.cli("tasks")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 81)
        rc, out, err = self.c.cli("tasks", "--limit=5")
        self.assertEqual((rc, len(out.splitlines())), (0, 6), err)
        self.assertIn("5 tasks shown, more are older: crawlab-node tasks --before=%s" % ids[-5],
                      err)

    def test_limit_and_before_walk_sees_each_task_once(self):
        self.c.start_master()
        ids = [self.submit1("--name=t%d" % i, "--", "true") for i in range(130)]
        everything, _ = self.tasks_json("--limit=0")
        self.assertEqual([t["id"] for t in everything], ids[::-1])
        for limit in (1, 7, 50, 130, 1000):
            seen = self.walk(limit)
            self.assertEqual(seen, ids[::-1], "limit %d" % limit)
        # tasks submitted during a walk are newer than its cursor: none is seen twice or skipped
        first, err = self.tasks_json("--limit=40")
        newer = [self.submit1("--", "true") for _ in range(5)]
        rest, before = [], first[-1]["id"]
        while True:
            page, err = self.tasks_json("--limit=40", "--before=%s" % before)
            rest += [t["id"] for t in page]
            if "more are older" not in err:
                break
            before = page[-1]["id"]
        self.assertEqual([t["id"] for t in first] + rest, ids[::-1])
        self.assertEqual(set(self.tasks()), set(ids) | set(newer))
        # --before with a short id, and --status filtering with pages
        page, _ = self.tasks_json("--limit=3", "--before=%s" % unique_prefix(ids[100], ids))
        self.assertEqual([t["id"] for t in page], ids[99:96:-1])
        rc, out, err = self.c.cli("tasks", "--before=%s" % ids[0][:6] + "zz")
        self.assertEqual(rc, 2, err)
        pending, _ = self.tasks_json("--status=pending", "--limit=0")
        self.assertEqual(len(pending), 135)

    # ---- short ids

    def test_short_ids(self):
        self.c.start_master()
        self.c.start_worker("w1").wait_log(REGISTERED)
        tid = self.submit1("--", "sh", "-c", 'echo hello; echo \'{"type":"data","ipc":true,'
                           '"payload":{"n":1}}\'')
        self.wait_final([tid])
        # ids of one master made in one second share their first 18 digits: the prefix that
        # names this task alone is one digit past what it shares with the others
        others = [self.submit1("--", "sleep", "600") for _ in range(2)]
        known = [tid] + others
        p = unique_prefix(tid, known)
        rc, out, err = self.c.cli("logs", p)
        self.assertEqual((rc, out), (0, "hello\n"), err)
        rc, out, err = self.c.cli("results", p)
        self.assertEqual((rc, json.loads(out)), (0, {"n": 1}), err)
        rc, out, err = self.c.cli("cancel", p)
        self.assertEqual(rc, 0, err)
        self.assertIn("already ended", out)
        q = unique_prefix(others[1], known)
        rc, out, err = self.c.cli("cancel", q)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(others[1], "cancelled")
        # ambiguous: refused with the candidates, exit 1
        common = os.path.commonprefix(known)
        self.assertGreaterEqual(len(common), 6)
        for cmd in ("logs", "results", "cancel"):
            rc, out, err = self.c.cli(cmd, common)
            self.assertEqual(rc, 1, (cmd, out, err))
            self.assertIn("INVALID_ARGUMENT", err)
            self.assertIn("ambiguous", err)
            for i in known:
                self.assertIn(i, err)
        # unknown: NOT_FOUND, exit 1; too short or not hex: a bad command line, exit 2
        unknown = "ffffff" if not any(i.startswith("ffffff") for i in known) else "000000"
        rc, out, err = self.c.cli("logs", unknown)
        self.assertEqual(rc, 1, err)
        self.assertIn("NOT_FOUND", err)
        for bad in (tid[:5], tid[:6].upper(), "xyzxyz"):
            rc, out, err = self.c.cli("logs", bad)
            self.assertEqual(rc, 2, (bad, err))

    # ---- retention

    @harness.sqlite_only
    def test_retention_purges_ended_tasks_only(self):
        self.c.start_master(extra=["--retention=1s"])
        w1 = self.c.start_worker("w1", extra=["--max-runners=4"])
        w2 = self.c.start_worker("w2")
        for w in (w1, w2):
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=["w1", "w2"])
        k1, k2 = find_node(ns, name="w1")["key"], find_node(ns, name="w2")["key"]
        w2.stop()
        self.c.wait_status("offline", names=["w2"])
        running = self.submit1("--node=%s" % k1, "--", "sh", "-c", "echo started; sleep 600")
        pending = self.submit1("--node=%s" % k2, "--", "true")  # w2 is away: stays pending
        self.wait_task_status(running, "running")
        wait_until(lambda: self.logs(running) == ["started"], what="the running task's log")
        item = '{"type":"data","ipc":true,"payload":{"n":1}}'
        ended = [self.submit1("--node=%s" % k1, "--", "sh", "-c",
                              "echo line %d; echo '%s'" % (i, item)) for i in range(3)]
        ended.append(self.submit1("--node=%s" % k1, "--", "sh", "-c", "echo bad; exit 3"))
        # the ended ones disappear from the listing, once each has been over for 1 s
        wait_until(lambda: not set(ended) & set(self.tasks()), timeout=30,
                   what="the ended tasks to be purged")
        for tid in ended:
            rc, out, err = self.c.cli("logs", tid)
            self.assertEqual(rc, 1, err)
            self.assertIn("NOT_FOUND", err)
        # their logs go once the deletion is committed, by a thread of the master's
        wait_until(lambda: not log_files(self.c.master_dir) & set(ended),
                   what="the purged tasks' logs removed")
        self.assertIn(running, log_files(self.c.master_dir))
        marks = ",".join("?" * len(ended))
        for table, col in (("items", "task_id"), ("task_history", "task_id"),
                           ("tasks", "id")):
            n = db_rows(self.c.master_dir, "SELECT count(*) FROM %s WHERE %s IN (%s)"
                        % (table, col, marks), ended)[0][0]
            self.assertEqual(n, 0, table)
        # pending and running tasks older than the retention stay, however many sweeps pass:
        # one more ended task is purged after they are well past 1 s old
        created = self.task(running)["created_ms"]
        wait_until(lambda: time.time() * 1000 > created + 1500, what="1.5 s past the running "
                   "task's creation")
        late = self.submit1("--node=%s" % k1, "--", "true")
        wait_until(lambda: late not in self.tasks(), timeout=30, what="the late task purged")
        ts = self.tasks()
        self.assertEqual(ts[running]["status"], "running")
        self.assertEqual(ts[pending]["status"], "pending")
        self.assertEqual(self.logs(running), ["started"])
        self.assertIn("retention: purged", self.c.master.log())

        # events go by age alike, whatever they are about
        def events():
            rc, out, err = self.c.cli("events", "--json")
            self.assertEqual(rc, 0, err)
            return [json.loads(line) for line in out.splitlines()]
        wait_until(lambda: not [e for e in events() if e["task_id"] in ended + [running]],
                   timeout=30, what="the events of over 1 s ago purged")
        wait_until(lambda: re.search(r"retention: purged \d+ events", self.c.master.log()),
                   what="the master to log the events it purged")

    @harness.sqlite_only
    def test_tasks_purge_on_demand(self):
        """With --retention=0 nothing goes by itself; `tasks purge --before` purges what ended
        before the time given, not a task that is still pending."""
        self.c.start_master(extra=["--retention=0"])
        self.c.start_worker("w1").wait_log(REGISTERED)
        done = [self.submit1("--", "sh", "-c", "echo %d" % i) for i in range(5)]
        self.wait_final(done)
        rc, out, err = self.c.cli("tasks", "purge", "--before=1d")
        self.assertEqual((rc, out.split()[0]), (0, "0"), err)
        self.assertEqual(set(done) - set(self.tasks()), set())
        ended_max = max(self.task(t)["ended_ms"] for t in done)
        wait_until(lambda: time.time() * 1000 > ended_max + 1000, what="1 s past the last end")
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        rc, out, err = self.c.cli("tasks", "purge", "--before=%s" % when)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[0], "5", out)
        wait_until(lambda: not set(done) & set(self.tasks()), what="the purge")
        wait_until(lambda: not log_files(self.c.master_dir) & set(done), what="their logs gone")
        rc, out, err = self.c.cli("tasks", "purge")
        self.assertEqual(rc, 2, err)
        rc, out, err = self.c.cli("tasks", "purge", "--before=yesterday")
        self.assertEqual(rc, 2, err)

    # ---- a purge killed midway

    def seed(self, n):
        """n ended tasks written straight into a stopped master's store, each with a log file of
        a few lines and an item, ended in 2020 (white-box: the schema of crawlab.db). Returns
        their ids."""
        db = sqlite3.connect(os.path.join(self.c.master_dir, "crawlab.db"))
        logs = os.path.join(self.c.master_dir, "logs")
        ids = []
        t0 = 1577836800000  # 2020-01-01
        with db:
            for i in range(n):
                tid = "5e0be100%016x" % (i + 1)
                body = "".join("line %d of task %d\n" % (k, i) for k in range(3)).encode()
                with open(os.path.join(logs, tid + ".log"), "wb") as f:
                    f.write(body)
                db.execute("INSERT INTO tasks (id, name, cmd, param, env_json, priority,"
                           " timeout_ms, node_key, status, exit_code, log_lines, log_bytes,"
                           " data_items, created_ms, updated_ms, started_ms, ended_ms)"
                           " VALUES (?, '', 'true', '', '{}', 0, 0, '', 'finished', 0, 3, ?,"
                           " 1, ?, ?, ?, ?)",
                           (tid, len(body), t0 + i, t0 + i, t0 + i, t0 + i + 1))
                db.execute("INSERT INTO items (task_id, seq, data) VALUES (?, 1, '{}')", (tid,))
                ids.append(tid)
        db.close()
        os.sync()
        return ids

    def check_consistent(self):
        """No task without its log, no log without its task; returns the tasks left. The master
        may be purging meanwhile: it commits a batch, then removes the batch's logs. So a task
        whose log is missing counts only if its row is still there afterwards, and a log without
        a task only if it stays."""
        rows = db_rows(self.c.master_dir, "SELECT id, log_bytes FROM tasks")
        left = {tid: size for tid, size in rows}
        files = log_files(self.c.master_dir)
        path = lambda tid: os.path.join(self.c.master_dir, "logs", tid + ".log")  # noqa: E731
        missing = set()
        for tid, size in left.items():
            try:
                self.assertGreaterEqual(os.path.getsize(path(tid)), size)
            except FileNotFoundError:
                missing.add(tid)
        if missing:
            now = {tid for (tid,) in db_rows(self.c.master_dir, "SELECT id FROM tasks")}
            self.assertEqual(missing & now, set(), "tasks that lost their log")
        strays = files - set(left)
        wait_until(lambda: not any(os.path.exists(path(tid)) for tid in strays),
                   what="the logs without a task to go (%d of them)" % len(strays))
        orphans = db_rows(self.c.master_dir, "SELECT count(*) FROM items WHERE task_id NOT IN"
                          " (SELECT id FROM tasks)")[0][0]
        self.assertEqual(orphans, 0, "items without a task")
        return left

    @harness.sqlite_only
    def test_purge_killed_midway_stays_consistent(self):
        n = 6000
        self.c.start_master(extra=["--retention=0"])
        self.c.master.stop()
        ids = self.seed(n)
        remaining = n
        for round_ in range(3):
            self.c.start_master(extra=["--retention=0"])
            left = self.check_consistent()
            self.assertEqual(len(left), remaining)
            # the tasks that are left still read back (their logs are whole)
            tid = sorted(left)[0]
            self.assertEqual(self.logs(tid), ["line %d of task %d" % (k, ids.index(tid))
                                              for k in range(3)])
            rc, out, err = self.c.cli("tasks", "purge", "--before=2021-01-01")
            self.assertEqual((rc, out.split()[0]), (0, str(remaining)), err)
            target = remaining - 500

            def below():
                c = db_rows(self.c.master_dir, "SELECT count(*) FROM tasks")[0][0]
                return c if c <= target else None
            remaining = wait_until(below, interval=0.005, what="the purge under way")
            self.c.master.kill9()
            self.assertGreater(remaining, 0, "killed before the purge ended")
            # whether this kill fell between a commit and the removal of its logs: the restart
            # says so ("removed N log files of purged tasks")
            remaining = db_rows(self.c.master_dir, "SELECT count(*) FROM tasks")[0][0]
        # a restart with the default retention (30 days) finishes the job by itself
        self.c.start_master()
        self.check_consistent()
        wait_until(lambda: db_rows(self.c.master_dir, "SELECT count(*) FROM tasks")[0][0] == 0,
                   timeout=60, what="the purge to finish")
        # the last batch's logs go right after its commit
        wait_until(lambda: not log_files(self.c.master_dir), what="the last logs removed")
        self.assertEqual(db_rows(self.c.master_dir, "SELECT count(*) FROM items")[0][0], 0)
        rc, out, err = self.c.cli("tasks", "--json")
        self.assertEqual((rc, json.loads(out)), (0, []), err)


if __name__ == "__main__":
    harness.main()
