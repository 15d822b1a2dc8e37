#!/usr/bin/python3
"""crawlab-node benchmark: dispatch latency, task throughput, log ingestion (plaintext and TLS),
connection set-up time (plaintext and TLS handshake).

One master (or two on one PostgreSQL database: --store=postgres --masters=2) and two workers
on 127.0.0.1, real processes, driven through the client commands (submit, tasks --json, logs)
and the integration harness (tests/integration/harness.py).
Python 3 standard library, plus bench-refs (bench/refs.c, built by meson): before the tests it
measures the machine's physical references (spawn limit, sh start, loopback TCP, fdatasync, a
trivial syscall), and during them it counts the syscalls of the master and the workers. Each test
prints figures per task, per MB or per connection, and each goal is checked against the
references of the same run. It prints figures; it never fails on speed. Its exit status is
0 when every test ran to its end, 1 when a test could not (a task stuck, a command failing): the
figures it printed are then partial, and a line says why.

    /usr/bin/python3 bench/bench.py            # full run, about a minute on a quiet machine
    /usr/bin/python3 bench/bench.py --quick    # small run, under a minute (CI's smoke test)
    /usr/bin/python3 bench/bench.py --only=logs,logs-tls --perf=/tmp/perf
    /usr/bin/python3 bench/bench.py --only=latency,throughput,logs --store=postgres --masters=2

See bench/README.md for what each figure means and docs/benchmarks.md for measured results.
"""

import argparse
import collections
import datetime
import hashlib
import json
import math
import os
import platform
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

FINAL = ("finished", "error", "cancelled", "abnormal")
TESTS = {"latency": "latency", "throughput": "throughput", "logs": "logs", "logs-tls": "logs_tls",
         "handshake": "handshake"}
MB = 1000 * 1000
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyz"
assert len(LINE) == 99  # + "\n" = 100 bytes a line
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A test could not run to its end; its partial figures are still reported."""


# ---------------------------------------------------------------------------------------------
# small helpers


def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list (p in 0..100); None when empty."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


cpu_seconds = harness.cpu_seconds


def thread_times(pid):
    """{thread: [user s, system s, minor faults]} of each thread of pid alive now, named by its
    command name (the loop thread, the process's first, as "loop"; a name several threads share
    gets its tid), and "process": the totals of /proc/<pid>/stat, which also hold those of the
    threads that ended."""
    tck = os.sysconf("SC_CLK_TCK")
    out = {}
    f = harness.proc_stat(pid)[1]
    out["process"] = [int(f[11]) / tck, int(f[12]) / tck, int(f[7])]
    for tid in os.listdir("/proc/%s/task" % pid):
        try:
            name, f = harness.proc_stat("%s/task/%s" % (pid, tid))
        except OSError:
            continue
        key = "loop" if tid == str(pid) else name if name not in out else "%s/%s" % (name, tid)
        out[key] = [int(f[11]) / tck, int(f[12]) / tck, int(f[7])]
    return out


def thread_deltas(before, after):
    """after - before of thread_times; a thread born in between counts from zero."""
    return {k: [a - b for a, b in zip(v, before.get(k, [0, 0, 0]))] for k, v in after.items()}


def machine_ticks():
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    total = sum(v[:8])  # guest time is already counted in user
    return total - idle, total


def busy_share(t0, t1):
    """Share of all CPUs busy between two machine_ticks() readings, 0..1."""
    return (t1[0] - t0[0]) / max(1, t1[1] - t0[1])


class CpuSampler:
    """Samples the machine's CPU ticks, those of the benchmark's own processes and those of kernel
    threads every 0.2 s in a thread, so that the shares of a window known only afterwards (master
    timestamps) can be computed: how busy the machine was, and how much of that was other
    people's work (neither ours nor kernel threads')."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn  # -> pids of the cluster's daemons
        self.samples = []
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _sample(self):
        """(time, machine ticks, jiffies ours, jiffies of kernel threads). Ours: those used so
        far by the daemons and every process under them (the tasks, running or reaped: a running
        task's time is in no daemon's until it is reaped, and counting it only then made a task
        that ended near a window's edge look like other work), and by this process and its reaped
        children (the client commands, perf). Kernel threads (children of kthreadd) do block I/O,
        writeback and softirq work partly on our behalf, so they are not counted as other work."""
        procs = harness.proc_stats()
        children = {}
        for pid, _, fields in procs:
            children.setdefault(int(fields[1]), []).append(pid)
        ours, todo = set(), list(self.pids_fn())
        while todo:
            pid = todo.pop()
            if pid not in ours:
                ours.add(pid)
                todo.extend(children.get(pid, ()))
        ours_j = kernel_j = 0
        for pid, _, fields in procs:
            if pid in ours:
                ours_j += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            elif fields[1] in ("0", "2") or pid == 2:  # ppid 2: a kernel thread
                kernel_j += int(fields[11]) + int(fields[12])
        t = os.times()
        ours_j += (t.user + t.system + t.children_user + t.children_system) * CLK_TCK
        return (now_ms(), machine_ticks(), ours_j, kernel_j)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._th.join()
        self.samples.append(self._sample())

    def shares(self, t0_ms, t1_ms):
        """(busy, other): shares of all CPUs that were busy, and busy with processes that are not
        the benchmark's, between the samples nearest to t0 and t1; (None, None) if unknown."""
        if not self.samples:
            return None, None
        a = min(self.samples, key=lambda x: abs(x[0] - t0_ms))
        b = min(self.samples, key=lambda x: abs(x[0] - t1_ms))
        total = b[1][1] - a[1][1]
        if b[0] <= a[0] or total <= 0:
            return None, None
        busy = (b[1][0] - a[1][0]) / total
        other = max(0.0, busy - (b[2] - a[2] + b[3] - a[3]) / total)
        return busy, other


def _proc_ticks():
    """{pid: (utime + stime in jiffies, command name)} of every process."""
    return {pid: (int(fields[11]) + int(fields[12]), name)
            for pid, name, fields in harness.proc_stats()}


def wait_quiet(limit=0.15, max_wait=60.0):
    """Waits (up to max_wait s) for a second in which under `limit` of the machine's CPU is busy,
    since other work on a 2-core machine skews every figure; returns the last busy share seen,
    or None at once when max_wait is 0. While it waits it names the processes that use the CPU."""
    if max_wait <= 0:
        return None
    deadline = time.monotonic() + max_wait
    while True:
        t0, p0 = machine_ticks(), _proc_ticks()
        time.sleep(1.0)
        t1, p1 = machine_ticks(), _proc_ticks()
        share = busy_share(t0, t1)
        if share < limit or time.monotonic() >= deadline:
            return share
        top = sorted(((v[0] - p0[pid][0], v[1]) for pid, v in p1.items() if pid in p0),
                     reverse=True)[:3]
        print("  machine busy %.0f %% with other work (%s); waiting for it to calm down"
              % (share * 100, ", ".join("%s %d%%" % (n, 100 * d / CLK_TCK) for d, n in top)),
              flush=True)


def now_ms():
    return time.time_ns() / 1e6


def group_cpu(groups):
    """{group: CPU seconds used so far by its processes} of {group: [pids]}."""
    return {g: sum(cpu_seconds(p) for p in pids) for g, pids in groups.items()}


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def build_info(binary):
    """sha256 of the binary and the source commit (read-only git commands)."""
    h = hashlib.sha256()
    with open(binary, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    info = {"sha256": h.hexdigest()[:16], "commit": "?", "dirty": None}
    try:
        git = ["git", "--no-optional-locks", "-C", ROOT]
        info["commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True, timeout=10).stdout.strip() or "?"
        st = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=10).stdout
        info["dirty"] = sorted(line[3:] for line in st.splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def ms(v, digits=2):
    return "-" if v is None else ("%.*f ms" % (digits, v))


# ---------------------------------------------------------------------------------------------
# the machine's physical references, and the syscall counter (bench-refs, bench/refs.c)

REFS_BIN = os.path.join(ROOT, "build", "bench", "bench-refs")


def refs_run(refs_bin, *args):
    """Runs `bench-refs ARGS`; returns its `NAME VALUE` lines as a dict (numbers as floats).
    Raises BenchError with its message when it fails."""
    try:
        p = subprocess.run([refs_bin] + [str(x) for x in args], capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError("bench-refs %s: no answer within 60 s" % args[0])
    if p.returncode != 0:
        raise BenchError(p.stderr.strip() or "bench-refs %s: exit %d" % (args[0], p.returncode))
    out = {}
    for line in p.stdout.splitlines():
        name, _, value = line.partition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = value
    return out


def fs_type(path):
    """(file system type, mount point) of the mount that holds path, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best = ("?", "/")
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best[1]):
                best = (fields[2], mnt)
    return best


def measure_refs(refs_bin, data_dir, quick):
    """The physical references of the machine in this run, each in about 1 s (--quick) or 3 s at
    most: spawn limit, sh start, loopback TCP, fdatasync in data_dir's file system (back to back,
    and after 50 ms of sleep), the CPU of
    storing a MB there (the page-cache floor), the CPU of a trivial syscall (alone and while
    counted). Returns (refs, errors): a missing figure is None, and errors says why."""
    cores = len(os.sched_getaffinity(0))
    refs = {"cores": cores, "fs": fs_type(data_dir)}
    errors = []
    steps = (
        ("spawn", ("spawn", 0.8 if quick else 2.0, cores)),
        ("sh", ("sh", 50)),
        ("tcp", ("tcp", 256 if quick else 512, 0.8 if quick else 2.5)),
        ("fdatasync", ("fdatasync", data_dir, 50)),
        ("fdatasync_idle", ("fdatasync", data_dir, 20, 50)),
        ("pagecache", ("pagecache", data_dir, 64 if quick else 256)),
        ("syscall", ("syscall", 0.2 if quick else 0.5)),
    )
    for name, args in steps:
        try:
            refs[name] = refs_run(refs_bin, *args)
        except BenchError as e:
            refs[name] = None
            errors.append("reference %s: %s" % (name, e))
    return refs, errors


def refs_lines(refs):
    """The references as printable lines."""
    def get(name, key):
        return (refs.get(name) or {}).get(key)

    def fmt(v, f):
        return "n/a (failed)" if v is None else f % v
    spawn = get("spawn", "spawns_per_s")
    sc = refs.get("syscall") or {}
    counted = ("%.2f us while counted" % (sc["ns_counted"] / 1000) if "ns_counted" in sc else
               "syscalls cannot be counted here: %s" % sc.get("count_unavailable", "?"))
    return [
        "spawn limit: `sh -c true` spawned and reaped, %d processes in parallel: %s" % (
            refs["cores"], fmt(spawn, "%%.0f /s (%.0f /s per core)" % ((spawn or 0) /
                                                                     refs["cores"]))),
        "sh start: `sh -c :` spawned and reaped, p50 of 50: %s" % fmt(get("sh", "p50_ms"),
                                                                       "%.2f ms"),
        "loopback TCP, one connection, 1 MiB writes: %s" % fmt(get("tcp", "mb_per_s"),
                                                               "%.0f MB/s"),
        "fdatasync after a 4 KiB append, p50 of 50: %s (%s at %s, the data directories')" % (
            fmt(get("fdatasync", "p50_ms"), "%.2f ms"), refs["fs"][0], refs["fs"][1]),
        "the same after 50 ms of sleep, as a lone commit, p50 of 20: %s" % fmt(
            get("fdatasync_idle", "p50_ms"), "%.2f ms"),
        "storing a MB there (1 MiB pwrites, sync_file_range, fdatasync every 4 MiB), CPU: %s"
        " (the page-cache floor under any log ingestion)" % fmt(get("pagecache", "cpu_ms_per_mb"),
                                                                "%.2f ms"),
        "trivial syscall (getppid), CPU: %s" % (
            "n/a (failed)" if "ns" not in sc else "%.2f us (%s)" % (sc["ns"] / 1000, counted)),
        "other processes (not ours, not kernel threads) meanwhile: %s" % (
            "-" if refs.get("other_busy") is None else "%.0f %% of the machine"
            % (refs["other_busy"] * 100)),
    ]


class SyscallCount:
    """`bench-refs count`: the syscalls made by groups of processes (their threads, those they
    start later included; not their child processes, so a worker's tasks are not its own) from
    the constructor to stop()."""

    def __init__(self, refs_bin, groups):
        self.groups = groups  # name -> [pids]
        pids = sorted({p for ps in groups.values() for p in ps})
        self.p = subprocess.Popen([refs_bin, "count"] + [str(p) for p in pids],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        if self.p.stdout.readline() != "ready\n":
            err = self.p.communicate(timeout=30)[1].strip()
            raise BenchError(err or "bench-refs count: no ready line")

    def stop(self):
        """{group: syscalls}."""
        out, err = self.p.communicate(timeout=30)
        if self.p.returncode != 0:
            raise BenchError(err.strip() or "bench-refs count: exit %d" % self.p.returncode)
        per_pid = {}
        for line in out.splitlines():
            pid, count = line.split()
            per_pid[int(pid)] = int(count)
        return {g: sum(per_pid.get(p, 0) for p in ps) for g, ps in self.groups.items()}


# ---------------------------------------------------------------------------------------------
# the cluster


def fifo_reader(fifo):
    """A thread reading task ids from the FIFO, stamping each with CLOCK_REALTIME in ns: returns
    (a queue of (id, ns), the FIFO's descriptor, which the caller closes)."""
    q = queue.Queue()
    fd = os.open(fifo, os.O_RDWR)  # a writer of our own: the reader never sees EOF

    def run():
        buf = b""
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            t = time.time_ns()
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                q.put((line.decode(), t))

    threading.Thread(target=run, daemon=True).start()
    return q, fd


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = harness.root_dir()
        # A snapshot of the binary: a rebuild during the run must not change what is measured.
        self.bin = os.path.join(self.root, "crawlab-node")
        shutil.copy2(args.bin, self.bin)
        self.rows = []       # (section, metric, value text, goal text)
        self.raw = {}        # section -> figures, for --json
        self.notes = []      # warnings printed under the table
        self.failed = False
        self.background = {}  # test -> busy share of the machine in the second before it
        self.refs = {}        # measure_refs()
        self.no_count = None  # why syscalls cannot be counted, once known
        self.pg = None        # --store=postgres: the run's server (tests/integration/pg.py)

    def cluster(self, name, workers=2, max_runners=8, start_workers=True, tls=False,
                peers=True):
        """A master and (with start_workers) its workers. With --store=postgres the master keeps
        its rows in a database of the run's server made for this cluster; with --masters=2 (and
        peers) a second master, c.peer, shares that database and the first one's keys (see
        start_worker and via). With tls, `crawlab-node cert init`
        makes a CA and certificates in <dir>/pki first; the master then requires client
        certificates, the workers present the worker certificate (all the same one, so node-key
        binding is off, as it was when the figures were first taken) and the client commands an
        admin certificate."""
        c = harness.Cluster(os.path.join(self.root, name), binary=self.bin)
        c.worker_args = list(self.args.worker_arg)
        extra = []
        if tls:
            pki = c.path("pki")
            rc, out, err = c.run_cli("cert", "init", "--dir=%s" % pki,
                                     "--master-host=127.0.0.1,localhost")
            if rc == 0:
                rc, out, err = c.run_cli("cert", "issue", "--dir=%s" % pki, "--name=bench-admin",
                                         "--role=admin")
            if rc != 0:
                raise BenchError("cert init/issue failed: rc %d, %s" % (rc, err.strip()))
            pem = lambda f: os.path.join(pki, f)  # noqa: E731
            extra = ["--tls-cert=%s" % pem("master.pem"), "--tls-key=%s" % pem("master.key"),
                     "--tls-ca=%s" % pem("ca.pem"), "--no-tls-bind-node-key"]
            c.worker_args += ["--tls-ca=%s" % pem("ca.pem"), "--tls-cert=%s" % pem("worker.pem"),
                              "--tls-key=%s" % pem("worker.key")]
            c.cli_args = ["--tls-ca=%s" % pem("ca.pem"), "--tls-cert=%s" % pem("bench-admin.pem"),
                          "--tls-key=%s" % pem("bench-admin.key")]
        extra += self.store_args(c)
        c.start_master(extra=extra)
        if tls and not c.master.count("TLS 1.3"):
            raise BenchError("the master does not say it serves TLS 1.3: %s"
                             % " | ".join(c.master.tail(5)))
        c.peer = None
        if peers and self.args.masters > 1:
            c.peer = harness.Cluster(c.path("b"), binary=self.bin)
            c.peer.start_master(extra=extra + ["--auth-key-file=%s" % c.key_file,
                                               "--admin-key-file=%s" % c.admin_key_file])
        c.workers = []
        if start_workers:
            self.start_workers(c, workers, max_runners)
        return c

    def store_args(self, c):
        """The master's --store for cluster c: [] on SQLite (its data dir), else a database of
        its own on the run's PostgreSQL server, started at the first call."""
        if self.args.store != "postgres":
            return []
        if self.pg is None:
            import pg  # tests/integration/pg.py
            self.pg = pg.Server.start(fsync=self.args.pg_fsync == "on")
            harness._pg = self.pg  # harness's server: pg_store_uri makes the databases in it
            print("  PostgreSQL: pid %d, port %d, fsync=%s" % (self.pg.proc.pid, self.pg.port,
                                                               self.args.pg_fsync), flush=True)
        return ["--store=" + harness.pg_store_uri(c.dir)]

    def start_workers(self, c, n, max_runners):
        for i in range(1, n + 1):
            self.start_worker(c, i, max_runners)
        self._wait_workers(c)

    def start_worker(self, c, i, max_runners):
        """Worker w<i>; with two masters, odd workers know A first and even ones B first."""
        order = None
        if c.peer:
            pair = [c.master_addr, c.peer.master_addr]
            order = ",".join(pair if i % 2 else pair[::-1])
        c.workers.append(c.start_worker("w%d" % i, master_addr=order, extra=c.worker_args +
                                        ["--max-runners=%d" % max_runners]))

    @staticmethod
    def via(c, i):
        """Client options of the i-th call: with two masters, odd calls go to B, even ones to A
        (the cluster's own --master)."""
        return ["--master=%s" % c.peer.master_addr] if c.peer and i % 2 else []

    @staticmethod
    def master_pids(c):
        return [c.master.pid] + ([c.peer.master.pid] if c.peer else [])

    def our_pids(self, c):
        """Every process of cluster c, both masters' included, and the database's."""
        return [p.pid for p in c.procs + (c.peer.procs if c.peer else [])] + self.db_pids()

    def _db_procs(self):
        """[(pid, /proc stat fields)] of the postmaster and its children (/proc/*/stat by ppid:
        backends, WAL writer, checkpointer...); [] on SQLite."""
        if self.pg is None:
            return []
        root = self.pg.proc.pid
        return [(pid, fields) for pid, _, fields in harness.proc_stats()
                if pid == root or fields[1] == str(root)]

    def db_pids(self):
        return [pid for pid, _ in self._db_procs()]

    def topology(self):
        """How the masters keep their rows, for the tests' first lines."""
        if self.args.store != "postgres":
            return ", master on SQLite"
        return ", %s on one PostgreSQL database (fsync=%s)" % (
            "2 masters" if self.args.masters > 1 else "master", self.args.pg_fsync)

    def masters_name(self, c):
        return "masters (2)" if c.peer else "master"

    def db_cpu(self):
        """CPU seconds used so far by the PostgreSQL server: utime + stime of the postmaster and
        of each of its children, plus the postmaster's cutime + cstime (its children that
        ended). None on SQLite."""
        if self.pg is None:
            return None
        root = self.pg.proc.pid
        ticks = 0
        for pid, fields in self._db_procs():
            end = 15 if pid == root else 13  # utime stime, and the postmaster's cutime cstime
            ticks += sum(int(x) for x in fields[11:end])
        return ticks / CLK_TCK

    def db_rows(self, S, unit, units, used, seconds=None, in_us=False):
        """Rows of the database's CPU per unit (used: CPU seconds over the test's window, None
        on SQLite) and, given the window's length, its use of one core; returns used."""
        if used is None:
            return None
        self.row(S, "database (PostgreSQL, all processes) CPU per %s" % unit,
                 "%.0f us" % (used / units * 1e6) if in_us else "%.2f ms" % (used / units * 1e3))
        if seconds:
            self.row(S, "database CPU use (of one core)", "%.0f %%" % (used / seconds * 100))
        return used

    def db_used(self, d0):
        """CPU seconds of the database since a db_cpu() reading d0; None on SQLite."""
        return None if d0 is None else self.db_cpu() - d0

    def _wait_workers(self, c):
        for w in c.workers:
            w.wait_log("registered with the master")
        c.wait_status("online", names=[w.name for w in c.workers])

    def finish(self, c):
        if c.peer:
            c.peer.stop_all()
        c.stop_all()
        if not self.args.keep:
            shutil.rmtree(c.dir, ignore_errors=True)

    def submit(self, c, *words, extra=(), via=0):
        rc, out, err = c.cli("submit", *self.via(c, via), *extra, "--", *words)
        if rc != 0 or len(out.split()) != 1:
            raise BenchError("submit failed: rc %d, stdout %r, stderr %r" % (rc, out, err.strip()))
        return out.strip()

    def tasks(self, c, status=None):
        args = ["--json"] + (["--status=%s" % status] if status else [])
        rc, out, err = c.cli("tasks", *args, timeout=120)
        if rc != 0:
            raise BenchError("tasks --json failed: rc %d, %s" % (rc, err.strip()))
        return json.loads(out)

    def row(self, section, metric, value, goal=""):
        self.rows.append((section, metric, value, goal))

    def note(self, text):
        self.notes.append(text)
        print("  note: " + text, flush=True)

    def count_start(self, groups):
        """Starts counting the syscalls of groups of processes ({name: [pids]}); None when they
        cannot be counted (self.no_count says why)."""
        if self.no_count:
            return None
        try:
            return SyscallCount(self.args.refs_bin, groups)
        except BenchError as e:
            self._count_failed(e)
            return None

    def count_stop(self, counter):
        """{group: syscalls} of a count_start() counter; {} without one."""
        if counter is None:
            return {}
        try:
            return counter.stop()
        except BenchError as e:
            self._count_failed(e)
            return {}

    def _count_failed(self, e):
        self.no_count = str(e)
        self.note("syscalls are not counted (the syscall rows say n/a): %s" % e)

    def per_unit_rows(self, S, unit, units, cpu, calls, in_us=False):
        """Rows of CPU (in ms, or us) and syscalls per unit (task, MB, connection) for each
        process group of cpu ({group: CPU seconds}) and calls ({group: syscalls})."""
        for g, seconds in cpu.items():
            v = seconds / units
            self.row(S, "%s CPU per %s" % (g, unit), "%.0f us" % (v * 1e6) if in_us else
                     "%.2f ms" % (v * 1e3))
        for g in cpu:
            self.row(S, "%s syscalls per %s" % (g, unit), "%.1f" % (calls[g] / units)
                     if g in calls else "n/a")

    def perf_start(self, name, pid, settle=0.3):
        """perf record (dwarf call graphs) of one process, when --perf DIR was given."""
        if not self.args.perf:
            return None
        os.makedirs(self.args.perf, exist_ok=True)
        out = os.path.join(self.args.perf, "%s.data" % name)
        p = subprocess.Popen(["perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384",
                              "-p", str(pid), "-o", out],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(settle)  # perf attaches
        return p

    SYSCALLS = ("fdatasync", "fsync", "pwrite64", "sendmsg", "recvmsg", "epoll_wait")

    def syscalls_start(self, name, pid):
        """perf stat counting some syscalls of one process, when --syscalls was given."""
        if not self.args.syscalls:
            return None
        out = os.path.join(self.root, "%s.syscalls.csv" % name)
        ev = ",".join("syscalls:sys_enter_" + x for x in self.SYSCALLS)
        p = subprocess.Popen(["perf", "stat", "-x", ",", "-e", ev, "-p", str(pid), "-o", out],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        p.out = out
        return p

    def pg_statements_start(self):
        """With --pg-statements on PostgreSQL: the server logs every statement from now on
        (ALTER SYSTEM, then a reload, which each backend takes before its next statement);
        returns the log's size, where the statements of the test start. None otherwise."""
        if not self.args.pg_statements or self.pg is None:
            return None
        self.pg.psql("ALTER SYSTEM SET log_statement = 'all'")
        self.pg.psql("SELECT pg_reload_conf()")
        return os.path.getsize(os.path.join(self.pg.root, "postgres.log"))

    def pg_statements_stop(self, start):
        """Ends a pg_statements_start(): Counter of the statements logged since, by their first
        words (BEGIN, COMMIT, a prepared statement's SQL; this run's own psql calls left out)."""
        if start is None:
            return collections.Counter()
        self.pg.psql("ALTER SYSTEM RESET log_statement")
        self.pg.psql("SELECT pg_reload_conf()")
        with open(os.path.join(self.pg.root, "postgres.log"), errors="replace") as f:
            f.seek(start)
            text = f.read()
        kinds = collections.Counter()
        for line in text.splitlines():
            _, sep, sql = line.partition("LOG:  statement: ")
            if not sep:
                _, sep, rest = line.partition("LOG:  execute ")
                sql = rest.partition(": ")[2] if sep else ""
            if sql and not sql.startswith(("ALTER SYSTEM", "SELECT pg_reload_conf")):
                kinds[" ".join(sql.split()[:6])] += 1
        return kinds

    def syscalls_stop(self, p):
        """Stops a syscalls_start() counter; returns {syscall: count} ({} without one)."""
        if p is None:
            return {}
        self.perf_stop(p)
        counts = {}
        try:
            with open(p.out) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) > 2 and parts[2].startswith("syscalls:sys_enter_"):
                        try:
                            counts[parts[2][len("syscalls:sys_enter_"):]] = int(parts[0])
                        except ValueError:
                            pass
        except OSError:
            pass
        return counts

    def perf_stop(self, p):
        if p is None:
            return
        try:
            p.send_signal(signal.SIGINT)
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    # -----------------------------------------------------------------------------------------
    # 1. dispatch latency

    def latency(self):
        a = self.args
        n = a.latency_tasks
        print("== dispatch latency: %d tasks, one at a time, 2 idle workers%s"
              % (n, self.topology()), flush=True)
        c = self.cluster("latency")
        try:
            self._latency(c, n)
        finally:
            self.finish(c)

    def _latency(self, c, n):
        a = self.args
        fifo = c.path("start.fifo")
        os.mkfifo(fifo)
        q, fd = fifo_reader(fifo)
        # The task is `. PROBE`: dash reads the probe with its `.` builtin, and the probe's echo is
        # a builtin too, so the stamp is taken before the task runs any other program. Every word
        # is made of characters `submit` does not quote, so the worker's /bin/sh -c runs it as is.
        probe = c.path("probe.sh")
        with open(probe, "w") as f:
            f.write('echo "$CRAWLAB_TASK_ID" >%s\n' % fifo)
            if a.hold > 0:
                f.write("sleep %g\n" % a.hold)
        bare = c.path("bare.sh")
        with open(bare, "w") as f:
            f.write('echo "$CRAWLAB_TASK_ID" >%s\n' % fifo)

        # What the stamp itself costs: posix_spawn of /bin/sh -c '. bare.sh' to the FIFO read,
        # measured from here; subtracted from the fine figure to estimate the time to the spawn.
        spawn_cost = []
        env = dict(os.environ)
        for i in range(50):
            env["CRAWLAB_TASK_ID"] = "cal%d" % i
            t0 = time.time_ns()
            pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", ". %s" % bare], env)
            line, t1 = q.get(timeout=10)
            os.waitpid(pid, 0)
            if line == "cal%d" % i:
                spawn_cost.append((t1 - t0) / 1e6)
        spawn_cost.sort()
        spawn_med = pct(spawn_cost, 50)

        ids, fine, submit_ms, stuck = [], {}, [], []
        # The master also serves each task's submit and logs --follow commands.
        groups = {self.masters_name(c) + " (+ client calls)": self.master_pids(c),
                  "workers (2)": [w.pid for w in c.workers]}
        cpu0 = group_cpu(groups)
        d0 = self.db_cpu()
        counter = self.count_start(groups)
        sampler = CpuSampler(lambda: self.our_pids(c))
        t_begin = now_ms()
        try:
            self._latency_loop(c, n, probe, q, ids, fine, submit_ms, stuck)
        except BenchError as e:  # report what was measured up to here
            self.failed = True
            self.note("latency: %s" % e)
        finally:
            os.close(fd)
            t_end = now_ms()
            sampler.stop()
            calls = self.count_stop(counter)
            cpu = {g: v - cpu0[g] for g, v in group_cpu(groups).items()}
            db = self.db_used(d0)

        ts = {t["id"]: t for t in self.tasks(c)}
        coarse = sorted(ts[i]["started_ms"] - ts[i]["created_ms"] for i in ids
                        if ts[i]["started_ms"] > 0)
        fine_ms = sorted(fine[i] / 1e6 - ts[i]["created_ms"] for i in ids)
        est = sorted(v - spawn_med for v in fine_ms)
        sub = sorted(submit_ms[a.latency_warmup:])
        statuses = collections.Counter(ts[i]["status"] for i in ids)
        r = {"tasks": len(ids), "statuses": dict(statuses), "stuck": len(stuck),
             "coarse_ms": coarse, "fine_ms": [round(v, 3) for v in fine_ms],
             "stamp_cost_ms": [round(v, 3) for v in spawn_cost], "submit_cli_ms": sub}
        self.raw["latency"] = r
        S = "dispatch"
        self.row(S, "tasks measured (statuses)", "%d (%s)" % (len(ids), ", ".join(
            "%s %d" % kv for kv in sorted(statuses.items()))))
        self.row(S, "started_ms-created_ms p50  [1 ms res.]", ms(pct(coarse, 50), 0), "<= 2 ms")
        self.row(S, "started_ms-created_ms p99  [1 ms res.]", ms(pct(coarse, 99), 0), "<= 10 ms")
        self.row(S, "started_ms-created_ms mean / max", "%s / %s" % (
            ms(sum(coarse) / len(coarse) if coarse else None), ms(coarse[-1] if coarse else None, 0)))
        self.row(S, "task's own stamp - created_ms p50", ms(pct(fine_ms, 50)), "<= 2 ms")
        self.row(S, "task's own stamp - created_ms p99", ms(pct(fine_ms, 99)), "<= 10 ms")
        self.row(S, "  of which sh start + stamp (p50 of 50)", ms(spawn_med))
        self.row(S, "  => created -> spawn, est. p50 / p99",
                 "%s / %s" % (ms(pct(est, 50)), ms(pct(est, 99))))
        self.row(S, "submit command round trip p50 / p99",
                 "%s / %s" % (ms(pct(sub, 50), 1), ms(pct(sub, 99), 1)))
        if submit_ms:
            r["per_task"] = {"tasks": len(submit_ms), "cpu_s": cpu, "syscalls": calls}
            self.per_unit_rows(S, "task", len(submit_ms), cpu, calls, in_us=True)
            r["db_cpu_s"] = self.db_rows(S, "task", len(submit_ms), db, in_us=True)
        r["machine_busy"], r["other_busy"] = sampler.shares(t_begin, t_end)
        self._busy_rows(S, r, "whole test")
        if stuck:
            self.row(S, "tasks that never ended (stuck)", "%d" % len(stuck))
            self.failed = True

    def _latency_loop(self, c, n, probe, q, ids, fine, submit_ms, stuck):
        """Submits warm-up + n probes one at a time; fills ids, fine (id -> ns stamp), submit_ms
        and stuck."""
        a = self.args
        for i in range(a.latency_warmup + n):
            t0 = time.monotonic()
            tid = self.submit(c, ".", probe, via=i)
            submit_ms.append((time.monotonic() - t0) * 1000)
            deadline = time.monotonic() + 10
            while True:
                try:
                    line, t = q.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    raise BenchError("task %s did not start within 10 s" % tid)
                if line == tid:
                    break
            if i >= a.latency_warmup:
                ids.append(tid)
                fine[tid] = t
            # Workers idle before the next submit: wait for this task's end (logs --follow
            # returns when the task ends).
            try:
                rc, out, err = c.cli("logs", *self.via(c, i), "--follow", tid,
                                     timeout=a.end_wait)
            except harness.Timeout:
                stuck.append(tid)
                if len(stuck) == 1:
                    self.note("task %s started but did not end within %.0f s (status %s)"
                              % (tid, a.end_wait, self._status(c, tid)))
                if len(stuck) >= a.max_stuck:
                    self.failed = True
                    self.note("%d tasks did not end: latency test stopped after %d tasks (a "
                              "stuck task keeps a runner slot in the master's eyes; --hold=0.02 "
                              "keeps each probe alive 20 ms after its stamp)"
                              % (len(stuck), len(ids)))
                    break

    def _busy_rows(self, S, r, window):
        if r.get("machine_busy") is None:
            return
        self.row(S, "machine CPU busy (%d cores), %s" % (os.cpu_count(), window),
                 "%.0f %%" % (r["machine_busy"] * 100))
        self.row(S, "  of which other processes (not ours, not kernel threads)",
                 "%.0f %%" % (r["other_busy"] * 100))
        if r["other_busy"] >= 0.10:
            self.note("%s: other work used %.0f %% of the machine during the test; its figures "
                      "are not comparable" % (S, r["other_busy"] * 100))

    def _status(self, c, tid):
        try:
            return {t["id"]: t for t in self.tasks(c)}.get(tid, {}).get("status", "missing")
        except Exception as e:  # only for a message
            return "unknown (%s)" % e

    # -----------------------------------------------------------------------------------------
    # 2. throughput

    def throughput(self):
        a = self.args
        n = a.throughput_tasks
        print("== throughput: %d x `%s`, queued first, then 2 workers with --max-runners=%d%s"
              % (n, " ".join(a.task), a.max_runners, self.topology()), flush=True)
        c = self.cluster("throughput", start_workers=False)
        try:
            self._throughput(c, n)
        finally:
            self.finish(c)

    def _throughput(self, c, n):
        a = self.args
        failures = []

        def submit_one(i):
            try:
                return self.submit(c, *a.task, via=i)
            except BenchError as e:
                failures.append(str(e))
                return None

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=a.submitters) as ex:
            ids = [i for i in ex.map(submit_one, range(n)) if i]
        queue_s = time.monotonic() - t0
        print("  queued %d tasks in %.1f s (%.0f submits/s with %d parallel clients)"
              % (n, queue_s, n / queue_s, a.submitters), flush=True)
        queued = len(self.tasks(c, "pending"))
        if failures:
            # The master's queue is what the workers drain, whatever the client printed.
            self.failed = True
            self.note("throughput: %d of %d submit commands failed, the first: %s; the master "
                      "queued %d tasks" % (len(failures), n, failures[0], queued))
        n = queued

        masters = self.masters_name(c)
        master_cpu0 = sum(cpu_seconds(p) for p in self.master_pids(c))
        d0 = self.db_cpu()
        perf = self.perf_start("throughput-master", c.master.pid)
        sys_m = self.syscalls_start("throughput-master", c.master.pid)
        count_m = self.count_start({masters: self.master_pids(c)})
        statements = self.pg_statements_start()
        sampler = CpuSampler(lambda: self.our_pids(c))
        start_ms = now_ms()
        for i in (1, 2):
            self.start_worker(c, i, a.max_runners)
        # The workers are counted from their exec: every thread they start is theirs.
        count_w = self.count_start({"workers (2)": [w.pid for w in c.workers]})
        perf_w = self.perf_start("throughput-worker1", c.workers[0].pid, settle=0)
        # Waits on the shrinking sets only (pending, then assigned and running), so that the
        # polling costs the master little; 0.5 s between polls.
        deadline = time.monotonic() + a.throughput_deadline
        left, last_change, last_left = None, time.monotonic(), None
        done = False
        while time.monotonic() < deadline:
            left = sum(len(self.tasks(c, s)) for s in ("pending", "assigned", "running"))
            if left == 0:
                done = True
                break
            if left != last_left:
                last_left, last_change = left, time.monotonic()
            elif time.monotonic() - last_change > a.end_wait and \
                    not self.tasks(c, "pending") and not self.tasks(c, "assigned"):
                break  # nothing moves any more: the rest is stuck in running
            time.sleep(0.5)
        sampler.stop()
        self.perf_stop(perf)
        self.perf_stop(perf_w)
        calls = self.syscalls_stop(sys_m)
        statements = self.pg_statements_stop(statements)
        counts = dict(self.count_stop(count_m), **self.count_stop(count_w))
        master_cpu = sum(cpu_seconds(p) for p in self.master_pids(c)) - master_cpu0
        db = self.db_used(d0)
        worker_cpu = sum(cpu_seconds(w.pid) for w in c.workers)
        end_ms = now_ms()

        ts = self.tasks(c)  # a fresh cluster: every task in it is one of ours
        st = collections.Counter(t["status"] for t in ts)
        fin = [t for t in ts if t["status"] == "finished"]
        r = {"tasks": n, "statuses": dict(st), "queue_s": queue_s, "master_cpu_s": master_cpu,
             "worker_cpu_s": worker_cpu}
        S = "throughput"
        self.row(S, "tasks (statuses at the end)", "%d (%s)" % (n, ", ".join(
            "%s %d" % kv for kv in sorted(st.items()))))
        started = [t["started_ms"] for t in ts if t["started_ms"] > 0]
        if started:
            first = min(started)
            last_start = max(started)
            r["start_rate"] = len(started) / max(1e-3, (last_start - start_ms) / 1000)
            self.row(S, "tasks started / s (workers launched -> last start)",
                     "%.0f" % r["start_rate"])
        if fin:
            last_end = max(t["ended_ms"] for t in fin)
            wall = (last_end - start_ms) / 1000
            r["wall_s"] = wall
            r["rate"] = len(fin) / wall
            r["steady_rate"] = len(fin) / max(1e-3, (last_end - first) / 1000)
            self.row(S, "finished / s (workers launched -> last end)", "%.0f" % r["rate"],
                     ">= 1000 /s")
            self.row(S, "finished / s (first start -> last end)", "%.0f" % r["steady_rate"])
            self.row(S, "wall time, workers launched -> last end", "%.2f s" % wall)
            r["machine_busy"], r["other_busy"] = sampler.shares(start_ms, last_end)
            self._busy_rows(S, r, "launch -> last end")
        if started:
            cpu = {masters: master_cpu, "workers (2)": worker_cpu}
            r["per_task"] = {"tasks": len(started), "cpu_s": cpu, "syscalls": counts}
            self.per_unit_rows(S, "task started", len(started), cpu, counts, in_us=True)
            r["db_cpu_s"] = self.db_rows(S, "task started", len(started), db,
                                         (end_ms - start_ms) / 1000, in_us=True)
        if statements and started:
            r["db_statements"] = dict(statements)
            self.row(S, "database statements per task started (--pg-statements)",
                     "%.1f" % (sum(statements.values()) / len(started)))
            for sql, k in statements.most_common(8):
                self.row(S, "  %s ..." % sql[:52], "%.2f" % (k / len(started)))
        if calls and started:
            r["master_syscalls"] = calls
            self.row(S, "master syscalls per task started, by name", ", ".join(
                "%s %.1f" % (k, calls[k] / len(started)) for k in self.SYSCALLS if k in calls))
        self.row(S, "queueing: submit commands / s (%d clients)" % a.submitters,
                 "%.0f" % (n / queue_s))
        self.raw["throughput"] = r
        if not done:
            self.failed = True
            self.note("throughput: %d of %d tasks did not finish (%s)" % (
                n - len(fin), n, ", ".join("%s %d" % kv for kv in sorted(st.items()))))

    # -----------------------------------------------------------------------------------------
    # 3. log ingestion

    def logs(self):
        self._logs_test(tls=False)

    def logs_tls(self):
        self._logs_test(tls=True)

    def _logs_test(self, tls):
        a = self.args
        print("== log ingestion%s: one task printing 100-byte lines, one worker%s"
              % (" over TLS 1.3 (mutual TLS)" if tls else "", self.topology()), flush=True)
        key = "logs-tls" if tls else "logs"
        c = self.cluster(key, workers=1, tls=tls)
        try:
            if a.log_bytes:
                self._logs(c, a.log_bytes, "", tls)
            else:
                # A probe run sizes the measured one to about --log-seconds. Over TLS the measured
                # run prints as many bytes as the plaintext one did, when that one ran, so that
                # the two figures compare like with like; its probe is then only a warm-up.
                rate = self._logs(c, a.log_probe_bytes, "probe ", tls)
                plain = self.raw.get("logs", {}).get("bytes") if tls else None
                if plain:
                    size = plain
                else:
                    size = int(rate * MB * a.log_seconds)
                    size = max(a.log_probe_bytes, min(size, a.log_max_bytes))
                self._logs(c, size - size % 100, "", tls)
        finally:
            self.finish(c)

    def _tls_ratio(self):
        """A last row for the TLS section: durable MB/s over TLS / plaintext, when TLS ran."""
        plain, tls = self.raw.get("logs"), self.raw.get("logs-tls")
        if not tls:
            return
        if not plain:
            self.row("logs over TLS", "durable MB/s, TLS / plaintext", "- (plaintext not run)",
                     ">= 0.85")
            return
        ratio = tls["mb_s"] / plain["mb_s"]
        self.raw["tls_ratio"] = ratio
        self.row("logs over TLS", "durable MB/s, TLS / plaintext", "%.2f (%.0f / %.0f MB/s)"
                 % (ratio, tls["mb_s"], plain["mb_s"]), ">= 0.85")

    def _side_by_side(self):
        """Plaintext and TLS log figures in two columns, when both ran."""
        plain, tls = self.raw.get("logs"), self.raw.get("logs-tls")
        if not (plain and tls):
            return
        print()
        print("log ingestion, plaintext and TLS side by side (%d MB and %d MB printed):"
              % (plain["bytes"] // MB, tls["bytes"] // MB))
        print("  %-34s  %10s  %10s  %s" % ("", "plaintext", "TLS", "TLS / plaintext"))

        def line(what, f, fmt):
            a, b = f(plain), f(tls)
            print("  %-34s  %10s  %10s  %.2f" % (what, fmt % a, fmt % b, b / a if a else 0))
        line("durable MB/s", lambda r: r["mb_s"], "%.0f")
        line("master CPU per MB", lambda r: r["master_cpu_s"] / (r["bytes"] / MB) * 1000,
             "%.2f ms")
        line("master CPU use (of one core)", lambda r: r["master_cpu_s"] / r["seconds"] * 100,
             "%.0f %%")
        line("worker CPU per MB", lambda r: r["worker_cpu_s"] / (r["bytes"] / MB) * 1000,
             "%.2f ms")
        if plain.get("machine_busy") is not None and tls.get("machine_busy") is not None:
            line("machine CPU busy", lambda r: r["machine_busy"] * 100, "%.0f %%")

    def _logs(self, c, size, label, tls=False):
        size -= size % 100
        lines = size // 100
        script = c.path("lines.sh")
        with open(script, "w") as f:
            f.write("yes %s | head -c %d\n" % (LINE.decode(), size))
        masters = self.master_pids(c)
        master = c.master.pid
        worker = c.workers[0].pid
        name = "logs-tls" if tls else "logs"
        m0, w0 = sum(cpu_seconds(p) for p in masters), cpu_seconds(worker)
        threads0 = thread_times(master)
        d0 = self.db_cpu()
        sampler = CpuSampler(lambda: self.our_pids(c))
        perf = self.perf_start(name + "-master", master) if not label else None
        perf_w = self.perf_start(name + "-worker", worker, settle=0) if not label else None
        sys_m = self.syscalls_start(name + "-master", master) if not label else None
        counter = self.count_start({self.masters_name(c): masters, "worker": [worker]}) \
            if not label else None
        # With two masters the task is made on B and runs on the worker of A: its news crosses
        # the database, its lines go through A.
        tid = self.submit(c, ".", script, via=1)
        deadline = time.monotonic() + max(120, size / (5 * MB))
        t = None
        while time.monotonic() < deadline:
            t = {x["id"]: x for x in self.tasks(c)}.get(tid)
            if t and t["status"] in FINAL:
                break
            time.sleep(0.2)
        sampler.stop()
        self.perf_stop(perf)
        self.perf_stop(perf_w)
        calls = self.syscalls_stop(sys_m)
        counts = self.count_stop(counter)
        m1, w1 = sum(cpu_seconds(p) for p in masters), cpu_seconds(worker)
        threads = thread_deltas(threads0, thread_times(master))
        db = self.db_used(d0)
        if not t or t["status"] not in FINAL:
            self.failed = True
            raise BenchError("log task %s did not end (status %s)" % (tid, t and t["status"]))
        dur = (t["ended_ms"] - t["started_ms"]) / 1000
        rate = size / MB / dur
        S = "logs over TLS" if tls else "logs"
        if label:
            print("  %s%d MB in %.2f s: %.0f MB/s" % (label, size // MB, dur, rate), flush=True)
            return rate
        log_file = os.path.join(c.master_dir, "logs", "%s.log" % tid)
        on_disk = os.path.getsize(log_file) if os.path.exists(log_file) else None
        r = {"bytes": size, "lines": lines, "seconds": dur, "mb_s": rate, "status": t["status"],
             "log_lines": t["log_lines"], "master_cpu_s": m1 - m0, "worker_cpu_s": w1 - w0,
             "log_file_bytes": on_disk, "tls": tls}
        self.raw[name] = r
        self.row(S, "task (status, lines stored / printed)", "%s, %d / %d" % (
            t["status"], t["log_lines"], lines))
        self.row(S, "bytes printed, time started -> ended", "%d MB, %.2f s" % (size // MB, dur))
        self.row(S, "durable MB/s (MB = 10^6 bytes)", "%.0f" % rate,
                 ">= 0.85 x plaintext" if tls else ">= 300 MB/s")
        self.row(S, "durable lines / s", "%.0f" % (lines / dur))
        cpu = {self.masters_name(c): m1 - m0, "worker": w1 - w0}
        r["per_mb"] = {"mb": size / MB, "cpu_s": cpu, "syscalls": counts}
        self.per_unit_rows(S, "MB", size / MB, cpu, counts)
        self.row(S, "%s CPU use (of one core)" % self.masters_name(c),
                 "%.0f %%" % ((m1 - m0) / dur * 100))
        # Which of the master's threads the CPU per MB went to, user and system apart, and the
        # page faults it took: where a run's figure differs from another's.
        mb = size / MB
        r["master_threads"] = threads
        self.row(S, "master CPU per MB by thread, user + system", ", ".join(
            "%s %.2f + %.2f ms" % (k, v[0] / mb * 1e3, v[1] / mb * 1e3)
            for k, v in sorted(threads.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
            if k != "process" and v[0] + v[1] > 0))
        self.row(S, "master minor page faults per MB", "%.0f" % (threads["process"][2] / mb))
        # From the submit to the end seen by the poll: a little more than started -> ended.
        r["db_cpu_s"] = self.db_rows(S, "MB", size / MB, db, dur)
        if calls:
            r["master_syscalls"] = calls
            self.row(S, "master syscalls per MB, by name", ", ".join(
                "%s %.1f" % (k, calls[k] / (size / MB)) for k in self.SYSCALLS if k in calls))
        r["machine_busy"], r["other_busy"] = sampler.shares(t["started_ms"], t["ended_ms"])
        self._busy_rows(S, r, "started -> ended")
        if t["log_lines"] != lines or t["status"] != "finished":
            self.failed = True
            self.note("%s: log task ended %s with %d of %d lines stored"
                      % (name, t["status"], t["log_lines"], lines))
        return rate

    # -----------------------------------------------------------------------------------------
    # 5. connection set-up: TCP connect to the master's first HTTP/2 bytes, plaintext and TLS

    def handshake(self):
        print("== connection set-up: %d connections to a plaintext master, then to a mutual-TLS "
              "master" % self.args.handshakes, flush=True)
        plain = self._connections(tls=False)
        tls = self._connections(tls=True)
        if plain and tls:
            self.row("handshake", "TLS - plaintext, p50 (the handshake's share)", "%.2f ms"
                     % (tls["p50_ms"] - plain["p50_ms"]))

    def _connections(self, tls):
        """N connections one after the other, each timed from connect() until the first bytes
        the master sends (gRPC's HTTP/2 SETTINGS frame), which it sends only once the connection
        is its own: over TLS, after the whole handshake, client certificate verified. The client
        is Python's ssl module (OpenSSL) presenting the worker certificate."""
        n = self.args.handshakes
        c = self.cluster("handshake-tls" if tls else "handshake", start_workers=False, tls=tls,
                         peers=False)
        try:
            ctx = None
            if tls:
                pki = c.path("pki")
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_3
                ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
                ctx.load_cert_chain(os.path.join(pki, "worker.pem"), os.path.join(pki, "worker.key"))
                ctx.set_alpn_protocols(["h2"])
            master = c.master.pid
            times, cipher = [], None
            m0 = cpu_seconds(master)
            counter = self.count_start({"master": [master]})
            for _ in range(n):
                t0 = time.perf_counter()
                s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
                try:
                    if ctx:
                        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
                        cipher = s.cipher()[0]
                    if not s.recv(64):
                        raise BenchError("the master closed a connection without a byte")
                    times.append((time.perf_counter() - t0) * 1000)
                finally:
                    s.close()
            cpu = cpu_seconds(master) - m0
            calls = self.count_stop(counter)
        finally:
            self.finish(c)
        times.sort()
        r = {"connections": n, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99),
             "mean_ms": sum(times) / n, "master_cpu_ms": cpu / n * 1000, "cipher": cipher,
             "samples_ms": times}
        self.raw["handshake-tls" if tls else "handshake"] = r
        S = "handshake"
        what = "TLS 1.3, client certificate" if tls else "plaintext"
        self.row(S, "%s: connect -> first bytes, p50 / p99 / mean" % what, "%.2f / %.2f / %.2f ms"
                 % (r["p50_ms"], r["p99_ms"], r["mean_ms"]))
        r["master_syscalls"] = calls.get("master")
        self.per_unit_rows(S, "connection (%s)" % what, n, {"master": cpu}, calls)
        if tls:
            self.row(S, "TLS cipher suite the master chose (the client offered OpenSSL's three)",
                     cipher or "-")
        return r

    # -----------------------------------------------------------------------------------------

    def goal_lines(self):
        """'GOAL: met/missed (figure vs bound)' for each goal that is checked against this run's
        references, or 'GOAL: n/a (why)'."""
        def ref(name, key):
            return (self.refs.get(name) or {}).get(key)

        def check(goal, figure, bound, fmt, why_na):
            if why_na:
                return "%s: n/a (%s)" % (goal, why_na)
            return "%s: %s (%s vs %s)" % (goal, "met" if figure <= bound else "missed",
                                          fmt % figure, "<= " + fmt % bound)

        out = []
        spawn, rate = ref("spawn", "spawns_per_s"), self.raw.get("throughput", {}).get("rate")
        goal = "throughput: finished tasks/s >= 50 % of the spawn limit"
        if rate is None or spawn is None:
            out.append("%s: n/a (%s)" % (goal, "no spawn limit" if rate else "test not run"))
        else:
            out.append("%s: %s (%.0f /s vs >= %.0f /s, half of %.0f)" % (
                goal, "met" if rate >= spawn / 2 else "missed", rate, spawn / 2, spawn))
        sh, fine = ref("sh", "p50_ms"), self.raw.get("latency", {}).get("fine_ms")
        idle = ref("fdatasync_idle", "p50_ms")
        out.append(check("dispatch: task's own stamp - created_ms, p50 <= sh start + 1 ms",
                         pct(fine, 50), (sh or 0) + 1, "%.2f ms",
                         "test not run" if not fine else "no sh start" if sh is None else None) +
                   ("" if not fine or sh is None or idle is None else
                    "; of that 1 ms, a lone commit's fdatasync takes %.2f ms here" % idle))
        logs = self.raw.get("logs", {}).get("per_mb")
        # the master's figures, or both masters' together with --masters=2
        per_mb = logs and self.raw["logs"]["master_cpu_s"] / logs["mb"] * 1000
        floor = ref("pagecache", "cpu_ms_per_mb")
        out.append(check("log ingestion: master CPU per MB <= 1.5 ms", per_mb, 1.5, "%.2f ms",
                         None if logs else "test not run") +
                   ("" if not logs or floor is None else
                    "; %.2f ms of it over this run's page-cache floor of %.2f ms"
                    % (per_mb - floor, floor)))
        calls = logs and next((v for k, v in logs["syscalls"].items() if k.startswith("master")),
                              None)
        out.append(check("log ingestion: master syscalls per MB <= 10",
                         calls and calls / logs["mb"], 10, "%.1f",
                         "test not run" if not logs else None if calls else
                         "syscalls not counted"))
        return out

    def report(self, mach, build, cmd):
        self._tls_ratio()
        print()
        print("crawlab-node benchmark, %s" % mach["date"])
        print("machine: %s cores, %s, kernel %s" % (mach["nproc"], mach["cpu"], mach["kernel"]))
        print("binary: %s (sha256 %s), source commit %s%s" % (
            self.args.bin, build["sha256"], build["commit"],
            " + uncommitted changes in %s" % ", ".join(build["dirty"]) if build["dirty"] else ""))
        print("command: %s" % cmd)
        print("store: %s" % self.topology().lstrip(", "))
        if any(v is not None for v in self.background.values()):
            print("machine busy in the second before each test (other work): %s" % ", ".join(
                "%s %s" % (t, "-" if v is None else "%.0f %%" % (v * 100))
                for t, v in self.background.items()))
        else:
            print("machine busy before each test: not measured (--quiet-wait=0)")
        print("references of this machine, measured before the tests (bench-refs):")
        for line in refs_lines(self.refs):
            print("  " + line)
        print()
        w0 = max([len(r[0]) for r in self.rows] + [10])
        w1 = max([len(r[1]) for r in self.rows] + [10])
        w2 = max([len(r[2]) for r in self.rows] + [5])
        print("%-*s  %-*s  %-*s  %s" % (w0, "test", w1, "metric", w2, "value", "goal"))
        print("%s  %s  %s  %s" % ("-" * w0, "-" * w1, "-" * w2, "-" * 12))
        last = None
        for sec, metric, value, goal in self.rows:
            print("%-*s  %-*s  %-*s  %s" % (w0, sec if sec != last else "", w1, metric, w2,
                                             value, goal))
            last = sec
        self._side_by_side()
        print()
        print("goals, each against this run's references:")
        for line in self.goal_lines():
            print("  " + line)
        for n in self.notes:
            print("note: " + n)
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump({"machine": mach, "build": build, "command": cmd, "results": self.raw,
                           "references": self.refs, "background_busy": self.background,
                           "notes": self.notes}, f, indent=1)
            print("raw figures written to %s" % self.args.json)


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper()
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def main():
    p = argparse.ArgumentParser(description="crawlab-node benchmark (prints figures, never fails "
                                "on speed)")
    p.add_argument("--quick", action="store_true", help="a small run, under a minute")
    p.add_argument("--only", default="latency,throughput,logs,logs-tls,handshake",
                   help="comma-separated tests among latency, throughput, logs, logs-tls, "
                   "handshake (default: all five)")
    p.add_argument("--bin", default=harness.BIN, help="crawlab-node binary (default %(default)s; "
                   "copied before use)")
    p.add_argument("--refs-bin", default=REFS_BIN, help="bench-refs, built from bench/refs.c "
                   "(default %(default)s)")
    p.add_argument("--latency-tasks", type=int, default=200)
    p.add_argument("--latency-warmup", type=int, default=5)
    p.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                   help="latency probe task sleeps this long after its stamp (default 0: it exits "
                   "at once)")
    p.add_argument("--throughput-tasks", type=int, default=3000)
    p.add_argument("--max-runners", type=int, default=16)
    p.add_argument("--worker-arg", action="append", default=[], metavar="FLAG",
                   help="one more flag for every worker (repeatable), e.g. "
                        "--worker-arg=--task-containment=subreaper")
    p.add_argument("--submitters", type=int, default=4, help="parallel submit commands")
    p.add_argument("--task", nargs="+", default=["true"], help="throughput task command words")
    p.add_argument("--throughput-deadline", type=float, default=300)
    p.add_argument("--log-bytes", type=size_arg, default=0,
                   help="bytes the log task prints (default: sized to about --log-seconds)")
    p.add_argument("--log-seconds", type=float, default=10)
    p.add_argument("--log-probe-bytes", type=size_arg, default=200 * MB)
    p.add_argument("--log-max-bytes", type=size_arg, default=4000 * MB)
    p.add_argument("--end-wait", type=float, default=3.0,
                   help="seconds a started task may take to end before it counts as stuck")
    p.add_argument("--max-stuck", type=int, default=5,
                   help="the latency test stops after this many stuck tasks")
    p.add_argument("--perf", metavar="DIR", help="perf record (dwarf call graphs) the master "
                   "and worker w1 during the throughput and log tests, into DIR/*.data")
    p.add_argument("--quiet-wait", type=float, default=60, metavar="SECONDS",
                   help="before the references and each test, wait up to this long for the "
                   "machine to be idle (default 60, 15 with --quick; 0: do not wait)")
    p.add_argument("--syscalls", action="store_true",
                   help="also count the master's fdatasync, fsync, pwrite64, sendmsg, recvmsg and "
                   "epoll_wait calls one by one (perf stat tracepoints) during the throughput and "
                   "log tests")
    p.add_argument("--pg-statements", action="store_true",
                   help="with --store=postgres: count the database's statements during the "
                   "throughput test (PostgreSQL logs each one meanwhile, which costs it CPU: the "
                   "run's other figures are not comparable)")
    p.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    p.add_argument("--handshakes", type=int, default=200,
                   help="connections of the handshake test, each way")
    p.add_argument("--keep", action="store_true", help="keep the cluster directories")
    p.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                   help="where the masters keep their rows: SQLite in the data dir (default), or "
                   "a database per cluster on a PostgreSQL server the run starts "
                   "(tests/integration/pg.py; needs a build with libpq)")
    p.add_argument("--masters", type=int, choices=(1, 2), default=1,
                   help="2: two masters on one PostgreSQL database in the latency, throughput "
                   "and logs tests, workers knowing both (w1 A first, w2 B first), client calls "
                   "alternating between them (needs --store=postgres)")
    p.add_argument("--pg-fsync", choices=("on", "off"), default="on",
                   help="the PostgreSQL server's fsync (default on: durable figures; off is the "
                   "integration tests' server)")
    a = p.parse_args()
    if a.masters > 1 and a.store != "postgres":
        sys.exit("bench: --masters=2 needs --store=postgres (masters share only a PostgreSQL "
                 "database)")
    if a.quick:
        a.quiet_wait = min(a.quiet_wait, 15)
        a.latency_tasks = min(a.latency_tasks, 50)
        a.latency_warmup = min(a.latency_warmup, 3)
        a.throughput_tasks = min(a.throughput_tasks, 400)
        if not a.log_bytes:
            a.log_bytes = 200 * MB
        a.handshakes = min(a.handshakes, 50)
    if not os.access(a.bin, os.X_OK):
        sys.exit("bench: no executable at %s (build it: ninja -C build, or --bin)" % a.bin)
    if not os.access(a.refs_bin, os.X_OK):
        sys.exit("bench: no bench-refs at %s (build it: ninja -C build, or --refs-bin)"
                 % a.refs_bin)
    if a.keep:
        harness._keep_root = True  # harness's own switch: the root is kept and its path printed

    mach = machine()
    build = build_info(a.bin)
    cmd = "python3 bench/bench.py " + " ".join(sys.argv[1:])
    b = Bench(a)
    tests = [t.strip() for t in a.only.split(",") if t.strip()]
    for t in tests:
        if t not in TESTS:
            sys.exit("bench: unknown test %r (known: %s)" % (t, ", ".join(TESTS)))
    try:
        share = wait_quiet(max_wait=a.quiet_wait)
        b.background["references"] = share
        print("== references of this machine", flush=True)
        sampler = CpuSampler(lambda: [])  # ours: this process and the bench-refs it reaped
        t0 = now_ms()
        b.refs, errors = measure_refs(a.refs_bin, b.root, a.quick)
        sampler.stop()
        b.refs["other_busy"] = sampler.shares(t0, now_ms())[1]
        if (b.refs["other_busy"] or 0) >= 0.10:
            b.note("references: other work used %.0f %% of the machine while they were "
                   "measured; they, and the goals checked against them, are not comparable"
                   % (b.refs["other_busy"] * 100))
        for line in refs_lines(b.refs):
            print("  " + line, flush=True)
        for e in errors:
            b.failed = True
            b.note(e)
        for t in tests:
            try:
                share = wait_quiet(max_wait=a.quiet_wait)
                b.background[t] = share
                if share is not None and share >= 0.15:
                    b.note("%s: the machine was %.0f %% busy with other work before the test"
                           % (t, share * 100))
                getattr(b, TESTS[t])()
            except (BenchError, AssertionError) as e:  # harness.Timeout is an AssertionError
                b.failed = True
                b.note("%s: %s" % (t, e))
    except KeyboardInterrupt:
        b.failed = True
        b.note("interrupted")
    b.report(mach, build, cmd)
    if b.pg:
        b.pg.stop()
    harness._sweep()
    sys.exit(1 if b.failed else 0)


if __name__ == "__main__":
    main()
