#!/usr/bin/python3
"""crawlab-node under hostile or heavy load: does the master stay responsive?

Two scenarios, each on a fresh cluster (one master, two workers, heartbeat 1 s, 127.0.0.1):

  flood    an HTTP/2 rapid reset (HEADERS then RST_STREAM, no key) from one connection at a
           time for --window seconds: when the master closes it, the next one starts
  readers  --readers concurrent `logs ID` of one task whose log is --log-bytes long, for at
           most --window seconds; then, readers still reading, how long SIGTERM takes to stop
           the master

While each runs, `nodes --json` is run again and again, and the master's RSS is sampled every
50 ms. Printed per binary: `nodes` latency p50 / p99 (the whole command: process start,
connection, call; the p50 of ten with no load is printed for reference), failed `nodes`, whether
a worker went offline (during the load and for 4 s, four heartbeat intervals, after it), and the
master's RSS growth. Goals are printed beside the figures and never asserted. --bin LABEL=PATH (repeatable) measures several binaries in one run,
for instance before and after a change.

    /usr/bin/python3 bench/floods.py --bin before=/tmp/base/crawlab-node --bin after=build/src/crawlab-node

Python 3 standard library only, plus tests/integration/{harness,h2raw}.py and bench/bench.py's
helpers. See bench/README.md.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (its helpers; it puts tests/integration on the path)
import h2raw  # noqa: E402
import harness  # noqa: E402

MB = 1000 * 1000
GOALS = {"p99": "< 100 ms", "offline": "no", "rss": "< 50 MB"}
SETTLE_S = 4.0  # after the load: four heartbeat intervals for an offline worker to show


class Probe:
    """`nodes --json` in a loop, and the master's RSS every 50 ms, until stopped."""

    def __init__(self, cluster, master, workers):
        self.c = cluster
        self.pid = master.pid
        self.workers = workers
        self.rss_before = harness.rss_mb(self.pid)
        self.rss_max = self.rss_before
        self.latencies = []  # seconds, of `nodes` that started before the load ended
        self.failed = 0
        self.not_online = set()
        self.load_over = None  # time.monotonic() when the load ended
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._nodes, self._rss)]
        for t in self.threads:
            t.start()

    def _nodes(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            rc, out, err = self.c.cli("nodes", "--json")
            took = time.monotonic() - t0
            if self.load_over is None or t0 < self.load_over:
                self.latencies.append(took)
            if rc != 0:
                self.failed += 1
                continue
            for n in json.loads(out):
                if n.get("name") in self.workers and n.get("status") != "online":
                    self.not_online.add(n["name"])

    def _rss(self):
        while not self.stop.is_set():
            try:
                self.rss_max = max(self.rss_max, harness.rss_mb(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.05)

    def finish(self, master):
        """Ends the load window, watches SETTLE_S more, then stops; returns the figures."""
        self.load_over = time.monotonic()
        time.sleep(SETTLE_S)
        self.stop.set()
        for t in self.threads:
            t.join(harness.CLI_TIMEOUT + 5)
        lat = sorted(self.latencies)
        offline = bool(self.not_online) or master.count("offline") > 0
        return {"nodes": len(lat), "p50_ms": ms(bench.pct(lat, 50)),
                "p99_ms": ms(bench.pct(lat, 99)), "max_ms": ms(lat[-1] if lat else None),
                "failed": self.failed, "offline": offline,
                "rss_growth_mb": round(self.rss_max - self.rss_before, 1)}


def ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 1)


IDLE_NODES = 10  # `nodes` run one after the other before the load, for a reference latency


def start_cluster(c):
    """Master and workers up; returns them and the p50 of `nodes` with no load."""
    m = c.start_master()
    workers = ["w1", "w2"]
    for name in workers:
        c.start_worker(name)
    c.wait_status("online", names=workers)
    idle = []
    for _ in range(IDLE_NODES):
        t0 = time.monotonic()
        c.cli("nodes", "--json")
        idle.append(time.monotonic() - t0)
    return m, workers, ms(bench.pct(sorted(idle), 50))


def attack(addr, window, max_streams, out):
    """Rapid reset from one connection at a time; puts (streams, connections, closed) in out.
    Runs in a process of its own, so that it does not share an interpreter lock with the probe,
    at nice 10: a real attacker does not run on the master's machine, and here it would otherwise
    take one of its CPUs from the master and the `nodes` commands."""
    os.nice(10)
    deadline = time.monotonic() + window
    sent = conns = closed = 0
    while time.monotonic() < deadline and sent < max_streams:
        conn = h2raw.H2Conn(addr)
        conns += 1
        while time.monotonic() < deadline and sent < max_streams and not conn.closed.is_set():
            sent += conn.rapid_reset(1000, batch=100)
        closed += conn.closed.is_set()
        conn.close()
    out.put((sent, conns, closed))


def flood(c, args):
    """Rapid reset from one connection at a time for args.window seconds."""
    m, workers, idle = start_cluster(c)
    probe = Probe(c, m, workers)
    host, port = c.master_addr.rsplit(":", 1)
    mp = multiprocessing.get_context("spawn")  # no fork of a process with threads running
    out = mp.Queue()
    attacker = mp.Process(target=attack, args=((host, int(port)), args.window, args.max_streams,
                                               out))
    attacker.start()
    try:
        sent, conns, closed = out.get(timeout=args.window + 60)
    finally:
        attacker.join(10)
        if attacker.is_alive():
            attacker.kill()
            attacker.join()
    fig = probe.finish(m)
    fig.update(idle_p50_ms=idle, streams=sent, connections=conns, closed_by_master=closed)
    return fig


def readers(c, args):
    """args.readers concurrent `logs ID` of a task that printed args.log_bytes of log."""
    m, workers, idle = start_cluster(c)
    script = c.path("lines.sh")
    with open(script, "w") as f:
        f.write("yes %s | head -c %d\n" % (bench.LINE.decode(), args.log_bytes))
    rc, out, err = c.cli("submit", "--", ".", script)
    if rc != 0:
        raise bench.BenchError("submit: %s" % err.strip())
    task = out.split()[0]
    harness.wait_until(lambda: task_status(c, task) in bench.FINAL, timeout=args.log_deadline,
                       what="the log task to end")
    probe = Probe(c, m, workers)
    # `logs` is an admin call: with the node key each reader would be refused at once.
    argv = [c.bin, "logs", "--master=%s" % c.master_addr, "--admin-key-file=%s" % c.admin_key_file,
            task]
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(args.readers)]
    done = []
    for p in procs:
        try:
            p.wait(max(0.0, t0 + args.window - time.monotonic()))
            done.append(time.monotonic() - t0)
        except subprocess.TimeoutExpired:
            pass
    fig = probe.finish(m)
    # How long SIGTERM takes to stop the master while readers are still at it.
    stop_s = None
    if any(p.poll() is None for p in procs):
        t1 = time.monotonic()
        m.signal(signal.SIGTERM)
        try:
            m.wait_exit(args.stop_wait)
            stop_s = round(time.monotonic() - t1, 1)
        except harness.Timeout:
            stop_s = "> %g" % args.stop_wait
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    failed = [p.returncode for p in procs if p.returncode not in (0, -signal.SIGKILL)]
    if failed:
        raise bench.BenchError("%d of the %d readers failed (exit %s): the figures would not be "
                               "those of a read" % (len(failed), len(procs), failed))
    fig.update(idle_p50_ms=idle, readers_done=len(done),
               read_s=round(max(done), 1) if done else None, sigterm_s=stop_s)
    return fig


def task_status(c, task):
    rc, out, err = c.cli("tasks", "--json")
    if rc != 0:
        return None
    return next((t["status"] for t in json.loads(out) if t["id"] == task), None)


SCENARIOS = {"flood": flood, "readers": readers}


def run(label, binary, args):
    figs = {}
    for name in args.only:
        share = bench.wait_quiet(max_wait=args.quiet_wait)
        c = harness.Cluster(os.path.join(harness.root_dir(), "%s-%s" % (label, name)),
                            binary=binary)
        try:
            figs[name] = SCENARIOS[name](c, args)
            if share is not None:  # None: --quiet-wait=0, not measured
                figs[name]["busy_before"] = round(share * 100)
        except (bench.BenchError, harness.Timeout) as e:
            figs[name] = {"error": str(e)}
        finally:
            c.stop_all()
    return figs


ROWS = [
    ("`nodes` p50 with no load", lambda f: "%s ms" % f["idle_p50_ms"], None),
    ("`nodes` p50 / p99", lambda f: "%s / %s ms" % (f["p50_ms"], f["p99_ms"]), "p99"),
    ("`nodes` max, count, failed", lambda f: "%s ms, %d, %d" % (f["max_ms"], f["nodes"],
                                                                 f["failed"]), None),
    ("a worker offline", lambda f: "yes" if f["offline"] else "no", "offline"),
    ("master RSS growth", lambda f: "%.1f MB" % f["rss_growth_mb"], "rss"),
]
EXTRA = {
    "flood": ("streams sent, connections (closed by the master)",
              lambda f: "%d, %d (%d)" % (f["streams"], f["connections"], f["closed_by_master"])),
    "readers": ("readers done in the window, slowest; SIGTERM -> exit",
                lambda f: "%d, %s; %s" % (f["readers_done"],
                                          "%s s" % f["read_s"] if f["read_s"] else "-",
                                          "%s s" % f["sigterm_s"] if f["sigterm_s"] else "-")),
}


def report(results, args, builds):
    labels = list(results)
    width = 26
    print()
    for label in labels:
        b = builds[label]
        print("%s: %s (sha256 %s)" % (label, b["path"], b["sha256"]))
    titles = {"flood": "rapid reset, one connection at a time, %g s" % args.window,
              "readers": "%d `logs` readers of a %d MB log" % (args.readers,
                                                               args.log_bytes // MB)}
    for name in args.only:
        print("\n%s" % titles[name])
        print("  %-50s" % "" + "".join("%-*s" % (width, x) for x in labels) + "goal")
        rows = ROWS + [EXTRA[name] + (None,)]
        for title, fmt, goal in rows:
            cells = []
            for label in labels:
                f = results[label][name]
                cells.append(f["error"][:width - 2] if "error" in f else fmt(f))
            print("  %-50s" % title + "".join("%-*s" % (width, x) for x in cells) +
                  (GOALS[goal] if goal else ""))
        busy = ["%s %s %%" % (x, results[x][name].get("busy_before", "?")) for x in labels]
        print("  machine busy before: " + ", ".join(busy))


def main():
    p = argparse.ArgumentParser(description="crawlab-node under floods and heavy readers "
                                "(prints figures, never fails on speed)")
    p.add_argument("--bin", action="append", metavar="LABEL=PATH",
                   help="a binary to measure (repeatable; default: after=%s)" % harness.BIN)
    p.add_argument("--only", default="flood,readers", help="flood, readers or both")
    p.add_argument("--window", type=float, default=10.0, help="seconds of load (default 10)")
    p.add_argument("--max-streams", type=int, default=150000,
                   help="streams the flood sends at most (default 150000)")
    p.add_argument("--readers", type=int, default=4)
    p.add_argument("--log-bytes", type=bench.size_arg, default=200 * MB,
                   help="size of the log the readers read (default 200M)")
    p.add_argument("--log-deadline", type=float, default=300.0,
                   help="seconds the log task may take to end")
    p.add_argument("--stop-wait", type=float, default=60.0,
                   help="seconds SIGTERM may take to stop the master before it is killed")
    p.add_argument("--quiet-wait", type=float, default=30, metavar="SECONDS")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    a = p.parse_args()
    a.only = [s.strip() for s in a.only.split(",") if s.strip()]
    for s in a.only:
        if s not in SCENARIOS:
            sys.exit("floods: unknown scenario %r (known: %s)" % (s, ", ".join(SCENARIOS)))
    bins = a.bin or ["after=%s" % harness.BIN]
    builds, copies = {}, {}
    for spec in bins:
        label, _, path = spec.partition("=")
        if not path or not os.access(path, os.X_OK):
            sys.exit("floods: --bin %r: expected LABEL=PATH of an executable" % spec)
        # A snapshot: a rebuild during the run must not change what is measured.
        copies[label] = os.path.join(harness.root_dir(), "crawlab-node-" + label)
        shutil.copy2(path, copies[label])
        builds[label] = dict(bench.build_info(path), path=path)
    print("floods: %s, %d CPUs, %s; python3 bench/floods.py %s"
          % (bench.machine()["date"], os.cpu_count(), bench.machine()["kernel"],
             " ".join(sys.argv[1:])), flush=True)
    results = {}
    try:
        for label in builds:
            print("measuring %s ..." % label, flush=True)
            results[label] = run(label, copies[label], a)
    finally:
        harness._sweep()
    report(results, a, builds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"builds": builds, "results": results}, f, indent=2)
    failed = any("error" in f for r in results.values() for f in r.values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
