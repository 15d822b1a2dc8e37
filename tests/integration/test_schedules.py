#!/usr/bin/python3
"""Schedules on a real master on 127.0.0.1: each fire time gets exactly one task, also when the
master is killed with SIGKILL around fire instants and restarted; missed fires are never a burst;
--overlap=skip makes no task while the previous one waits.

The schedules are written into the master's store (white-box: the schema of crawlab.db, version
4) while the master is stopped, since the client has no schedule command yet.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_schedules.py"""

import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FIRED = "schedule 1: task "
OVERLAP_SKIP, OVERLAP_ALLOW = 0, 1
MISSED_RUN_ONCE = 0


class Schedules(harness.ClusterTest, harness.TaskOps):

    def db(self):
        return sqlite3.connect(os.path.join(self.c.master_dir, "crawlab.db"), timeout=10)

    def add_schedule(self, name, expr, overlap):
        """With the master stopped: a schedule of `true` for any node, made now."""
        db = self.db()
        try:
            db.execute("INSERT INTO schedules (name, expr, tz_offset, cmd, env_json, priority,"
                       " timeout_ms, node_key, overlap, missed, created_ms)"
                       " VALUES (?, ?, 0, 'true', '{}', 0, 0, '', ?, ?, ?)",
                       (name, expr, overlap, MISSED_RUN_ONCE, int(time.time() * 1000)))
            db.commit()
        finally:
            db.close()

    def fires(self):
        """[(fire_s, task_id)] of schedule 1, oldest first."""
        db = self.db()
        try:
            return db.execute("SELECT fire_s, task_id FROM schedule_fires WHERE schedule_id = 1"
                              " ORDER BY fire_s").fetchall()
        finally:
            db.close()

    def fresh_master(self):
        """A master that made its store, stopped again."""
        self.c.start_master()
        self.assertEqual(self.c.master.stop(), 0)

    def test_each_fire_time_has_one_task_across_kill9_restarts(self):
        self.fresh_master()
        self.add_schedule("every-second", "@every 1s", OVERLAP_ALLOW)
        restarts = []  # (time the master was killed, time it was started again), seconds
        self.c.start_master()
        for cycle in range(3):
            # a fire is being stored right now: kill the master the moment it says so
            self.c.master.wait_log(FIRED, count=2)
            killed = time.time()
            self.c.master.kill9()
            started = time.time()
            self.c.start_master()
            restarts.append((killed, started))
        self.c.master.wait_log(FIRED, count=2)
        tasks = {i: t for i, t in self.tasks().items() if t["name"] == "every-second"}
        self.assertEqual(self.c.master.stop(), 0)

        fires = self.fires()
        times = [f for f, _ in fires]
        ids = [i for _, i in fires]
        self.assertEqual(len(set(times)), len(times), "a fire time twice")
        self.assertEqual(len(set(ids)), len(ids), "one task for two fires")
        # every task the schedule made is the task of one fire, and every fire's task exists
        self.assertEqual(sorted(ids), sorted(tasks), "tasks and fires differ")
        self.assertGreaterEqual(len(fires), 8)
        # never a burst: while the master was down, at most one fire (the latest missed one)
        for killed, started in restarts:
            down = [f for f in times if int(killed) < f <= int(started)]
            self.assertLessEqual(len(down), 1, "fires %r for the downtime %r" %
                                 (down, (killed, started)))

    def test_overlap_skip_makes_no_task_while_the_previous_one_waits(self):
        self.fresh_master()
        self.add_schedule("one-at-a-time", "@every 1s", OVERLAP_SKIP)
        self.c.start_master()  # no worker: the first task stays pending
        self.c.master.wait_log("no task for the fire", count=3)
        tasks = [t for t in self.tasks().values() if t["name"] == "one-at-a-time"]
        self.assertEqual(len(tasks), 1, tasks)
        self.assertEqual(tasks[0]["status"], "pending")
        self.assertEqual(self.c.master.stop(), 0)
        self.assertEqual(len(self.fires()), 1)


if __name__ == "__main__":
    harness.main()
