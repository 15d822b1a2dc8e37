#!/usr/bin/python3
"""Tasks end to end: submit, dispatch, run, output (logs and result items), cancel, timeout,
priorities, node addressing; a real master and workers on 127.0.0.1.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_tasks.py"""

import base64
import collections
import json
import os
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import find_node, wait_until  # noqa: E402

REGISTERED = "registered with the master"
MIB = 1 << 20


def item_line(payload):
    """The stdout line that makes payload (an object or an array of objects) a result."""
    return json.dumps({"type": "data", "payload": payload, "ipc": True}, separators=(",", ":"))


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


class Tasks(harness.ClusterTest, harness.TaskOps):

    # ---- helpers

    def start_cluster(self, n, extra=(), wait_online=True):
        """A master and n workers w1..wn (all online); returns [keys] in worker order."""
        self.c.start_master()
        workers = [self.c.start_worker("w%d" % i, extra=list(extra)) for i in range(1, n + 1)]
        return self.online_keys(workers) if wait_online else []

    def online_keys(self, workers):
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers])
        return [find_node(ns, name=w.name)["key"] for w in workers]

    def cli_bytes(self, command, *args, timeout=harness.CLI_TIMEOUT):
        """Like c.cli but returns (rc, stdout bytes, stderr text): no decoding on our side, so
        that what the binary wrote is checked byte for byte."""
        argv = [self.c.bin, command, "--master=%s" % self.c.master_addr,
                "--admin-key-file=%s" % self.c.admin_key_file] + [str(a) for a in args]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, cwd=self.c.dir)
        except subprocess.TimeoutExpired:
            raise harness.Timeout("%s did not finish within %.0f s" % (" ".join(argv), timeout))
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")

    # ---- 1: many tasks, exactly once, exact output

    def test_200_tasks_over_3_workers_all_finish_once_with_exact_output(self):
        keys = self.start_cluster(3)
        ran = self.c.path("ran.txt")
        # task i: K = 1 + i%5 numbered stdout lines, one stderr line, M = i%4 items (one as a
        # single object, the rest as one array), interleaved with the log lines
        prog = self.script("task.sh", r"""
i=$1
echo "$CRAWLAB_TASK_ID" >> %(ran)s
echo "task $i on stderr" >&2
k=$((1 + i %% 5)); m=$((i %% 4))
j=1
while [ $j -le $k ]; do
  echo "task $i line $j of $k"
  if [ $j -eq 1 ] && [ $m -ge 1 ]; then
    echo '{"type":"data","payload":{"i":'$i',"n":1},"ipc":true}'
  fi
  j=$((j + 1))
done
if [ $m -ge 2 ]; then
  arr='{"i":'$i',"n":2}'
  n=3
  while [ $n -le $m ]; do arr="$arr"',{"i":'$i',"n":'$n'}'; n=$((n + 1)); done
  echo '{"type":"data","payload":['"$arr"'],"ipc":true}'
fi
""" % {"ran": sh_quote(ran)})
        n_tasks = 200
        ids = self.submit_each([("--name=bulk-%d" % i, "--", "sh", prog, str(i))
                                for i in range(n_tasks)])
        index = {tid: i for i, tid in enumerate(ids)}  # task id -> i
        self.assertEqual(len(index), n_tasks)
        ts = self.wait_final(index, timeout=60)

        def want_lines(i):
            k = 1 + i % 5
            return ["task %d line %d of %d" % (i, j, k) for j in range(1, k + 1)]

        def want_items(i):
            return [{"i": i, "n": n} for n in range(1, i % 4 + 1)]

        bad = []
        for tid, t in ts.items():
            i = index[tid]
            got = (t["status"], t["exit_code"], t["log_lines"], t["data_items"], t["name"])
            want = ("finished", 0, len(want_lines(i)) + 1, len(want_items(i)), "bulk-%d" % i)
            if got != want:
                bad.append("task %d %s: (status, exit, log_lines, data_items, name) %r, want %r"
                           % (i, tid, got, want))
            if t["assigned_node"] not in keys:
                bad.append("task %d %s ran on unknown node %r" % (i, tid, t["assigned_node"]))
        self.assertEqual(bad, [], "%d of %d tasks wrong:\n%s"
                         % (len(bad), n_tasks, "\n".join(bad[:20])))

        # exactly once: every id appended once to the shared file
        with open(ran) as f:
            runs = f.read().split()
        dup = [i for i, n in collections.Counter(runs).items() if n != 1]
        self.assertEqual(dup, [], "task ids run more than once")
        self.assertEqual(sorted(runs), sorted(index), "ran.txt vs submitted ids")

        # read back a sample exactly (every i%20 covers each K and M combination)
        sample = sorted(index, key=index.get)[::20]
        for tid in sample:
            i = index[tid]
            lines = self.logs(tid)
            self.assertIn("task %d on stderr" % i, lines, tid)
            lines.remove("task %d on stderr" % i)  # stderr's order against stdout is free
            self.assertEqual(lines, want_lines(i), "logs of task %d (%s)" % (i, tid))
            self.assertEqual(self.results(tid), want_items(i), "results of task %d (%s)" % (i, tid))

    # ---- 2: long lines and invalid UTF-8

    def test_3mib_line_is_split_into_1mib_pieces_and_invalid_utf8_becomes_u_fffd(self):
        self.start_cluster(1)
        long_a = base64.b64encode(os.urandom(3 * MIB))[:3 * MIB + 1000]  # ASCII, no newline
        long_b = base64.b64encode(os.urandom(3 * MIB))[:3 * MIB]         # exactly 3 MiB
        bad = b"bad:\xff|\xfe|\x80|\xc3(|\xe2\x82|end"
        bad_want = "bad:\ufffd|\ufffd|\ufffd|\ufffd(|\ufffd|end".encode()
        blob = self.c.path("out.bin")
        with open(blob, "wb") as f:
            f.write(b"before\n" + long_a + b"\n" + bad + b"\n" + long_b + b"\nafter\n")
        tid = self.submit1("--", "cat", blob)
        t = self.wait_final([tid], timeout=60)[tid]
        self.assertEqual((t["status"], t["exit_code"]), ("finished", 0), t)

        def pieces(line):
            return [line[k:k + MIB] for k in range(0, len(line), MIB)]
        want = [b"before"] + pieces(long_a) + [bad_want] + pieces(long_b) + [b"after"]
        self.assertEqual(len(pieces(long_a)), 4)
        self.assertEqual(len(pieces(long_b)), 3)
        self.assertEqual(t["log_lines"], len(want), t)

        rc, out, err = self.cli_bytes("logs", tid)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith(b"\n"), out[-100:])
        got = out[:-1].split(b"\n")
        self.assertEqual([len(x) for x in got], [len(x) for x in want], "piece lengths")
        self.assertEqual(got[0], b"before")
        self.assertEqual(b"".join(got[1:5]), long_a, "concatenation of the first long line")
        self.assertEqual(got[5], bad_want)
        self.assertEqual(b"".join(got[6:9]), long_b, "concatenation of the 3 MiB line")
        self.assertEqual(got[9], b"after")
        self.assertTrue(all(p == w for p, w in zip(got, want)))

    # ---- 3: trailing output

    def test_nul_is_u_fffd_in_logs_and_stays_escaped_in_results(self):
        self.start_cluster(1)
        blob = self.c.path("nul.bin")
        with open(blob, "wb") as f:
            f.write(b"x\x00y\n"
                    b'{"type":"data","ipc":true,"payload":{"t":"a\\u0000b"}}\n'
                    b'{"type":"data","ipc":true,"payload":{"t":"c\x00d"}}\n'
                    b'{"type":"data","ipc":true,"payload":{"k\\u0000":1}}\n')
        tid = self.submit1("--", "cat", blob)
        t = self.wait_final([tid])[tid]
        self.assertEqual((t["status"], t["log_lines"], t["data_items"]), ("finished", 2, 2), t)
        # A NUL byte of the output is replaced like invalid UTF-8; an SDK line with \u0000 in an
        # object key (jansson cannot hold one there) stays a log line.
        rc, out, err = self.cli_bytes("logs", tid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"x\xef\xbf\xbdy\n"
                              b'{"type":"data","ipc":true,"payload":{"k\\u0000":1}}\n')
        # \u0000 in an item's string is valid JSON: kept, escaped. A raw NUL byte in an SDK line
        # is U+FFFD before the line is parsed.
        rc, out, err = self.cli_bytes("results", tid)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b'{"t":"a\\u0000b"}\n{"t":"c\xef\xbf\xbdd"}\n')

    def cli_on_terminal(self, command, *args, timeout=harness.CLI_TIMEOUT):
        """Runs a client command with stdout on a pseudo-terminal; returns (rc, bytes shown)."""
        argv = [self.c.bin, command, "--master=%s" % self.c.master_addr,
                "--admin-key-file=%s" % self.c.admin_key_file] + [str(a) for a in args]
        master_fd, slave_fd = os.openpty()
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave_fd,
                                 stderr=subprocess.DEVNULL, cwd=self.c.dir)
            os.close(slave_fd)
            slave_fd = -1
            shown = bytearray()
            deadline = time.monotonic() + timeout
            while True:  # EIO once the command exited and the terminal has nothing left
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([master_fd], [], [], left)[0]:
                    p.kill()
                    p.wait()
                    raise harness.Timeout("%s did not finish within %.0f s" % (command, timeout))
                try:
                    chunk = os.read(master_fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
            return p.wait(timeout=timeout), bytes(shown)
        finally:
            if slave_fd >= 0:
                os.close(slave_fd)
            os.close(master_fd)

    def test_logs_on_a_terminal_show_escape_sequences_instead_of_obeying_them(self):
        self.start_cluster(1)
        blob = self.c.path("escapes.bin")
        hostile = (b"\x1b]0;owned\x07\x1b[2J\x1b]52;c;ZWNobyBoaQ==\x1b\\"
                   b"\xc2\x9b2J\x7f\n"
                   b'{"type":"data","ipc":true,"payload":{"t":"\xc2\x9b1m"}}\n')
        with open(blob, "wb") as f:
            f.write(hostile)
        tid = self.submit1("--", "cat", blob)
        self.wait_final([tid])
        rc, shown = self.cli_on_terminal("logs", tid)
        self.assertEqual(rc, 0)
        # The terminal turns "\n" into "\r\n"; nothing that a terminal obeys reaches it.
        self.assertEqual(shown, b"^[]0;owned^G^[[2J^[]52;c;ZWNobyBoaQ==^[\\\\u009b2J^?\r\n")
        rc, shown = self.cli_on_terminal("results", tid)
        self.assertEqual((rc, shown), (0, b'{"t":"\\u009b1m"}\r\n'))
        # Into a pipe the bytes stay exact, for scripts.
        rc, out, err = self.cli_bytes("logs", tid)
        self.assertEqual((rc, out), (0, hostile.split(b"\n")[0] + b"\n"), err)

    def test_a_client_command_whose_output_cannot_be_written_fails_and_says_so(self):
        # A task id that never reached its reader is no success: with stdout on /dev/full the
        # submit exits 1 with the reason, though the master queued the task all the same.
        self.c.start_master()
        argv = [self.c.bin, "submit", "--master=%s" % self.c.master_addr,
                "--admin-key-file=%s" % self.c.admin_key_file, *self.c.cli_args, "--", "true"]
        with open("/dev/full", "wb") as full:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=full,
                               stderr=subprocess.PIPE, timeout=harness.CLI_TIMEOUT, cwd=self.c.dir)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("cannot write the output: No space left on device", err)
        self.assertEqual(len(self.tasks()), 1)

    def test_a_task_inherits_no_socket_of_its_worker(self):
        self.start_cluster(1)
        # ls lists the shell's descriptors from a process of its own, so its own directory
        # handle is not among them.
        tid = self.submit1("--", "sh", "-c", "ls -l /proc/$$/fd")
        self.assertEqual(self.wait_final([tid])[tid]["status"], "finished")
        lines = [l for l in self.logs(tid) if " -> " in l]
        self.assertTrue(lines, "the task listed no descriptor")
        self.assertEqual([l for l in lines if "socket:" in l], [], lines)
        # stdin (/dev/null), stdout and stderr (the output pipes), and nothing else of the worker
        fds = sorted(int(l.split(" -> ")[0].split()[-1]) for l in lines)
        self.assertEqual(fds, [0, 1, 2], lines)

    @harness.sqlite_only
    def test_the_database_and_logs_are_private_in_a_world_readable_data_dir(self):
        data = self.c.path("master-data")
        os.mkdir(data, 0o755)
        os.chmod(data, 0o755)
        self.c.start_master(data_dir=data)
        self.online_keys([self.c.start_worker("w1")])
        tid = self.submit1("--env=DB_PASSWORD=secret", "--", "echo", "hello")
        self.wait_final([tid])
        checked = []
        for root, dirs, files in os.walk(data):
            for name in files:
                if name.startswith("crawlab.db") or name.endswith(".log"):
                    mode = os.stat(os.path.join(root, name)).st_mode & 0o777
                    self.assertEqual(mode & 0o077, 0, "%s is %o" % (name, mode))
                    checked.append(name)
        self.assertIn("crawlab.db", checked)
        self.assertIn("crawlab.db-wal", checked)
        self.assertIn("%s.log" % tid, checked)

    def test_output_printed_right_before_exit_is_not_lost(self):
        self.start_cluster(1)
        last_item = item_line({"k": "last"})
        a = self.submit1("--", "printf", r"a\nb\nlast-without-newline")
        b = self.submit1("--", "sh", "-c", "echo log-first; echo %s" % sh_quote(last_item))
        c = self.submit1("--", "printf", "%s", item_line([{"k": "no-newline-1"},
                                                           {"k": "no-newline-2"}]))
        d = self.submit1("--", "sh", "-c", "echo %s; exit 4" % sh_quote(item_line({"k": "rc4"})))
        ts = self.wait_final([a, b, c, d])
        self.assertEqual(self.logs(a), ["a", "b", "last-without-newline"])
        self.assertEqual(ts[a]["log_lines"], 3)
        self.assertEqual(ts[a]["status"], "finished")
        problems = []
        for tid, want_logs, want_items, status in (
                (b, ["log-first"], [{"k": "last"}], "finished"),
                (c, [], [{"k": "no-newline-1"}, {"k": "no-newline-2"}], "finished"),
                (d, [], [{"k": "rc4"}], "error")):
            got = (ts[tid]["status"], self.logs(tid), self.results(tid), ts[tid]["data_items"])
            want = (status, want_logs, want_items, len(want_items))
            if got != want:
                problems.append("task %s (%s): (status, logs, results, data_items) %r, want %r"
                                % (tid, ts[tid]["cmd"], got, want))
        self.assertEqual(problems, [], "\n".join(problems))

    # ---- 4: max runners

    def test_max_runners_2_is_never_exceeded(self):
        self.c.start_master()
        self.online_keys([self.c.start_worker("w1", extra=["--max-runners=2"])])
        events = self.c.path("events.txt")
        # each task waits (bounded) until it sees another one running, so that two do overlap
        # when the worker runs two at once; then stays a moment so that a third would overlap too
        prog = self.script("interval.sh", r"""
f=%(f)s
echo "start $(date +%%s%%N) $CRAWLAB_TASK_ID" >> "$f"
n=0
while [ $n -lt 60 ]; do
  s=$(grep -c '^start' "$f"); e=$(grep -c '^end' "$f")
  [ $((s - e)) -ge 2 ] && break
  sleep 0.05; n=$((n + 1))
done
sleep 0.3
echo "end $(date +%%s%%N) $CRAWLAB_TASK_ID" >> "$f"
""" % {"f": sh_quote(events)})
        ids = [self.submit1("--", "sh", prog) for _ in range(8)]
        ts = self.wait_final(ids, timeout=60)
        self.assertEqual({t["status"] for t in ts.values()}, {"finished"}, ts)
        with open(events) as f:
            recs = [line.split() for line in f.read().splitlines()]
        starts = {r[2]: int(r[1]) for r in recs if r[0] == "start"}
        ends = {r[2]: int(r[1]) for r in recs if r[0] == "end"}
        self.assertEqual(sorted(starts), sorted(ids))
        self.assertEqual(sorted(ends), sorted(ids))
        self.assertEqual(len(recs), 16, recs)
        # sweep: at equal instants an end comes before a start (touching is not overlapping)
        ev = sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in ends.values()],
                    key=lambda e: (e[0], e[1]))
        cur = peak = 0
        for _, d in ev:
            cur += d
            peak = max(peak, cur)
        self.assertLessEqual(peak, 2, "more than 2 tasks ran at once: %r" % recs)
        self.assertEqual(peak, 2, "the worker never ran 2 tasks at once: %r" % recs)

    # ---- 5: priorities

    def test_priorities_order_dispatch(self):
        self.c.start_master()
        order = self.c.path("order.txt")
        ids = {}
        for prio in (1, 5, 3, 10):
            ids[prio] = self.submit1("--priority=%d" % prio, "--", "sh", "-c",
                                     "echo %d >> %s; echo ran %d" % (prio, sh_quote(order), prio))
        ts = self.tasks()
        self.assertEqual({ts[i]["status"] for i in ids.values()}, {"pending"})
        self.assertEqual({p: ts[i]["priority"] for p, i in ids.items()}, {1: 1, 5: 5, 3: 3, 10: 10})
        self.online_keys([self.c.start_worker("w1", extra=["--max-runners=1"])])
        ts = self.wait_final(ids.values())
        self.assertEqual({t["status"] for t in ts.values()}, {"finished"}, ts)
        with open(order) as f:
            self.assertEqual(f.read().split(), ["1", "3", "5", "10"])  # lower numbers first

    # ---- 6: cancel

    def running_with_sleeps(self, tid, n_sleeps):
        """Waits until the task runs and its group holds n_sleeps `sleep` processes; returns
        the pgid (the task's pid)."""
        t = self.wait_tasks([tid], lambda t: t["status"] == "running" and t["pid"] > 0,
                            what="task %s to run with a pid" % tid)[tid]
        pgid = t["pid"]

        def sleeps():
            n = 0
            for pid, _ in harness.group_members(pgid):
                try:
                    with open("/proc/%d/comm" % pid) as f:
                        n += f.read().strip() == "sleep"
                except OSError:
                    pass
            return n >= n_sleeps
        wait_until(sleeps, what="two sleeps in process group %d" % pgid)
        return pgid

    def assert_group_ends(self, pgid, tid):
        try:
            wait_until(lambda: harness.group_gone(pgid),
                       what="process group %d of task %s to be gone" % (pgid, tid))
        except harness.Timeout:
            raise AssertionError("process group %d of task %s still has %r"
                                 % (pgid, tid, harness.group_members(pgid)))

    def test_cancel_kills_the_whole_process_group(self):
        self.c.start_master()
        # a pending task (no worker yet) is cancelled at once and never runs
        marker = self.c.path("pending-ran")
        p = self.submit1("--", "touch", marker)
        self.assertEqual(self.task(p)["status"], "pending")
        rc, out, err = self.c.cli("cancel", p)
        self.assertEqual(rc, 0, err)
        t = self.task(p)
        self.assertEqual(t["status"], "cancelled", t)

        quick = self.c.start_worker("quick", extra=["--cancel-grace=1s"])
        slow = self.c.start_worker("slow", extra=["--cancel-grace=120s"])
        k_quick, k_slow = self.online_keys([quick, slow])

        # SIGTERM ends the group
        a = self.submit1("--node=%s" % k_quick, "--", "sh", "-c", "sleep 300 & sleep 300; wait")
        pg_a = self.running_with_sleeps(a, 2)
        rc, out, err = self.c.cli("cancel", a)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(a, "cancelled")
        self.assert_group_ends(pg_a, a)

        # SIGTERM ignored by everyone in the group: SIGKILL after --cancel-grace
        b = self.submit1("--node=%s" % k_quick, "--", "sh", "-c",
                         "trap '' TERM; sleep 300 & sleep 300; wait")
        pg_b = self.running_with_sleeps(b, 2)
        rc, out, err = self.c.cli("cancel", b)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(b, "cancelled")
        self.assert_group_ends(pg_b, b)

        # --force skips the grace (120 s on this worker, beyond every wait here)
        f = self.submit1("--node=%s" % k_slow, "--", "sh", "-c",
                         "trap '' TERM; sleep 300 & sleep 300; wait")
        pg_f = self.running_with_sleeps(f, 2)
        rc, out, err = self.c.cli("cancel", "--force", f)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(f, "cancelled")
        self.assert_group_ends(pg_f, f)
        # Pushed to workers that take pushed cancels: every cancel went on their node streams.
        for tid, how in ((a, ""), (b, ""), (f, " (force)")):
            self.assertEqual(self.c.master.count(
                "task %s: cancel%s sent to its worker on its node stream" % (tid, how)), 1)

        # the cancelled pending task stayed cancelled and never ran, though workers were free
        done = self.submit1("--", "echo", "done")
        self.wait_task_status(done, "finished")
        self.assertEqual(self.task(p)["status"], "cancelled")
        self.assertFalse(os.path.exists(marker), "the cancelled pending task ran")
        for w in (quick, slow):
            self.assertTrue(w.alive(), w)

    # ---- 7: timeout

    def test_timeout_ends_in_error_timeout(self):
        self.start_cluster(1)
        tid = self.submit1("--timeout=1s", "--", "sleep", "30")
        self.assertEqual(self.task(tid)["timeout_ms"], 1000)
        t = self.wait_final([tid])[tid]
        self.assertEqual((t["status"], t["error"]), ("error", "timeout"), t)
        self.assert_group_ends(t["pid"], tid)

    # ---- 8: logs --follow

    def test_logs_follow_ends_when_the_task_ends(self):
        self.start_cluster(1)
        tid = self.submit1("--", "sh", "-c",
                           "i=1; while [ $i -le 20 ]; do echo line-$i; sleep 0.1; i=$((i+1)); done")
        follow = self.c.spawn_cli("follow", "logs", "--follow", tid)
        self.assertEqual(follow.wait_exit(timeout=30), 0, follow.log())
        self.assertEqual(follow.lines(), ["line-%d" % i for i in range(1, 21)])
        self.assertEqual(self.task(tid)["status"], "finished")
        # following a task that has ended already prints its log and returns
        rc, out, err = self.c.cli("logs", "--follow", tid)
        self.assertEqual((rc, out.splitlines()), (0, ["line-%d" % i for i in range(1, 21)]), err)

    # ---- 9: exit code

    def test_nonzero_exit_ends_in_error_with_the_exit_code(self):
        self.start_cluster(1)
        a = self.submit1("--", "sh", "-c", "echo going; exit 7")
        # exec: the task's own shell is the process that dies of the signal
        b = self.submit1("--", "exec", "sh", "-c", "kill -USR1 $$")
        # tasks that print nothing and end at once: their final status must still arrive
        silent = [self.submit1("--", "sh", "-c", "exit %d" % (i % 3)) for i in range(12)]
        ts = self.wait_final([a, b] + silent)
        self.assertEqual([(t["status"], t["exit_code"]) for t in map(ts.get, silent)],
                         [("finished" if i % 3 == 0 else "error", i % 3) for i in range(12)])
        self.assertEqual((ts[a]["status"], ts[a]["exit_code"], ts[a]["error"]),
                         ("error", 7, "exit code 7"), ts[a])
        self.assertEqual(self.logs(a), ["going"])
        self.assertEqual(ts[b]["status"], "error", ts[b])
        self.assertEqual(ts[b]["error"], "killed by signal %d" % signal.SIGUSR1, ts[b])

    # ---- 10: node addressing

    def test_node_flag_picks_the_node_and_all_nodes_runs_once_per_node(self):
        keys = self.start_cluster(3)
        show = "echo node=$CRAWLAB_NODE_KEY task=$CRAWLAB_TASK_ID"
        by_key = {}
        for k in keys:
            for _ in range(3):
                by_key[self.submit1("--node=%s" % k, "--", "sh", "-c", show)] = k
        all_ids = self.submit("--all-nodes", "--", "sh", "-c", show)
        self.assertEqual(len(all_ids), 3, all_ids)
        self.assertEqual(len(set(all_ids)), 3, all_ids)
        ts = self.wait_final(list(by_key) + all_ids)
        for tid, k in by_key.items():
            self.assertEqual((ts[tid]["status"], ts[tid]["assigned_node"]), ("finished", k),
                             ts[tid])
            self.assertEqual(self.logs(tid), ["node=%s task=%s" % (k, tid)])
        self.assertEqual(sorted(ts[i]["assigned_node"] for i in all_ids), sorted(keys))
        for tid in all_ids:
            self.assertEqual(ts[tid]["status"], "finished", ts[tid])
            self.assertEqual(self.logs(tid), ["node=%s task=%s" % (ts[tid]["assigned_node"], tid)])


if __name__ == "__main__":
    harness.main()
