"""Integration test harness for crawlab-node: real processes on 127.0.0.1.

Python 3 standard library only. A test file does:

    import harness
    class T(harness.ClusterTest):
        def test_something(self):
            m = self.c.start_master()
            w = self.c.start_worker("w1")
            self.c.wait_nodes(lambda ns: harness.status_of(ns, name="w1") == "online")
            rc, out, err = self.c.cli("tasks", "--json")      # master and key filled in
    if __name__ == "__main__":
        harness.main()

Rules the harness enforces: every wait is an event with a deadline (wait_until polls every 50 ms);
every process started is stopped by pid (SIGTERM, then SIGKILL after a bound), after each test and
again at exit; each test gets a directory under one tempfile.mkdtemp() root, removed when every
test passed, kept (path printed, with the tail of each process's log) when one failed.
"""

import atexit
import collections
import concurrent.futures
import itertools
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import h2raw

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.abspath(os.environ.get("CRAWLAB_NODE_BIN") or
                      os.path.join(HERE, "..", "..", "build", "src", "crawlab-node"))

POLL = 0.05            # seconds between two polls of a condition
WAIT = 20.0            # default deadline of a wait
STOP_GRACE = 10.0      # SIGTERM -> SIGKILL
WORKER_SHUTDOWN_GRACE = "3s"  # a worker's --shutdown-grace: well under STOP_GRACE
CLI_TIMEOUT = 30.0     # a client command that takes longer is killed and the test fails
TEST_TIMEOUT = 90      # backstop per test case (SIGALRM), on top of every wait's own deadline
LOG_TAIL = 40          # lines of each log printed when a test fails

_live = {}             # pid -> Proc, for the atexit sweep
_root = None           # the mkdtemp() root of this run
_keep_root = False     # set when a test failed


class Timeout(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# small helpers


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_until(pred, timeout=WAIT, what=None, interval=POLL):
    """Polls pred() every interval until it returns a true value, which is returned.
    Raises Timeout (an AssertionError) after timeout seconds, naming what was awaited and the
    last value seen. Exceptions from pred propagate."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.0f s waiting for %s (last value: %r)"
                          % (timeout, what or getattr(pred, "__name__", "a condition"), last))
        time.sleep(interval)


_leak_checked = set()   # the command shapes run with LeakSanitizer's exit check (run_cli)


def _shape(argv):
    """A command line's shape: the binary, its command words and its option names, up to `--`.
    Words with digits or capitals (ids, names, paths, expressions) are left out."""
    words = []
    for a in argv[1:]:
        if a == "--":
            break
        if a.startswith("--"):
            words.append(a.split("=", 1)[0])
        elif re.fullmatch(r"[a-z]+(-[a-z]+)*", a):
            words.append(a)
    return argv[0], tuple(sorted(words))


def _leak_check_once(argv, env):
    """The environment for argv. Under LeakSanitizer (the ASan build) a process's exit check
    costs about 45 ms of CPU on this machine, a third of a short command's run; the tests poll
    with commands, so each shape is checked at the first run in this test file and not again
    (ASan itself stays on for every run)."""
    shape = _shape(argv)
    if shape not in _leak_checked:
        _leak_checked.add(shape)
        return env
    env = dict(os.environ if env is None else env)
    prior = env.get("ASAN_OPTIONS")
    env["ASAN_OPTIONS"] = (prior + ":" if prior else "") + "detect_leaks=0"
    return env


def run_cli(*args, timeout=CLI_TIMEOUT, env=None, cwd=None, binary=None):
    """Runs `crawlab-node ARGS...` to completion: returns (rc, stdout, stderr) as text.
    A command still running after timeout seconds is killed and the test fails."""
    argv = [binary or BIN] + [str(a) for a in args]
    env = _leak_check_once(argv, env)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise Timeout("%s did not finish within %.0f s; stderr: %s"
                      % (" ".join(argv), timeout, _text(e.stderr)[-2000:]))
    return p.returncode, _text(p.stdout), _text(p.stderr)


def _text(b):
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def status_of(nodes, key=None, name=None):
    """The status of the node with this key (or name) in a `nodes --json` list, or None."""
    for n in nodes or ():
        if (key is not None and n.get("key") == key) or (name is not None and n.get("name") == name):
            return n.get("status")
    return None


def find_node(nodes, key=None, name=None):
    for n in nodes or ():
        if (key is not None and n.get("key") == key) or (name is not None and n.get("name") == name):
            return n
    return None


# ---------------------------------------------------------------------------------------------
# processes


class Proc:
    """A long-running process (a crawlab-node daemon or client, a PostgreSQL server: pg.py)
    whose stdout and stderr go to a log file, run as another user if given one. Stopped by pid
    only."""

    def __init__(self, name, argv, log_path, cwd=None, env=None, user=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, cwd=cwd, env=env, user=user)
        self.pid = self.popen.pid
        _live[self.pid] = self

    def __repr__(self):
        return "<%s pid %d%s>" % (self.name, self.pid,
                                  "" if self.alive() else " exited %r" % self.popen.returncode)

    # -- state
    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def lines(self):
        return self.log().splitlines()

    def count(self, text):
        """Number of log lines containing text."""
        return sum(1 for line in self.lines() if text in line)

    def tail(self, n=LOG_TAIL):
        return self.lines()[-n:]

    # -- waits
    def wait_log(self, text, count=1, timeout=WAIT):
        """Waits until at least count log lines contain text; returns the last such line.
        Fails at once if the process exits first (its log is final)."""
        def seen():
            hits = [line for line in self.lines() if text in line]
            if len(hits) >= count:
                return hits[-1]
            if not self.alive():
                hits = [line for line in self.lines() if text in line]
                if len(hits) >= count:
                    return hits[-1]
                raise AssertionError("%s exited (rc %r) after %d of %d lines containing %r"
                                     % (self.name, self.returncode, len(hits), count, text))
            return None
        return wait_until(seen, timeout, "%d line(s) containing %r in %s's log"
                          % (count, text, self.name))

    def wait_exit(self, timeout=STOP_GRACE):
        """Waits for the process to exit; returns its exit status (negative: killed by a signal)."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Timeout("%s (pid %d) still running %.0f s later" % (self.name, self.pid, timeout))
        self._reaped()
        return rc

    # -- signals
    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self):
        """SIGKILL and reap."""
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self._reaped()

    def stop(self, grace=STOP_GRACE):
        """SIGTERM, then SIGKILL if still running after grace seconds. Returns the exit status."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait()
        self._reaped()
        return self.popen.returncode

    def _reaped(self):
        if self.popen.returncode is not None:
            _live.pop(self.pid, None)
            if not self._log.closed:
                self._log.close()


def _sweep():
    """Stops whatever is still running, removes the root unless a test failed (or
    CRAWLAB_IT_KEEP is set). Run by main() and again at exit."""
    global _root
    for p in list(_live.values()):
        try:
            p.stop(grace=3)
        except Exception:
            pass
    if _root and os.path.isdir(_root):
        if _keep_root or os.environ.get("CRAWLAB_IT_KEEP"):
            print("integration: test files kept in %s" % _root, flush=True)
        else:
            shutil.rmtree(_root, ignore_errors=True)
        _root = None


atexit.register(_sweep)


def _on_term(signum, frame):
    # meson's timeout: stop the whole run (unittest lets KeyboardInterrupt through, unlike
    # SystemExit); main() and atexit stop every process left
    raise KeyboardInterrupt("signal %d" % signum)


signal.signal(signal.SIGTERM, _on_term)


def root_dir():
    global _root
    if _root is None:
        _root = tempfile.mkdtemp(prefix="crawlab-it-")
    return _root


# ---------------------------------------------------------------------------------------------
# a cluster: one master (restartable) and any number of workers, all in one directory


# Where masters keep their rows: "sqlite" (the default: the data dir) or "postgres"
# (CRAWLAB_IT_STORE=postgres: one server for the whole run, started by pg.py on first use, and a
# database per master data dir, so that a restarted master finds its rows again).
STORE = os.environ.get("CRAWLAB_IT_STORE", "sqlite")
_pg = None
_clusters = itertools.count(1)  # each Cluster's serial number


def on_postgres():
    return STORE == "postgres"


def pg_server():
    """The run's PostgreSQL server (tests/integration/pg.py), started on first use."""
    global _pg
    if _pg is None:
        import pg  # noqa: E402 (pg imports this module)
        _pg = pg.Server.start()
    return _pg


def pg_store_uri(key):
    """The --store URI of a database of its own for key (a data dir, say), made on first use."""
    import hashlib
    name = "crawlab_" + hashlib.sha1(key.encode()).hexdigest()[:16]
    server = pg_server()
    if name not in getattr(server, "made", set()):
        server.createdb(name)
        server.made = getattr(server, "made", set()) | {name}
    return "postgres://crawlab@127.0.0.1:%d/%s" % (server.port, name)


def store_rows(cluster, sql, args=()):
    """Rows of a read-only query on a cluster's master store (white-box: the schema both stores
    share), as tuples: SQLite's values, or on PostgreSQL integers where a column reads as one and
    text otherwise. sql takes '?' placeholders; args are ints or strings."""
    if not on_postgres():
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(cluster.master_dir, "crawlab.db"),
                             uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()
    return pg_rows(cluster.store_uri(), sql, args)


def pg_rows(uri, sql, args=()):
    """store_rows on the PostgreSQL database of a --store URI."""
    parts = sql.split("?")
    assert len(parts) == len(args) + 1, sql
    literal = [str(a) if isinstance(a, int) else "'%s'" % str(a).replace("'", "''")
               for a in args]
    text = parts[0] + "".join(v + p for v, p in zip(literal, parts[1:]))
    out = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-A", "-t", "-F", "\t",
                          "-v", "ON_ERROR_STOP=1", "-d", uri, "-c", text],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=CLI_TIMEOUT)
    if out.returncode != 0:
        raise AssertionError("psql %r: %s" % (text, out.stderr))
    rows = []
    for line in out.stdout.splitlines():
        rows.append(tuple(int(v) if v.lstrip("-").isdigit() else v for v in line.split("\t")))
    return rows


def sqlite_only(test):
    """For a test about SQLite's own files: skipped when the masters keep their rows in
    PostgreSQL."""
    return unittest.skipIf(on_postgres(), "reads SQLite's files")(test)


# What a worker in cgroup containment logs at start, before its cgroup directory.
CGROUP_LOG = "tasks run in cgroups under "


class Cluster:
    def __init__(self, workdir, binary=None):
        self.dir = workdir
        self.serial = next(_clusters)
        os.makedirs(self.dir, exist_ok=True)
        self.bin = binary or BIN
        self.procs = []
        self.master = None
        self.port = None
        self.master_dir = os.path.join(self.dir, "master")
        self.heartbeat = "1s"
        # the longest pause of a worker's breaker (30 s by default): a worker cut off for several
        # seconds comes back within 2 s of its master, not after up to 30 (the policy itself is
        # tests/unit/test_retry.c's)
        self.reconnect_max = "2s"
        self._names = {}
        # options every client command of cli()/spawn_cli() also gets (TLS flags, say)
        self.cli_args = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def store_uri(self):
        """With CRAWLAB_IT_STORE=postgres: this cluster's master's database, its own even when
        another cluster had the same directory before (two test classes, one method name)."""
        return pg_store_uri("%d:%s" % (self.serial, self.master_dir))

    @property
    def master_addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def key_file(self):
        """The node key the master generated: what workers present."""
        return os.path.join(self.master_dir, "auth.key")

    @property
    def admin_key_file(self):
        """The admin key the master generated: what client commands present."""
        return os.path.join(self.master_dir, "admin.key")

    def _log_path(self, name):
        n = self._names.get(name, 0) + 1
        self._names[name] = n
        return self.path("%s.log" % name if n == 1 else "%s.%d.log" % (name, n))

    def spawn(self, name, argv, cwd=None, env=None):
        """Starts any command (argv[0] included) as a tracked Proc logging to <dir>/<name>.log."""
        p = Proc(name, argv, self._log_path(name), cwd=cwd or self.dir, env=env)
        self.procs.append(p)
        return p

    def start_master(self, port=None, data_dir=None, extra=(), wait=True, name="master",
                     prefix=()):
        """Starts the master (on a fresh port unless port is given) and, with wait, waits until
        it listens. Restarting with the same port and data_dir reuses them."""
        fresh = not (port or self.port)
        self.port = port or self.port or free_port()
        if data_dir:
            self.master_dir = data_dir
        for attempt in range(3):
            argv = list(prefix) + [self.bin, "--role=master", "--listen=%s" % self.master_addr,
                                   "--data-dir=%s" % self.master_dir,
                                   "--heartbeat-interval=%s" % self.heartbeat] + list(extra)
            if on_postgres() and not any(a.startswith("--store=") for a in extra):
                argv.append("--store=" + self.store_uri())
            self.master = self.spawn(name, argv)
            if not wait:
                break
            wait_until(lambda: self.master.count("master listening on") or
                       not self.master.alive(), what="%s to listen" % name)
            if self.master.count("master listening on"):
                break
            # another test took the port between free_port() and the bind: pick another one
            if not (fresh and self.master.count("Address already in use")):
                self.master.wait_log("master listening on")  # fails with the exit status
            self.port = free_port()
        else:
            raise AssertionError("%s: no free port after 3 attempts" % name)
        return self.master

    def start_worker(self, name, data_dir=None, node_name=None, key_file=None, extra=(),
                     prefix=(), master_addr=None):
        """Starts a worker named name (node name too, unless node_name is given) with its own
        data dir <dir>/<name> unless data_dir is given. Does not wait for registration.
        master_addr (host:port) makes it dial something else than the master, a proxy say."""
        data_dir = data_dir or self.path(name)
        argv = list(prefix) + [self.bin, "--role=worker",
                               "--master=%s" % (master_addr or self.master_addr),
                               "--data-dir=%s" % data_dir,
                               "--auth-key-file=%s" % (key_file or self.key_file),
                               "--node-name=%s" % (node_name or name),
                               "--heartbeat-interval=%s" % self.heartbeat,
                               "--reconnect-max=%s" % self.reconnect_max,
                               # under the 10 s a stop waits before SIGKILL: a task still
                               # running at the end of a test is stopped by its worker, not
                               # orphaned by a worker killed while it waited for the task
                               "--shutdown-grace=%s" % WORKER_SHUTDOWN_GRACE] + list(extra)
        p = self.spawn(name, argv)
        p.data_dir = data_dir
        return p

    def run_cli(self, *args, **kw):
        """run_cli with this cluster's binary: (rc, stdout, stderr)."""
        kw.setdefault("cwd", self.dir)
        return run_cli(*args, binary=self.bin, **kw)

    def cli(self, command, *args, **kw):
        """`crawlab-node COMMAND --master=<this master> --admin-key-file=<its admin key>
        ARGS...`."""
        return self.run_cli(command, "--master=%s" % self.master_addr,
                            "--admin-key-file=%s" % self.admin_key_file, *self.cli_args, *args,
                            **kw)

    def spawn_cli(self, name, command, *args):
        """A long-running client command (logs --follow, ...) as a tracked Proc."""
        return self.spawn(name, [self.bin, command, "--master=%s" % self.master_addr,
                                 "--admin-key-file=%s" % self.admin_key_file] +
                          list(self.cli_args) +
                          [str(a) for a in args])

    def nodes(self):
        """The `nodes --json` list, or None when the command fails (master down, key refused)."""
        rc, out, err = self.cli("nodes", "--json")
        if rc != 0:
            return None
        return json.loads(out)

    def wait_nodes(self, pred, timeout=WAIT, what=None):
        """Polls `nodes --json` until pred(list) is true; returns the list."""
        def check():
            ns = self.nodes()
            return ns if ns is not None and pred(ns) else None
        return wait_until(check, timeout, what or "the node list to satisfy a condition")

    def wait_status(self, status, timeout=WAIT, keys=(), names=()):
        """Waits until every node given by key or name shows status; returns the list."""
        def ok(ns):
            return all(status_of(ns, key=k) == status for k in keys) and \
                all(status_of(ns, name=n) == status for n in names)
        return self.wait_nodes(ok, timeout, "%s to be %s" % (", ".join(list(keys) + list(names)),
                                                             status))

    def stop_all(self):
        """Stops every process this cluster started, newest first, by pid; then removes the
        cgroups of its workers that a kill left behind."""
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                print("integration: stopping %s: %s" % (p.name, e), file=sys.stderr)
        self.remove_worker_cgroups()

    def remove_worker_cgroups(self):
        """A worker removes its cgroup directory (named in its log) when it stops; one killed
        leaves it, empty, under the cgroup root. Only stopped workers' directories are touched,
        and only what is empty goes."""
        dirs = set()
        for p in self.procs:
            if p.popen.returncode is None or "--role=worker" not in p.argv:
                continue
            try:
                with open(p.log_path, errors="replace") as f:
                    for line in f:
                        at = line.find(CGROUP_LOG)
                        if at >= 0:
                            dirs.add(line[at + len(CGROUP_LOG):].split(",")[0].strip())
            except OSError:
                pass
        for d in dirs:
            try:
                for name in os.listdir(d):
                    if os.path.isdir(os.path.join(d, name)):
                        os.rmdir(os.path.join(d, name))
                os.rmdir(d)
            except OSError:
                pass  # busy, or gone: nothing of ours to clean

    def dump(self, out=sys.stderr):
        print("---- files kept in %s" % self.dir, file=out)
        for p in self.procs:
            print("---- %s (pid %d, rc %r): %s" % (p.name, p.pid, p.popen.returncode,
                                                  " ".join(p.argv)), file=out)
            for line in p.tail():
                print("  | " + line, file=out)


def read_key(path):
    with open(path) as f:
        return f.read().strip()


# ---------------------------------------------------------------------------------------------
# processes seen through /proc: CPU time, process groups


def proc_stat(pid):
    """(command name, fields after it) of /proc/<pid>/stat. fields[0] is field 3 of proc(5)
    (state); [1] ppid, [2] process group, [11] utime, [12] stime, [13] cutime, [14] cstime."""
    with open("/proc/%s/stat" % pid) as f:
        stat = f.read()
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def proc_stats():
    """[(pid, command name, fields)] of every process now (see proc_stat); those that vanish
    while being read are left out."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            name, fields = proc_stat(d)
        except OSError:
            continue
        out.append((int(d), name, fields))
    return out


def cpu_seconds(pid):
    """utime + stime of pid (seconds of CPU it used so far)."""
    fields = proc_stat(pid)[1]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    """Resident set size of pid in MiB (VmRSS of /proc/<pid>/status)."""
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS in /proc/%s/status" % pid)


def group_members(pgid):
    """[(pid, state)] of the processes whose process group is pgid (zombies included)."""
    return [(pid, fields[0]) for pid, _, fields in proc_stats() if int(fields[2]) == pgid]


def group_gone(pgid):
    """True when no process is left in process group pgid."""
    try:
        os.kill(-pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def kill_group(pgid):
    """SIGKILL to process group pgid, if it still exists (cleanup of tasks a test left behind,
    by their group id: the group is the task's, created by the worker for it)."""
    if pgid and pgid > 1:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def task_history(cluster):
    """{task id: [(from, to), ...]} from a cluster's master store, read-only (white-box: the
    history table both stores share). None if it cannot be read."""
    try:
        rows = store_rows(cluster, "SELECT task_id, from_status, to_status FROM task_history"
                          " ORDER BY seq")
    except Exception:  # noqa: BLE001 (no database, no table: unreadable)
        return None
    out = {}
    for tid, a, b in rows:
        out.setdefault(tid, []).append((a, b))
    return out


# ---------------------------------------------------------------------------------------------
# tasks through the client commands (a mixin for ClusterTest subclasses)

FINAL_STATUSES = ("finished", "error", "cancelled", "abnormal")


class TaskOps:
    """submit / tasks / logs / results / waits on task status, for a ClusterTest (self.c)."""

    def script(self, name, text):
        """Writes a helper script into this test's directory; returns its path."""
        path = self.c.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def submit(self, *args):
        """`submit ARGS` -> the task ids it printed."""
        rc, out, err = self.c.cli("submit", *args)
        self.assertEqual(rc, 0, "submit %r: rc %d, stderr %r" % (args, rc, err))
        ids = out.split()
        self.assertTrue(ids, "submit %r printed no task id (stderr %r)" % (args, err))
        for i in ids:
            self.assertRegex(i, r"^[0-9a-f]{24}$")
        return ids

    def submit1(self, *args):
        ids = self.submit(*args)
        self.assertEqual(len(ids), 1, ids)
        return ids[0]

    def submit_each(self, arg_lists, at_once=4):
        """submit1 of each argument list, at_once of them running at a time (the master takes
        concurrent submissions; a test that submits many is not held up by one client at a
        time); the ids in the lists' order."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=at_once) as pool:
            return list(pool.map(lambda args: self.submit1(*args), arg_lists))

    def read_long_log_across_a_stop(self, m, follow=False, tls=None):
        """A task prints 2.5 MB of log and ends; a raw client of master m (started with
        --shutdown-grace=1h, a worker online; over TLS with the ssl context tls) reads it
        (following it, with follow), holding the answer back at 64 KiB (its HTTP/2 window) until
        m got SIGTERM, then reads on. Its 32 KiB receive buffer leaves the rest in the master's
        kernel. Asserts that every line and the last chunk came, and that m exited 0 without
        cancelling anything."""
        lines = 25000
        tid = self.submit1("--", "awk", "BEGIN { for (i = 1; i <= %d; i++) printf "
                           "\"line %%05d %%090d\\n\", i, 0 }" % lines)
        self.wait_tasks([tid], lambda t: t["status"] == "finished" and t["log_lines"] == lines,
                        30, "task %s to finish with its %d lines stored" % (tid, lines))
        conn = h2raw.H2Conn(("127.0.0.1", self.c.port), tls, "localhost", rcvbuf=32768)
        self.addCleanup(conn.close)
        conn.give_window = False
        sid = conn.open_stream("/grpc.AdminService/ReadLogs",
                               [("authorization", read_key(self.c.admin_key_file))])
        request = h2raw.pb_string(1, tid) + (h2raw.pb_varint(3, 1) if follow else b"")
        conn.send_message(sid, request, end=True)
        wait_until(lambda: conn.replies.get(sid), timeout=WAIT, what="the first bytes of the log")
        m.signal(signal.SIGTERM)
        m.wait_log("calls in flight have up to 3600 s to finish")
        conn.open_window(sid, 1 << 24)
        self.assertTrue(conn.ended[sid].wait(WAIT), "the answer was cut")
        data, got, done = conn.replies.pop(sid, b""), 0, False
        while len(data) >= 5:
            n = struct.unpack(">I", data[1:5])[0]
            chunk = h2raw.pb_fields(data[5:5 + n])
            got += len(chunk.get(1, []))
            done = chunk.get(2, [0])[0] == 1
            data = data[5 + n:]
        self.assertEqual(got, lines)
        self.assertTrue(done, "the last chunk does not say done")
        self.assertEqual(m.wait_exit(timeout=30), 0, m.tail())
        self.assertEqual(m.count("calls still open"), 0, m.tail())

    def tasks(self):
        """`tasks --json` as {id: task}; fails the test when the command fails."""
        rc, out, err = self.c.cli("tasks", "--json")
        self.assertEqual(rc, 0, err)
        return {t["id"]: t for t in json.loads(out)}

    def tasks_or_none(self):
        """`tasks --json` as {id: task}, or None when the master cannot answer (it is down)."""
        rc, out, err = self.c.cli("tasks", "--json")
        if rc != 0:
            return None
        return {t["id"]: t for t in json.loads(out)}

    def task(self, task_id):
        return self.tasks()[task_id]

    def wait_tasks(self, ids, pred, timeout=WAIT, what="the tasks"):
        """Polls `tasks --json` until pred(task) holds for every id; returns {id: task}.
        A moment where the master does not answer is polled through."""
        ids = list(ids)
        last = {}

        def check():
            ts = self.tasks_or_none()
            if ts is None:
                return None
            last["ts"] = ts
            sel = {i: ts.get(i) for i in ids}
            if all(t is not None and pred(t) for t in sel.values()):
                return sel
            return None
        try:
            return wait_until(check, timeout, what)
        except Timeout:
            ts = last.get("ts", {})
            counts = collections.Counter(ts[i]["status"] if i in ts else "missing" for i in ids)
            stuck = ["%s %s %r %r" % (i, ts[i]["status"], ts[i]["cmd"], ts[i]["error"]) if i in ts
                     else i + " missing" for i in ids if i not in ts or not pred(ts[i])]
            raise Timeout("timed out after %.0f s waiting for %s; statuses now: %s; not there yet: "
                          "%s" % (timeout, what, dict(counts), "; ".join(stuck[:8])))

    def wait_final(self, ids, timeout=WAIT):
        return self.wait_tasks(ids, lambda t: t["status"] in FINAL_STATUSES, timeout,
                               "%d task(s) to end" % len(list(ids)))

    def wait_task_status(self, task_id, status, timeout=WAIT):
        return self.wait_tasks([task_id], lambda t: t["status"] == status, timeout,
                               "task %s to be %s" % (task_id, status))[task_id]

    def logs(self, task_id):
        """The stored log lines of a task."""
        rc, out, err = self.c.cli("logs", task_id, timeout=120)
        self.assertEqual(rc, 0, err)
        return out.splitlines()

    def results(self, task_id):
        """The stored items of a task, parsed."""
        rc, out, err = self.c.cli("results", task_id, timeout=120)
        self.assertEqual(rc, 0, err)
        return [json.loads(line) for line in out.splitlines()]

    def streamer(self):
        """Writes the streaming task program (STREAMER_PY) into the test's directory; returns
        (argv prefix to submit, its --ran file, its --totals dir)."""
        prog = self.script("streamer.py", STREAMER_PY)
        ran = self.c.path("ran.txt")
        totals = self.c.path("totals")
        os.makedirs(totals, exist_ok=True)
        return ["/usr/bin/python3", prog, "--ran", ran, "--totals", totals], ran, totals

    def check_output(self, tid, totals_dir, t=None):
        """[problems] of streamer task tid's stored output against what it printed: every line
        and item exactly once and in order, and the task's counters equal to them."""
        tot = read_totals(totals_dir, tid)
        if tot is None:
            return ["task %s wrote no totals (it did not end by itself)" % tid]
        want_lines, want_items = streamer_expected(tid, tot)
        got_lines, got_items = self.logs(tid), self.results(tid)
        problems = []
        if got_lines != want_lines:
            problems.append("task %s: logs differ: %s" % (tid, diff_summary(got_lines,
                                                                              want_lines)))
        if got_items != want_items:
            problems.append("task %s: results differ: %s" % (tid, diff_summary(got_items,
                                                                                 want_items)))
        t = t or self.task(tid)
        if (t["log_lines"], t["data_items"]) != (tot["lines"], tot["items"]):
            problems.append("task %s: log_lines, data_items = %r, printed %r"
                            % (tid, (t["log_lines"], t["data_items"]),
                               (tot["lines"], tot["items"])))
        return problems

    def kill_runs(self, ran_file, task_id=None):
        """Cleanup: SIGKILL the process group of every run (of task_id) in a --ran file. The pid
        recorded there is the task program's, which may be a child of the task's shell: its
        group is looked up (and never taken to be ours)."""
        for tid, node, pid in read_runs(ran_file):
            if task_id is None or tid == task_id:
                try:
                    pgid = os.getpgid(pid)
                except ProcessLookupError:
                    continue
                if pgid != os.getpgrp():
                    kill_group(pgid)


# ---------------------------------------------------------------------------------------------
# unittest glue: a TestCase with a cluster per test, a runner printing "N passed, N failed"


class ClusterTest(unittest.TestCase):
    timeout = TEST_TIMEOUT

    def setUp(self):
        self.c = Cluster(os.path.join(root_dir(), self.id().split(".")[-1]))
        self.addCleanup(self.c.stop_all)
        signal.signal(signal.SIGALRM, self._alarm)
        signal.alarm(self.timeout)
        self.addCleanup(signal.alarm, 0)

    def _alarm(self, signum, frame):
        raise Timeout("test still running after %d s" % self.timeout)


class _Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n_passed = 0
        self.n_failed = 0
        self.n_skipped = 0
        self._bad = set()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._bad.add(test.id())

    def addError(self, test, err):
        super().addError(test, err)
        self._bad.add(test.id())

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._bad.add(test.id())

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._bad.discard(test.id())
        self.n_skipped += 1

    def stopTest(self, test):
        global _keep_root
        super().stopTest(test)
        c = getattr(test, "c", None)
        skipped = any(t is test for t, _ in self.skipped)
        if test.id() in self._bad:
            self.n_failed += 1
            _keep_root = True
            if c is not None:
                self.stream.flush()
                c.dump(sys.stderr)
        elif not skipped:
            self.n_passed += 1
        if c is not None and test.id() not in self._bad and not os.environ.get("CRAWLAB_IT_KEEP"):
            shutil.rmtree(c.dir, ignore_errors=True)


def main():
    """Runs the TestCases of __main__; prints `N passed, N failed` last. Exit 0 when all passed,
    77 (meson's skip) when every test was skipped, 1 otherwise."""
    global _keep_root
    if not os.access(BIN, os.X_OK):
        print("integration: no executable at %s (set CRAWLAB_NODE_BIN)" % BIN, file=sys.stderr)
        print("0 passed, 1 failed")
        sys.exit(1)
    argv = sys.argv[1:]
    loader = unittest.TestLoader()
    if argv:
        suite = loader.loadTestsFromNames(argv, sys.modules["__main__"])
    else:
        suite = loader.loadTestsFromModule(sys.modules["__main__"])
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=_Result)
    try:
        result = runner.run(suite)
    except KeyboardInterrupt as e:
        _keep_root = True
        _sweep()
        print("integration: interrupted (%s)" % (e or "SIGINT"))
        print("0 passed, 1 failed")
        sys.exit(1)
    _sweep()  # before the summary, so that the summary stays the last line
    sys.stderr.flush()
    if result.n_skipped:
        for test, reason in result.skipped:
            print("skipped %s: %s" % (test.id(), reason))
    print("%d passed, %d failed" % (result.n_passed, result.n_failed))
    sys.stdout.flush()
    if result.n_failed:
        sys.exit(1)
    if result.n_passed == 0 and result.n_skipped:
        sys.exit(77)
    sys.exit(0)


# ---------------------------------------------------------------------------------------------
# a task that streams numbered output, for exactly-once checks under faults

STREAMER_PY = r'''
"""Task program: prints numbered log lines "<task id> line <n>" and result items
{"task": <task id>, "n": <m>} in batches; appends "<task id> <node key> <pid>" to --ran on start;
writes {"lines": L, "items": I} to --totals/<task id>.json on the way out (also on SIGTERM), L and
I being what it printed and flushed. --lines N prints N lines; --gate FILE prints until FILE exists
(or --max-seconds pass), then one more batch."""
import argparse, json, os, signal, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--ran", required=True)
ap.add_argument("--totals", required=True)
ap.add_argument("--lines", type=int, default=0)
ap.add_argument("--gate")
ap.add_argument("--batch", type=int, default=100)
ap.add_argument("--items-every", type=int, default=100)
ap.add_argument("--pace", type=float, default=0.05)
ap.add_argument("--max-seconds", type=float, default=120.0)
a = ap.parse_args()

tid = os.environ["CRAWLAB_TASK_ID"]
node = os.environ.get("CRAWLAB_NODE_KEY", "-")
fd = os.open(a.ran, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, ("%s %s %d\n" % (tid, node, os.getpid())).encode())
os.close(fd)

state = {"lines": 0, "items": 0, "term": False}
signal.signal(signal.SIGTERM, lambda s, f: state.__setitem__("term", True))


def totals():
    path = os.path.join(a.totals, tid + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump({"lines": state["lines"], "items": state["items"]}, f)
    os.rename(path + ".tmp", path)


def batch(n):
    out = []
    lines, items = state["lines"], state["items"]
    for _ in range(n):
        lines += 1
        out.append("%s line %d" % (tid, lines))
        if a.items_every and lines % a.items_every == 0:
            items += 1
            out.append(json.dumps({"type": "data", "payload": {"task": tid, "n": items},
                                   "ipc": True}, separators=(",", ":")))
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()
    state["lines"], state["items"] = lines, items


end = time.monotonic() + a.max_seconds
while not state["term"]:
    if a.gate:
        if os.path.exists(a.gate) or time.monotonic() > end:
            batch(a.batch)
            break
        batch(a.batch)
    else:
        left = a.lines - state["lines"]
        if left <= 0:
            break
        batch(min(a.batch, left))
        if state["lines"] >= a.lines:
            break
    if state["term"]:
        break
    time.sleep(a.pace)
totals()
sys.exit(143 if state["term"] else 0)
'''


def streamer_expected(task_id, totals):
    """The log lines and items a streamer task with these totals printed, in order."""
    lines = ["%s line %d" % (task_id, n) for n in range(1, totals["lines"] + 1)]
    items = [{"task": task_id, "n": n} for n in range(1, totals["items"] + 1)]
    return lines, items


def read_totals(totals_dir, task_id):
    """The totals a streamer task wrote on its way out, or None if it wrote none (killed)."""
    try:
        with open(os.path.join(totals_dir, task_id + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def diff_summary(got, want):
    """Where two sequences part: lengths, first difference, duplicates."""
    n = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    seen, dups = set(), 0
    for g in got:
        k = g if isinstance(g, str) else json.dumps(g, sort_keys=True)
        dups += k in seen
        seen.add(k)
    return ("%d stored, %d printed, first difference at index %d (stored %r, printed %r), "
            "%d duplicates" % (len(got), len(want), n, got[n] if n < len(got) else None,
                               want[n] if n < len(want) else None, dups))


def read_runs(ran_file):
    """[(task id, node key, pid)] from a --ran file, in the order the tasks started."""
    try:
        with open(ran_file) as f:
            rows = [line.split() for line in f.read().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    return [(r[0], r[1], int(r[2])) for r in rows if len(r) == 3]
