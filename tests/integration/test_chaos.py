#!/usr/bin/python3
"""Chaos: 100 tasks, each printing 5,000 numbered log lines and 50 result items, over 3 workers,
while a driver kills -9 and restarts the master, cuts, blackholes and slows down the workers'
connections (one fault proxy per worker), and kills one worker once (restarted with its data dir).
Then an audit, printed as figures: every task terminal; every task not lost with the killed
worker finished with every line and item exactly once and in order; no task ran twice; the
faults injected, by kind.

Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_chaos.py
CRAWLAB_CHAOS_SEED=N replays a fault schedule (the seed is printed). The driver waits a random,
bounded time between faults and within each (how long the master stays down, how long a
blackhole lasts): that is the schedule; every check is an event awaited with a deadline."""

import collections
import os
import random
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy  # noqa: E402
import harness  # noqa: E402
from harness import find_node, wait_until  # noqa: E402

N_TASKS = 100
LINES = 5000
ITEMS = 50
N_WORKERS = 3
MAX_RUNNERS = 4            # per worker: 12 tasks at once, so that the run spans the faults
PACE = "0.1"               # seconds between two batches of 100 lines in a task
CHAOS_MAX_S = 150          # faults stop after this long even if tasks are still running
SETTLE_S = 150             # then, healed, every task has this long to end
WORKER_KILL_AT = (8, 25)   # seconds into the chaos when the one worker kill happens
LOST_BY_WORKER = ("worker restarted", "lost by worker")
REGISTERED = "registered with the master"


def figure(text):
    print("figure: " + text, file=sys.stderr, flush=True)


def audit(test, ids, final, ran, totals, killed_key):
    """The audit of a chaos run: every task terminal; every task not lost with the killed worker
    (killed_key, or None) finished with every line and item exactly once and in order; no task
    ran twice. Returns (problems, figures of the output checked, executions per task)."""
    problems = []
    runs = harness.read_runs(ran)
    runs_of = collections.defaultdict(list)
    for tid, node, pid in runs:
        runs_of[tid].append(node)
    lost, checked, exact = [], 0, 0
    lines_ok = items_ok = 0
    for i in ids:
        t = final.get(i)
        if t is None:
            problems.append("task %s missing" % i)
            continue
        if len(runs_of[i]) > 1:
            problems.append("task %s ran %d times, on %r" % (i, len(runs_of[i]), runs_of[i]))
        if t["status"] not in harness.FINAL_STATUSES:
            continue  # counted under unfinished
        if t["status"] == "error" and any(s in t["error"] for s in LOST_BY_WORKER):
            if runs_of[i] and set(runs_of[i]) != {killed_key}:
                problems.append("task %s lost by a worker (%r) but ran on %r, not on the "
                                "killed one" % (i, t["error"], runs_of[i]))
            lost.append(i)
            continue
        checked += 1
        if (t["status"], t["exit_code"]) != ("finished", 0):
            problems.append("task %s: %s (exit %r, %r) on %s" % (i, t["status"], t["exit_code"],
                                                                 t["error"], t["assigned_node"]))
            continue
        p = test.check_output(i, totals, t)
        tot = harness.read_totals(totals, i)
        if tot != {"lines": LINES, "items": ITEMS}:
            p.append("task %s printed %r" % (i, tot))
        if p:
            problems += p
        else:
            exact += 1
            lines_ok += t["log_lines"]
            items_ok += t["data_items"]
    runs_count = collections.Counter(len(runs_of[i]) for i in ids)
    return problems, lost, (
        "output checked for %d tasks: %d exact (%d lines, %d items, each exactly once and in "
        "order)" % (checked, exact, lines_ok, items_ok),
        "executions per task: %s" % {"%d run(s)" % k: v for k, v in sorted(runs_count.items())})


def submit_tasks(test):
    """Submits the N_TASKS streaming tasks of a chaos run (test: a ClusterTest and TaskOps);
    returns (their ids, the streamer's --ran file, its --totals dir). Called before any worker
    starts, so that the tasks still run when the fault driver starts: submitting 100 tasks may take
    longer than running them, where commands are slow."""
    argv, ran, totals = test.streamer()
    test.addCleanup(test.kill_runs, ran)
    ids = test.submit_each([("--name=chaos-%d" % i, "--", *argv, "--lines", str(LINES),
                             "--batch", "100", "--items-every", str(LINES // ITEMS),
                             "--pace", PACE, "--max-seconds", "300")
                            for i in range(N_TASKS)])
    return ids, ran, totals


class Driver(threading.Thread):
    """Injects faults at random until stop is set or CHAOS_MAX_S passed, then heals everything."""

    def __init__(self, test, proxies, workers, seed, journal):
        super().__init__(name="chaos-driver", daemon=True)
        self.t = test
        self.c = test.c
        self.proxies = proxies
        self.workers = workers      # name -> Proc; a restarted worker replaces its entry
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.faults = collections.Counter()
        self.error = None
        self.killed = None          # (worker name, node key) of the worker killed once
        self.journal = journal

    def note(self, text):
        with open(self.journal, "a") as f:
            f.write("%.3f %s\n" % (time.monotonic() - self.t0, text))

    def pause(self, lo, hi):
        """A random, bounded wait: part of the schedule. Returns early when told to stop."""
        self.stop.wait(self.rng.uniform(lo, hi))

    def run(self):
        self.t0 = time.monotonic()
        kill_at = self.rng.uniform(*WORKER_KILL_AT)
        try:
            while not self.stop.is_set() and time.monotonic() - self.t0 < CHAOS_MAX_S:
                self.pause(0.5, 3.0)
                if self.stop.is_set():
                    break
                if self.killed is None and time.monotonic() - self.t0 >= kill_at:
                    self.kill_worker()
                    continue
                kind = self.rng.choices(["master_kill9", "cut", "blackhole", "delay"],
                                        weights=[2, 3, 3, 1])[0]
                getattr(self, kind)()
        except BaseException as e:  # reported by the test; the main thread goes on to heal
            self.error = "%s\n%s" % (e, traceback.format_exc())
            self.note("driver error: %s" % e)
        finally:
            try:
                self.heal()
            except BaseException as e:
                self.error = (self.error or "") + "\nhealing failed: %s\n%s" % (
                    e, traceback.format_exc())

    def master_kill9(self):
        self.c.master.kill9()
        self.faults["master kill -9"] += 1
        self.note("master killed")
        self.pause(0.5, 3.0)
        self.c.start_master()
        self.note("master restarted")

    def cut(self):
        p = self.rng.choice(self.proxies)
        p.cut()
        self.faults["connection cut"] += 1
        self.note("%s cut" % p.name)
        self.pause(0.0, 1.5)
        p.pass_()
        self.note("%s pass" % p.name)

    def blackhole(self):
        p = self.rng.choice(self.proxies)
        p.blackhole()
        self.faults["blackhole"] += 1
        self.note("%s blackhole" % p.name)
        self.pause(1.0, 6.0)
        p.pass_()
        self.note("%s pass" % p.name)

    def delay(self):
        p = self.rng.choice(self.proxies)
        ms = self.rng.choice([20, 100, 300])
        p.delay(ms)
        self.faults["delay"] += 1
        self.note("%s delay %d ms" % (p.name, ms))
        self.pause(1.0, 4.0)
        p.pass_()
        self.note("%s pass" % p.name)

    def kill_worker(self):
        name = self.rng.choice(sorted(self.workers))
        w = self.workers[name]
        key = self.t.keys[name]
        w.kill9()
        self.killed = (name, key)
        self.faults["worker kill -9"] += 1
        self.note("worker %s killed" % name)
        self.pause(0.5, 2.0)
        self.workers[name] = self.t.start_worker(name, data_dir=w.data_dir)
        self.note("worker %s restarted" % name)

    def heal(self):
        for p in self.proxies:
            if p.mode != faultproxy.PASS:
                p.pass_()
        if not self.c.master.alive():
            self.c.start_master()
        self.note("healed")


class Chaos(harness.ClusterTest, harness.TaskOps):
    timeout = 580

    def start_worker(self, name, data_dir=None):
        p = self.proxy_of[name]
        return self.c.start_worker(name, data_dir=data_dir, master_addr=p.addr,
                                   extra=["--max-runners=%d" % MAX_RUNNERS])

    def test_100_tasks_survive_master_kills_cuts_blackholes_and_one_worker_kill(self):
        seed = int(os.environ.get("CRAWLAB_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
        print(file=sys.stderr)
        figure("chaos seed %d (CRAWLAB_CHAOS_SEED=%d replays the schedule)" % (seed, seed))
        self.c.start_master()
        ids, ran, totals = submit_tasks(self)
        proxies, self.proxy_of, workers = [], {}, {}
        for i in range(1, N_WORKERS + 1):
            name = "w%d" % i
            p = faultproxy.FaultProxy(self.c.port, name="p%d" % i).start()
            self.addCleanup(p.close)
            proxies.append(p)
            self.proxy_of[name] = p
            workers[name] = self.start_worker(name)
        for w in workers.values():
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=sorted(workers), timeout=30)
        self.keys = {n: find_node(ns, name=n)["key"] for n in workers}

        driver = Driver(self, proxies, workers, seed, self.c.path("chaos-journal.txt"))
        t0 = time.monotonic()
        driver.start()
        unfinished = None
        try:
            # the chaos lasts until every task ended or CHAOS_MAX_S passed
            def all_ended():
                ts = self.tasks_or_none()
                return ts is not None and all(ts.get(i, {}).get("status") in
                                              harness.FINAL_STATUSES for i in ids)
            try:
                wait_until(all_ended, timeout=CHAOS_MAX_S + 10, interval=0.5,
                           what="every task to end during the chaos")
            except harness.Timeout:
                pass
        finally:
            driver.stop.set()
            driver.join(60)
        chaos_s = time.monotonic() - t0
        self.assertFalse(driver.is_alive(), "the fault driver did not stop")
        try:
            final = self.wait_final(ids, timeout=SETTLE_S)
        except harness.Timeout as e:
            unfinished = str(e)
            final = self.tasks()

        # ---- the audit
        problems = []
        if driver.error:
            problems.append("fault driver: %s" % driver.error)
        if unfinished:
            problems.append(unfinished)
        if not driver.faults:
            problems.append("no fault was injected: every task ended before the driver's first")
        statuses = collections.Counter(final[i]["status"] if i in final else "missing"
                                       for i in ids)
        killed_key = driver.killed[1] if driver.killed else None
        found, lost, checked_figures = audit(self, ids, final, ran, totals, killed_key)
        problems += found
        px = collections.Counter()
        for p in proxies:
            st = p.stats()
            for k in ("accepted", "reset", "refused", "silenced", "target_failed",
                      "delayed_chunks"):
                px[k] += st[k]

        figure("chaos lasted %.0f s (%s)" % (chaos_s, "every task ended during it"
                                               if not driver.is_alive() and chaos_s < CHAOS_MAX_S
                                               else "then healed"))
        figure("faults injected: %s" % ", ".join("%s %d" % kv for kv in
                                                 sorted(driver.faults.items())))
        figure("proxies: %d connections accepted, %d reset by cuts, %d refused during cuts, "
               "%d silenced by blackholes, %d refused because the master was down, "
               "%d delayed chunks" % (px["accepted"], px["reset"], px["refused"],
                                      px["silenced"], px["target_failed"],
                                      px["delayed_chunks"]))
        figure("task statuses: %s" % dict(sorted(statuses.items())))
        figure("killed worker: %s; tasks lost with it: %d"
               % ("%s (%s)" % driver.killed if driver.killed else "none", len(lost)))
        for f in checked_figures:
            figure(f)
        if problems:
            with open(self.c.path("chaos-problems.txt"), "w") as f:
                f.write("\n".join(problems) + "\n")
        self.assertEqual(problems, [], "%d problem(s); the first ones:\n%s"
                         % (len(problems), "\n".join(problems[:15])))


if __name__ == "__main__":
    harness.main()
