#!/usr/bin/python3
"""crawlab-node benchmark: listing and retention with a large store.

A store of N ended tasks (default 200,000, each with a 3-line log file and one result item) is
written straight into a fresh master's data directory (white-box: the schema of crawlab.db), then
a master and one worker run on 127.0.0.1. Measured:

  1. `tasks --limit=20` wall time (the whole client process: start, connect, one page), quiet;
  2. dispatch latency (`started_ms - created_ms` of `submit -- true` tasks, one at a time), quiet;
  3. the same two while `tasks purge` deletes every seeded task in the background, and how long
     the purge takes (tasks per second).

Python 3 standard library only; uses tests/integration/harness.py to start and stop processes.
It prints figures and never fails on speed; exit status 1 when a step could not run to its end.

    /usr/bin/python3 bench/paging.py                  # 200,000 tasks
    /usr/bin/python3 bench/paging.py --tasks=20000    # a quick run
"""

import argparse
import json
import math
import os
import select
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

T2020 = 1577836800000  # 2020-01-01, when the seeded tasks ran


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of the values; None when empty."""
    v = sorted(values)
    if not v:
        return None
    return v[max(1, math.ceil(p / 100.0 * len(v))) - 1]


def seed(master_dir, n):
    """n finished tasks, each with a log of 3 lines and one item, written into a stopped master's
    store and logs/. Returns the seconds it took."""
    t0 = time.monotonic()
    logs = os.path.join(master_dir, "logs")
    db = sqlite3.connect(os.path.join(master_dir, "crawlab.db"))
    db.execute("PRAGMA synchronous = OFF")
    rows, items = [], []
    for i in range(n):
        tid = "5e0be100%016x" % (i + 1)
        body = ("seeded task %d, line 1\nline 2\nline 3\n" % i).encode()
        with open(os.path.join(logs, tid + ".log"), "wb") as f:
            f.write(body)
        created = T2020 + i * 10
        rows.append((tid, "seeded-%d" % i, created, created + 5, created + 9, len(body)))
        items.append((tid,))
    with db:
        db.executemany("INSERT INTO tasks (id, name, cmd, param, env_json, priority, timeout_ms,"
                       " node_key, assigned_node, status, exit_code, log_lines, log_bytes,"
                       " data_items, created_ms, updated_ms, started_ms, ended_ms)"
                       " VALUES (?1, ?2, 'true', '', '{}', 0, 0, '', 'w', 'finished', 0, 3, ?6,"
                       " 1, ?3, ?5, ?4, ?5)", rows)
        db.executemany("INSERT INTO items (task_id, seq, data) VALUES (?, 1, '{\"n\":1}')", items)
    db.close()
    os.sync()
    return time.monotonic() - t0


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = tempfile.mkdtemp(prefix="crawlab-paging-bench-")
        self.c = harness.Cluster(os.path.join(self.root, "cluster"), binary=args.bin)
        self.ok = True

    def count(self):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.c.master_dir, "crawlab.db"),
                             uri=True, timeout=10)
        try:
            return db.execute("SELECT count(*) FROM tasks WHERE name LIKE 'seeded-%'"
                              ).fetchone()[0]
        finally:
            db.close()

    def list_latency(self, n):
        """Wall times (ms) of n `tasks --limit=20` runs, each checked to print 20 tasks."""
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            rc, out, err = self.c.cli("tasks", "--limit=20")
            times.append((time.monotonic() - t0) * 1000)
            if rc != 0 or len(out.splitlines()) != 21:
                raise RuntimeError("tasks --limit=20: rc %d, %d lines, %s"
                                   % (rc, len(out.splitlines()), err.strip()))
        return times

    def dispatch(self, n, while_purging=False):
        """started_ms - created_ms of n tasks run one at a time; with while_purging, stops early
        (returning what it has) when the purge is over. Each task writes its id to a FIFO, so the
        wait for its start polls nothing; its row is read once it has ended."""
        fifo = self.c.path("started.fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        lat = []
        try:
            for i in range(n):
                # The count scans the tasks table (a read of its own on the store): done every
                # 20 tasks only, so that it does not weigh on the figures.
                if while_purging and i % 20 == 0 and self.count() == 0:
                    break
                rc, out, err = self.c.cli("submit", "--", "sh", "-c",
                                          'echo "$CRAWLAB_TASK_ID" >%s' % fifo)
                if rc != 0:
                    raise RuntimeError("submit: %s" % err.strip())
                tid = out.split()[0]
                got = b""
                deadline = time.monotonic() + 30
                while tid.encode() not in got:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise RuntimeError("task %s did not start within 30 s" % tid)
                    if select.select([fd], [], [], left)[0]:
                        got += os.read(fd, 4096)

                def done():
                    rc, out, err = self.c.cli("tasks", "--json", "--limit=1")
                    t = json.loads(out)[0] if rc == 0 and out.strip() else None
                    return (t if t and t["id"] == tid and t["status"] in harness.FINAL_STATUSES
                            else None)
                t = harness.wait_until(done, interval=0.02, what="task %s" % tid)
                lat.append(t["started_ms"] - t["created_ms"])
        finally:
            os.close(fd)
        return lat

    def report(self, name, values, unit="ms"):
        if not values:
            print("  %-44s no sample" % name)
            return
        print("  %-44s n=%d p50=%.1f p90=%.1f p99=%.1f max=%.1f %s"
              % (name, len(values), pct(values, 50), pct(values, 90), pct(values, 99),
                 max(values), unit), flush=True)

    def run(self):
        a = self.args
        print("== paging and retention: %d ended tasks in the store" % a.tasks, flush=True)
        self.c.start_master(extra=["--retention=0"])
        self.c.master.stop()
        print("  seeded in %.1f s" % seed(self.c.master_dir, a.tasks), flush=True)
        self.c.start_master(extra=["--retention=0"])
        self.c.start_worker("w1", extra=["--max-runners=4"]).wait_log("registered with the master")
        self.c.wait_status("online", names=["w1"])

        self.report("tasks --limit=20, quiet (wall, whole process)",
                    self.list_latency(a.listings))
        self.report("dispatch started-created, quiet", self.dispatch(a.dispatch))

        t0 = time.monotonic()
        rc, out, err = self.c.cli("tasks", "purge", "--before=2021-01-01")
        if rc != 0:
            raise RuntimeError("tasks purge: %s" % err.strip())
        print("  purge started: %s" % out.strip(), flush=True)
        during_list = self.list_latency(a.listings)
        left_after_list = self.count()
        during_dispatch = self.dispatch(a.dispatch, while_purging=True)
        left_after_dispatch = self.count()
        self.report("tasks --limit=20, during the purge", during_list)
        self.report("dispatch started-created, during the purge", during_dispatch)
        print("  seeded tasks left: %d after the listings, %d after the dispatches"
              % (left_after_list, left_after_dispatch), flush=True)
        harness.wait_until(lambda: self.count() == 0, timeout=3600, interval=0.2,
                           what="the purge to finish")
        dt = time.monotonic() - t0
        print("  purge of %d tasks: %.1f s, %.0f tasks/s (logs and items included)"
              % (a.tasks, dt, a.tasks / dt), flush=True)
        logdir = os.path.join(self.c.master_dir, "logs")
        harness.wait_until(lambda: len(os.listdir(logdir)) <= a.dispatch * 2, timeout=600,
                           interval=0.2, what="the purged tasks' logs to go")
        dt = time.monotonic() - t0
        print("  ... and their log files: %.1f s after the purge was asked for" % dt, flush=True)

    def close(self):
        self.c.stop_all()
        if self.ok and not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print("files kept in %s" % self.root)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=200000, help="ended tasks seeded (200000)")
    p.add_argument("--listings", type=int, default=30, help="tasks --limit=20 runs per phase")
    p.add_argument("--dispatch", type=int, default=100, help="tasks dispatched per phase")
    p.add_argument("--bin", default=harness.BIN, help="the crawlab-node binary")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    args = p.parse_args()
    b = Bench(args)
    try:
        b.run()
    except (RuntimeError, AssertionError) as e:
        b.ok = False
        print("note: %s" % e, flush=True)
    finally:
        b.close()
    return 0 if b.ok else 1


if __name__ == "__main__":
    sys.exit(main())
