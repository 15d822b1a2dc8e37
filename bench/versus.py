#!/usr/bin/python3
"""Saturated unary calls: the crawlab-node master against a grpc-go master, in one run.

Both masters serve the same node contract on 127.0.0.1 and are driven, one after the other, by
the same external load generator in its heartbeat mode: W simulated workers, one connection each,
each with C callers sending SendHeartbeat back to back for D seconds. For each master the script
reads its CPU time from /proc/PID/stat over the load generator's run, and each of its threads'
from /proc/PID/task, and, with perf present, counts its system calls and context switches over the
same window. It prints calls per master CPU-second, CPU and syscalls per call, the CPU per call of
each thread (by name: the threads of one name are added up), and the ratio of the two masters,
round by round.

The grpc-go master and the load generator are not part of this repository: any pair with the
command lines below works (a master that takes --listen ADDR --auth-key KEY, and a generator that
takes --target ADDR --auth-key KEY --mode heartbeat --workers W --concurrency C --duration D and
prints one JSON line with "calls" and "errors").

    /usr/bin/python3 bench/versus.py --peer-bin=DIR            # DIR holds gomaster and crawlbench
    /usr/bin/python3 bench/versus.py --peer-bin=DIR --rounds=3 --duration=10 --workers=8 --callers=4

It prints figures and never fails for speed; it exits 1 when a run could not be made or had errors.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEY = "versus-bench-key"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("master exited with status %d before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("master not listening on port %d after %.0f s" % (port, deadline_s))


def stat_ticks(path):
    """(comm, utime + stime) of a /proc stat file."""
    with open(path) as f:
        text = f.read()
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def cpu_ticks(pid):
    return stat_ticks("/proc/%d/stat" % pid)[1]


def thread_ticks(pid):
    """CPU ticks per thread id, with each thread's name: {tid: (comm, ticks)}."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            out[tid] = stat_ticks("/proc/%d/task/%s/stat" % (pid, tid))
        except OSError:  # the thread ended meanwhile
            pass
    return out


def ticks_by_name(before, after):
    """The CPU ticks each thread name used between two thread_ticks() readings; a thread that
    ended in between is missing from the second and so is not counted."""
    used = {}
    for tid, (comm, ticks) in after.items():
        used[comm] = used.get(comm, 0) + ticks - before.get(tid, (comm, 0))[1]
    return used


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def perf_counts(pid, seconds, out_path):
    """Starts perf stat on pid for seconds; returns the process (None without perf)."""
    perf = shutil.which("perf")
    if not perf:
        return None
    events = "raw_syscalls:sys_enter,context-switches"
    return subprocess.Popen([perf, "stat", "-x,", "-e", events, "-p", str(pid), "-o", out_path,
                             "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_perf(path):
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) >= 3 and parts[0].replace(".", "").isdigit():
                    counts[parts[2]] = float(parts[0])
    except OSError:
        pass
    return counts


def start_master(kind, a, port, workdir):
    if kind == "crawlab-node":
        data = os.path.join(workdir, "data")
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data)
        argv = [a.bin_copy, "--role=master", "--listen=127.0.0.1:%d" % port, "--data-dir=" + data,
                "--auth-key=" + KEY]
    else:
        argv = [os.path.join(a.peer_bin, "gomaster"), "--listen", "127.0.0.1:%d" % port,
                "--auth-key", KEY]
    log = open(os.path.join(workdir, kind + ".log"), "ab")
    return subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(kind, a, workdir):
    port = free_port()
    master = start_master(kind, a, port, workdir)
    try:
        wait_listening(port, master)
        argv = [os.path.join(a.peer_bin, "crawlbench"), "--target", "127.0.0.1:%d" % port,
                "--auth-key", KEY, "--mode", "heartbeat", "--workers", str(a.workers),
                "--concurrency", str(a.callers), "--duration", str(a.duration)]
        if a.rate:
            argv += ["--rate", str(a.rate)]
        perf_out = os.path.join(workdir, "perf-%s.txt" % kind)
        t0 = cpu_ticks(master.pid)
        th0 = thread_ticks(master.pid)
        gen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # Counting starts after the generator's setup (connect, Register, Subscribe: about a
        # second) and ends before its last second, so it covers load only.
        time.sleep(1.0)
        perf = perf_counts(master.pid, max(1, a.duration - 2), perf_out)
        out, _ = gen.communicate(timeout=a.duration + 60)
        if perf:
            perf.wait()
        t1 = cpu_ticks(master.pid)
        th1 = thread_ticks(master.pid)
        rss = peak_rss_kib(master.pid)
    finally:
        stop(master)
    if gen.returncode != 0:
        raise RuntimeError("%s: load generator exited with status %d" % (kind, gen.returncode))
    summary = json.loads(out.decode().strip().splitlines()[-1])
    cpu_s = (t1 - t0) / TICK
    counts = read_perf(perf_out)
    window_calls = summary["calls_per_s"] * max(1, a.duration - 2)
    return {
        "master": kind,
        "calls": summary["calls"],
        "calls_per_s": summary["calls_per_s"],
        "p50_us": summary.get("p50_us"),
        "errors": summary.get("errors", 0),
        "cpu_s": cpu_s,
        "calls_per_cpu_s": summary["calls"] / cpu_s if cpu_s else 0.0,
        "cpu_us_per_call": cpu_s * 1e6 / summary["calls"] if summary["calls"] else 0.0,
        "syscalls_per_call": (counts["raw_syscalls:sys_enter"] / window_calls
                              if "raw_syscalls:sys_enter" in counts else None),
        "switches_per_call": (counts["context-switches"] / window_calls
                              if "context-switches" in counts else None),
        "peak_rss_mb": rss / 1024.0,
        # CPU µs per call of each of the master's threads, by name (the same window as cpu_s).
        "thread_us_per_call": {name: used / TICK * 1e6 / summary["calls"]
                               for name, used in ticks_by_name(th0, th1).items()
                               if used and summary["calls"]},
    }


def show(r):
    def opt(v):
        return "%.2f" % v if v is not None else "n/a"
    print("  %-13s %8d calls %7.0f/s  p50 %6.0f us  errors %d  master CPU %5.2f s  %7.0f calls/CPU-s"
          "  %5.1f us/call  syscalls/call %s  switches/call %s  peak RSS %.0f MB"
          % (r["master"], r["calls"], r["calls_per_s"], r["p50_us"] or 0, r["errors"], r["cpu_s"],
             r["calls_per_cpu_s"], r["cpu_us_per_call"], opt(r["syscalls_per_call"]),
             opt(r["switches_per_call"]), r["peak_rss_mb"]))
    threads = sorted(r["thread_us_per_call"].items(), key=lambda kv: -kv[1])
    print("  %-13s by thread, us/call: %s" % ("", ", ".join("%s %.1f" % kv for kv in threads)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-bin", required=True, metavar="DIR",
                   help="directory holding the grpc-go master (gomaster) and crawlbench")
    p.add_argument("--bin", default=os.environ.get("CRAWLAB_NODE_BIN",
                                                   os.path.join(ROOT, "build/src/crawlab-node")))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds of load per master and round")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--callers", type=int, default=4, help="callers per worker")
    p.add_argument("--rate", type=int, default=0, help="total calls/s (0: as fast as they can)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    a = p.parse_args()
    results, failed = [], False
    with tempfile.TemporaryDirectory(prefix="versus-") as workdir:
        # A copy, so that a rebuild during the run cannot change what is measured.
        a.bin_copy = os.path.join(workdir, "crawlab-node")
        shutil.copy2(a.bin, a.bin_copy)
        print("versus: %d rounds, %d workers x %d callers, %d s each, rate %s"
              % (a.rounds, a.workers, a.callers, a.duration, a.rate or "open"))
        for n in range(1, a.rounds + 1):
            print("round %d" % n)
            pair = {}
            for kind in ("crawlab-node", "grpc-go"):
                try:
                    pair[kind] = measure(kind, a, workdir)
                except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                    print("  %s: %s" % (kind, e))
                    failed = True
                    continue
                show(pair[kind])
                failed |= pair[kind]["errors"] != 0
                results.append(dict(pair[kind], round=n))
            if len(pair) == 2 and pair["grpc-go"]["calls_per_cpu_s"]:
                print("  calls per master CPU-second, crawlab-node / grpc-go: %.2f"
                      % (pair["crawlab-node"]["calls_per_cpu_s"] /
                         pair["grpc-go"]["calls_per_cpu_s"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
