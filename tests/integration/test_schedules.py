#!/usr/bin/python3
"""Schedules on a real master on 127.0.0.1: each fire time gets exactly one task, also when the
master is killed with SIGKILL around fire instants and restarted; missed fires are never a burst;
--overlap=skip makes no task while the previous one waits; a named zone is listed with its next
fire in UTC and in the zone, refused by a master that cannot read it and pauses a stored schedule
then; an --all-nodes fire makes one task per online, enabled node.

Schedules are added with `schedule add`; the fire records are read from the master's store
(white-box: the schema of the fire records, which SQLite and PostgreSQL share; harness.store_rows).
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_schedules.py"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FIRED = "schedule 1: task "


class Schedules(harness.ClusterTest, harness.TaskOps):

    def sched(self, action, *args, **kw):
        """`schedule ACTION` against this cluster's master: (rc, stdout, stderr)."""
        return self.c.run_cli("schedule", action, "--master=%s" % self.c.master_addr,
                              "--admin-key-file=%s" % self.c.admin_key_file, *args, **kw)

    def add_schedule(self, name, expr, *flags):
        """A schedule of `true` for any node; returns its id."""
        rc, out, err = self.sched("add", "--name=%s" % name, *flags, expr, "--", "true")
        self.assertEqual(rc, 0, err)
        return int(out.strip())

    def schedules(self):
        rc, out, err = self.sched("list", "--json")
        self.assertEqual(rc, 0, err)
        return {s["id"]: s for s in json.loads(out)}

    def fires(self, sid=1):
        """[(fire_s, task_id)] of schedule sid, oldest first."""
        return harness.store_rows(self.c, "SELECT fire_s, task_id FROM schedule_fires"
                                  " WHERE schedule_id = ? ORDER BY fire_s", (sid,))

    def test_listing_over_4mib(self):
        """80 schedules of 60 KB commands (4.8 MB): one ListSchedules answer would exceed the
        4 MiB message limit; the master pages them and the CLI lists every one."""
        self.c.start_master()
        word = "x" * 60000
        ids = []
        for i in range(80):
            rc, out, err = self.sched("add", "--name=big%d" % i, "@daily", "--", "echo", word)
            self.assertEqual(rc, 0, err)
            ids.append(int(out.strip()))
        listed = self.schedules()
        self.assertEqual(sorted(listed), sorted(ids))
        self.assertTrue(all(len(s["cmd"]) > 60000 for s in listed.values()))
        self.assertGreater(sum(len(s["cmd"]) for s in listed.values()), 4 << 20)
        rc, out, err = self.sched("list")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 81)  # the header and one line each

    def test_each_fire_time_has_one_task_across_kill9_restarts(self):
        self.c.start_master()
        self.assertEqual(self.add_schedule("every-second", "@every 1s", "--overlap=allow"), 1)
        restarts = []  # (time the master was killed, time it was started again), seconds
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
        self.c.start_master()  # no worker: the first task stays pending
        # --overlap=skip is the default; the retries go with each fire's task
        self.add_schedule("one-at-a-time", "@every 1s", "--retries=1", "--retry-delay=5s")
        self.c.master.wait_log("no task for the fire", count=3)
        tasks = [t for t in self.tasks().values() if t["name"] == "one-at-a-time"]
        self.assertEqual(len(tasks), 1, tasks)
        self.assertEqual(tasks[0]["status"], "pending")
        self.assertEqual((tasks[0]["retries"], tasks[0]["retry_delay_ms"]), (1, 5000))
        self.assertEqual(self.c.master.stop(), 0)
        self.assertEqual(len(self.fires()), 1)

    def test_add_list_show_pause_resume_rm(self):
        self.c.start_master()
        sid = self.add_schedule("nightly", "30 2 * * 1-5", "--tz=+02:00", "--priority=7",
                                "--missed=skip", "--overlap=cancel-previous", "--retries=2",
                                "--retry-delay=30s")
        s = self.schedules()[sid]
        self.assertEqual((s["retries"], s["retry_delay_ms"]), (2, 30000))
        self.assertEqual((s["name"], s["expr"], s["tz"], s["priority"], s["overlap"],
                          s["missed"], s["paused"], s["last_task"]),
                         ("nightly", "30 2 * * 1-5", "+02:00", 7, "cancel-previous", "skip",
                          False, ""))
        # 02:30 at +02:00 is 00:30 UTC, on a weekday
        nxt = time.gmtime(s["next_fire_s"])
        self.assertEqual((nxt.tm_hour, nxt.tm_min), (0, 30))
        self.assertLess(nxt.tm_wday, 5)
        self.assertGreater(s["next_fire_s"], time.time())
        rc, out, err = self.sched("list")
        self.assertEqual(rc, 0, err)
        self.assertIn("30 2 * * 1-5 (+02:00)", out)

        rc, out, err = self.sched("pause", str(sid), "--json")
        self.assertEqual(rc, 0, err)
        self.assertTrue(json.loads(out)["paused"])
        self.assertEqual(json.loads(out)["next_fire_s"], 0)
        rc, out, err = self.sched("show", str(sid))
        self.assertEqual(rc, 0, err)
        self.assertIn("paused:     yes", out)
        rc, out, err = self.sched("resume", str(sid), "--json")
        self.assertEqual(rc, 0, err)
        self.assertFalse(json.loads(out)["paused"])

        rc, out, err = self.sched("rm", str(sid))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.schedules(), {})
        rc, out, err = self.sched("show", str(sid))
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("unknown schedule", err)

    def test_a_bad_expression_is_refused_before_anything_is_stored(self):
        self.c.start_master()
        for expr, where in (("*/5 25 * * *", "hour at position 5"),
                            ("@every 10q", "duration at position 8"),
                            ("0 0 31 2 *", "day-of-month at position 5")):
            rc, out, err = self.sched("add", expr, "--", "true")
            self.assertEqual(rc, 2, (expr, out, err))
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn(where, err)
        rc, out, err = self.sched("add", "--tz=Nowhere/City", "@daily", "--", "true")
        self.assertEqual(rc, 2, err)
        self.assertIn("--tz: unknown zone Nowhere/City", err)
        self.assertEqual(self.schedules(), {})

    def test_a_named_zone_is_listed_refused_where_unreadable_and_pauses_its_schedule(self):
        self.c.start_master()
        # Asia/Kolkata has kept +05:30 since 1945: 02:30 there is 21:00 UTC, every day
        sid = self.add_schedule("kolkata", "30 2 * * *", "--tz=Asia/Kolkata")
        s = self.schedules()[sid]
        self.assertEqual((s["tz"], s["next_fire_utc_offset"]), ("Asia/Kolkata", 19800))
        nxt = time.gmtime(s["next_fire_s"])
        self.assertEqual((nxt.tm_hour, nxt.tm_min), (21, 0))
        self.assertTrue(time.time() < s["next_fire_s"] <= time.time() + 86400)
        rc, out, err = self.sched("show", str(sid))
        self.assertEqual(rc, 0, err)
        self.assertIn("zone:       Asia/Kolkata", out)
        self.assertIn("T02:30:00+05:30 in Asia/Kolkata)", out)
        rc, out, err = self.sched("list")
        self.assertEqual(rc, 0, err)
        self.assertIn("30 2 * * * (Asia/Kolkata)", out)
        self.assertEqual(self.c.master.stop(), 0)

        # a master without zoneinfo (the distroless image): the stored schedule is paused, a new
        # one refused; a client without zoneinfo either leaves the check to the master
        missing = self.c.path("no-zoneinfo")
        self.c.start_master(prefix=("env", "TZDIR=%s" % missing))
        line = self.c.master.wait_log("schedule %d: unknown zone Asia/Kolkata" % sid)
        self.assertIn("paused", line)
        self.assertTrue(self.schedules()[sid]["paused"])
        rc, out, err = self.sched("add", "--tz=Europe/Berlin", "@daily", "--", "true",
                                  env=dict(os.environ, TZDIR=missing))
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("unknown zone Europe/Berlin", err)
        self.assertIn(missing, err)
        self.assertEqual(list(self.schedules()), [sid])

    def test_an_all_nodes_fire_makes_one_task_per_online_enabled_node(self):
        self.c.start_master()
        for name in ("w1", "w2"):
            self.c.start_worker(name)
        self.c.wait_status("online", names=("w1", "w2"))
        sid = self.add_schedule("everywhere", "@every 1s", "--all-nodes", "--overlap=allow")
        self.c.master.wait_log("schedule %d: task " % sid, count=2)
        # a disabled node gets no task from the fires after that
        rc, out, err = self.c.run_cli("node", "disable", "w2", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file)
        self.assertEqual(rc, 0, err)
        disabled = int(time.time()) + 1  # a fire time after this is handled after the disable
        harness.wait_until(lambda: [f for f, _ in self.fires(sid) if f > disabled], timeout=10,
                           what="a fire after the disable")
        keys = {n["name"]: n["key"] for n in self.c.nodes()}
        self.assertEqual(self.c.master.stop(), 0)
        rows = harness.store_rows(self.c, "SELECT f.fire_s, f.node_key, t.node_key"
                                  " FROM schedule_fires f JOIN tasks t ON t.id = f.task_id"
                                  " WHERE f.schedule_id = ? ORDER BY f.fire_s", (sid,))
        # each task's fire record names the node the task is for
        per_fire = {}
        for fire_s, fire_node, task_node in rows:
            self.assertEqual(fire_node, task_node)
            per_fire.setdefault(fire_s, []).append(fire_node)
        # the first fire, before the disable, on both; each fire once per node at most
        self.assertEqual(sorted(per_fire[min(per_fire)]), sorted(keys.values()), rows)
        for fire_s, nodes in per_fire.items():
            self.assertEqual(len(nodes), len(set(nodes)), (fire_s, nodes))
            if fire_s > disabled:
                self.assertEqual(nodes, [keys["w1"]], (fire_s, nodes))

    def test_missed_fires_run_once_or_are_skipped_never_a_burst(self):
        self.c.start_master()
        self.assertEqual(self.add_schedule("once", "@every 1s", "--overlap=allow"), 1)
        self.assertEqual(self.add_schedule("skip", "@every 1s", "--overlap=allow",
                                           "--missed=skip"), 2)
        self.c.master.wait_log("schedule 2: task ")
        self.assertEqual(self.c.master.stop(), 0)
        last = {sid: self.fires(sid)[-1][0] for sid in (1, 2)}
        down = time.time()
        # the master stays down over three fire times
        harness.wait_until(lambda: time.time() >= down + 3.5, timeout=10,
                           what="three fire times to pass")
        self.c.start_master()
        line = self.c.master.wait_log("schedule 2: no task for the fire at ")
        self.assertIn("missed while the master was down", line)
        at = int(line.split("for the fire at ")[1].split(":")[0])
        self.c.master.wait_log("schedule 2: task ")  # an on-time fire after the restart
        self.assertEqual(self.c.master.stop(), 0)
        self.assertGreaterEqual(at - last[1], 3)
        # run-once: one task, for the latest fire time missed; none for the ones before it
        missed1 = [f for f, _ in self.fires(1) if last[1] < f <= at]
        self.assertEqual(missed1, [at])
        # skip: none at all
        missed2 = [f for f, _ in self.fires(2) if last[2] < f <= at]
        self.assertEqual(missed2, [])

    def test_overlap_cancel_previous_cancels_the_waiting_task(self):
        self.c.start_master()  # no worker: each task waits until the next fire cancels it
        self.add_schedule("newest-only", "@every 1s", "--overlap=cancel-previous")
        self.c.master.wait_log(FIRED, count=3)
        tasks = sorted((t for t in self.tasks().values() if t["name"] == "newest-only"),
                       key=lambda t: t["created_ms"])
        self.assertGreaterEqual(len(tasks), 3)
        self.assertEqual([t["status"] for t in tasks],
                         ["cancelled"] * (len(tasks) - 1) + ["pending"])

    def test_a_paused_schedule_makes_no_task_and_resuming_does_not_catch_up(self):
        self.c.start_master()
        sid = self.add_schedule("pausable", "@every 1s", "--overlap=allow")
        self.c.master.wait_log(FIRED)
        rc, out, err = self.sched("pause", str(sid))
        self.assertEqual(rc, 0, err)
        paused = time.time()
        harness.wait_until(lambda: time.time() >= paused + 2.5, timeout=10,
                           what="two fire times to pass")
        resumed = time.time()
        rc, out, err = self.sched("resume", str(sid))
        self.assertEqual(rc, 0, err)
        before = self.c.master.count(FIRED)
        self.c.master.wait_log(FIRED, count=before + 1)  # it goes on after the resume
        self.assertEqual(self.c.master.stop(), 0)
        during = [f for f, _ in self.fires(sid) if int(paused) < f <= int(resumed)]
        self.assertEqual(during, [])
        self.assertTrue([f for f, _ in self.fires(sid) if f > int(resumed)])


if __name__ == "__main__":
    harness.main()
