#!/usr/bin/python3
"""One dispatch, step by step: where the time from a submit to the task's first instruction goes.

A master and one worker (--max-runners=1) on 127.0.0.1; N probe tasks submitted one at a time,
each `. probe.sh`, whose shell builtin `echo` writes the task id into a FIFO (as bench.py's
dispatch test). While they run, `perf record` takes every system call's entry and exit on the
machine (tracepoints raw_syscalls:sys_enter/sys_exit, sched_process_exec and sched_switch), on
CLOCK_MONOTONIC. Per task, the points below are found in that record, and the table gives the p50
and p90 of each step over the tasks:

    sent      the submit command's last sendmsg before the master's commit: the request leaves
    woken     the master's first return from epoll_wait after it (any thread)
    commit    the master's fdatasync: its entry and its return
    push      the master's last sendmsg before the worker wakes on another connection than the
              request's: the task on the node stream
    w-woken   the worker's first return from epoll_wait after the commit (any thread)
    clone     the worker's clone3 (or clone/vfork): the spawn
    exec      the child's execve of /bin/sh done (sched_process_exec)
    stamp     the shell's first write: the task id into the FIFO

Also: how long the child, from its clone to its stamp, could have run but waited for a CPU (the
scheduler's switches). Tracing costs each system call a few microseconds, so the steps read a
little high. Needs root (perf, -a).

    /usr/bin/python3 bench/timeline.py --bin=build/src/crawlab-node --tasks=100
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import bench  # noqa: E402 (bench.py, for its FIFO reader)
import harness  # noqa: E402

# x86-64 system call numbers
NR = {"read": 0, "write": 1, "sendmsg": 46, "recvmsg": 47, "clone": 56, "vfork": 58,
      "fdatasync": 75, "epoll_wait": 232, "epoll_pwait": 281, "clone3": 435, "epoll_pwait2": 441}
EPOLL = {NR["epoll_wait"], NR["epoll_pwait"], NR["epoll_pwait2"]}
SPAWN = {NR["clone"], NR["vfork"], NR["clone3"]}
# (from, to, what, whose system calls are counted in it: "m" master, "w" worker, "c" child)
STEPS = [("sent", "woken", "the request reaches the master", "m"),
         ("woken", "commit", "master: the submit, to its commit", "m"),
         ("commit", "committed", "master: fdatasync", "m"),
         ("committed", "push", "master: the commit, to the push", "m"),
         ("push", "w-woken", "the push reaches the worker", "w"),
         ("w-woken", "clone", "worker: the task's set-up", "w"),
         ("clone", "exec", "clone, to /bin/sh exec'd", "c"),
         ("exec", "stamp", "sh: its start, to the stamp", "c")]

LINE = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s+(?:\[\d+\]\s+)?(\d+\.\d+):\s+(\S+):\s*(.*)$")
ENTER = re.compile(r"NR (\d+) \((\w+)")
EXIT = re.compile(r"NR (\d+) = (-?\d+)")
SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> .*next_pid=(\d+)")


def parse(script_out):
    """perf script text -> [(t, pid, tid, kind, nr, value)], by time. kind: 'enter' (value: the
    first argument), 'exit' (value: the return value), 'exec', or 'off' / 'on' (a thread leaving
    the CPU, value: whether it could have run on; a thread taking it), where pid is the thread's
    id, as the scheduler gives it."""
    events = []
    for line in script_out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        _, pid, tid, t, ev, rest = m.groups()
        pid, tid, t = int(pid), int(tid), float(t)
        if ev.startswith("raw_syscalls:sys_enter"):
            e = ENTER.search(rest)
            if e:
                events.append((t, pid, tid, "enter", int(e.group(1)), int(e.group(2), 16)))
        elif ev.startswith("raw_syscalls:sys_exit"):
            e = EXIT.search(rest)
            if e:
                events.append((t, pid, tid, "exit", int(e.group(1)), int(e.group(2))))
        elif ev.startswith("sched:sched_process_exec"):
            events.append((t, pid, tid, "exec", 0, 0))
        elif ev.startswith("sched:sched_switch"):
            e = SWITCH.search(rest)
            if e:  # off: the thread that leaves the CPU, and whether it could have run on
                events.append((t, int(e.group(1)), int(e.group(1)), "off", 0,
                               e.group(2).startswith("R")))
                events.append((t, int(e.group(3)), int(e.group(3)), "on", 0, 0))
    events.sort()
    return events


def first(events, start, pred):
    for i in range(start, len(events)):
        if pred(events[i]):
            return i
    return None


def last_before(events, start, end, pred):
    for i in range(end - 1, start - 1, -1):
        if pred(events[i]):
            return i
    return None


def points(events, cli_pid, master, worker):
    """The points of one task (module doc) in events, or None when one is missing."""
    commit = first(events, 0, lambda e: e[1] == master and e[3] == "enter" and
                   e[4] == NR["fdatasync"])
    if commit is None:
        return None
    sent = last_before(events, 0, commit, lambda e: e[1] == cli_pid and e[3] == "enter" and
                       e[4] == NR["sendmsg"])
    if sent is None:
        return None
    woken = first(events, sent, lambda e: e[1] == master and e[3] == "exit" and e[4] in EPOLL)
    committed = first(events, commit, lambda e: e[1] == master and e[3] == "exit" and
                      e[4] == NR["fdatasync"])
    w_woken = first(events, committed or commit, lambda e: e[1] == worker and e[3] == "exit" and
                    e[4] in EPOLL)
    if None in (woken, committed, w_woken):
        return None
    # The request's connection: where the master read it. Its reply goes there, the push not.
    read = first(events, sent, lambda e: e[1] == master and e[3] == "enter" and
                 e[4] == NR["recvmsg"])
    if read is None:
        return None
    client_fd = events[read][5]
    push = last_before(events, committed, w_woken, lambda e: e[1] == master and
                       e[3] == "enter" and e[4] == NR["sendmsg"] and e[5] != client_fd)
    clone = first(events, w_woken, lambda e: e[1] == worker and e[3] == "enter" and
                  e[4] in SPAWN)
    if push is None or clone is None:
        return None
    ret = first(events, clone, lambda e: e[1] == worker and e[3] == "exit" and e[4] in SPAWN and
                e[5] > 0)
    if ret is None:
        return None
    child = events[ret][5]
    exe = first(events, clone, lambda e: e[1] == child and e[3] == "exec")
    if exe is None:
        return None
    stamp = first(events, exe, lambda e: e[1] == child and e[3] == "enter" and
                  e[4] == NR["write"])
    if stamp is None:
        return None
    at = {"sent": sent, "woken": woken, "commit": commit, "committed": committed, "push": push,
          "w-woken": w_woken, "clone": clone, "exec": exe, "stamp": stamp}
    p = {k: events[i][0] for k, i in at.items()}
    # The child's time off the CPU while it could have run (preempted), from its clone to its stamp.
    waiting, since = 0.0, None
    for e in events[clone:stamp]:
        if e[1] == child and e[3] == "off" and e[5]:
            since = e[0]
        elif e[1] == child and e[3] == "on" and since is not None:
            waiting += e[0] - since
            since = None
    p["child-runnable"] = waiting
    pids = {"m": master, "w": worker, "c": child}
    for a, b, _, whose in STEPS:
        p[(a, b)] = sum(1 for e in events[at[a]:at[b]] if e[3] == "enter" and
                        e[1] == pids[whose])
    return p


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "src", "crawlab-node"))
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the directory and perf's record")
    args = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("timeline: perf is not installed")
    binary = os.path.join(tempfile.mkdtemp(prefix="crawlab-timeline-bin-"), "crawlab-node")
    shutil.copy2(args.bin, binary)  # a rebuild during the run changes nothing
    root = tempfile.mkdtemp(prefix="crawlab-timeline-")
    c = harness.Cluster(root, binary=binary)
    perf, fifo_fd = None, None
    try:
        c.start_master()
        w = c.start_worker("w1", extra=["--max-runners=1"])
        c.wait_status("online", names=["w1"])
        fifo = c.path("stamp.fifo")
        os.mkfifo(fifo)
        seen, fifo_fd = bench.fifo_reader(fifo)
        probe = c.path("probe.sh")
        with open(probe, "w") as f:
            f.write('echo "$CRAWLAB_TASK_ID" >%s\n' % fifo)
        cli = [binary, "submit", "--master=%s" % c.master_addr,
               "--admin-key-file=%s" % c.admin_key_file, "--", ".", probe]

        def one():
            p = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, cwd=c.dir)
            out, err = p.communicate(timeout=30)
            if p.returncode != 0:
                raise SystemExit("timeline: submit failed: %s" % err.decode().strip())
            tid = out.decode().strip()
            while seen.get(timeout=10)[0] != tid:
                pass
            c.cli("logs", "--follow", tid)  # the worker idle again before the next one
            return p.pid, tid

        for _ in range(3):  # warm-up
            one()
        # perf's record in memory: written to the data directory's disk, it would queue beside
        # the master's fdatasync.
        shm = tempfile.mkdtemp(prefix="crawlab-timeline-", dir="/dev/shm")
        rec = os.path.join(shm, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-q", "-a", "-k", "CLOCK_MONOTONIC",
                                 "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit",
                                 "-e", "sched:sched_process_exec", "-e", "sched:sched_switch",
                                 "-m", "1024", "-o", rec],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # perf attaches to every CPU
        marks = []
        for _ in range(args.tasks):
            t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
            pid, tid = one()
            marks.append((t0, time.clock_gettime(time.CLOCK_MONOTONIC), pid, tid))
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
        perf = None
        text = subprocess.run(["perf", "script", "-i", rec, "-F", "comm,pid,tid,time,event,trace"],
                              capture_output=True, text=True).stdout
        shutil.rmtree(shm, ignore_errors=True)
        events = parse(text)
        tasks = []
        for t0, t1, pid, tid in marks:
            part = [e for e in events if t0 <= e[0] <= t1]
            p = points(part, pid, c.master.pid, w.pid)
            if p:
                tasks.append(p)
        print("timeline: %d of %d tasks traced in full (binary %s)" % (len(tasks), args.tasks,
                                                                         args.bin))
        if not tasks:
            return 1
        print("%-22s %-36s %9s %9s %9s" % ("step", "", "p50 us", "p90 us", "syscalls"))
        for a, b, what, whose in STEPS:
            d = [(p[b] - p[a]) * 1e6 for p in tasks]
            n = [p[(a, b)] for p in tasks]
            print("%-22s %-36s %9.0f %9.0f %9d" % ("%s -> %s" % (a, b), what, pct(d, 50),
                                                   pct(d, 90), pct(n, 50)))
        d = [p["child-runnable"] * 1e6 for p in tasks]
        print("%-22s %-36s %9.0f %9.0f" % ("clone -> stamp", "of which the child could run, did "
                                           "not", pct(d, 50), pct(d, 90)))
        for a, b, what in (("woken", "clone", "the master's wake-up, to the spawn"),
                           ("woken", "stamp", "the master's wake-up, to the stamp"),
                           ("sent", "stamp", "the request sent, to the stamp")):
            d = [(p[b] - p[a]) * 1e6 for p in tasks]
            print("%-22s %-36s %9.0f %9.0f" % ("%s -> %s" % (a, b), what, pct(d, 50), pct(d, 90)))
        return 0
    finally:
        if perf:
            perf.kill()
            perf.wait()
        if fifo_fd is not None:
            os.close(fifo_fd)
        c.stop_all()
        if args.keep:
            print("timeline: kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(os.path.dirname(binary), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
