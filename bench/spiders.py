#!/usr/bin/python3
"""crawlab-node benchmark: a spider of about 50 MB pushed to the master, then run by two workers.

One master and two workers on 127.0.0.1 (real processes, through tests/integration/harness.py).
The spider is a directory of incompressible files (random bytes, so that the archive is as large
as the files). Measured:

  1. `spider push`: wall time, and the master's CPU time for it (receiving, hashing, writing and
     checking every entry), per MB of archive;
  2. one task on each worker, submitted together: the time from the submit to the first task's
     process running (the task prints its start time), and to both; with each worker fetching the
     archive, checking it, unpacking it into its cache and copying it into the task's directory;
     the master's CPU time for serving both fetches, per MB sent;
  3. the same two tasks again, the spider in both caches: only the copy is left.

Python 3 standard library only. It prints figures and never fails on speed; exit status 1 when a
step could not run to its end.

    /usr/bin/python3 bench/spiders.py               # 50 MB
    /usr/bin/python3 bench/spiders.py --mb=10       # a quick run
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

MB = 1000 * 1000
TASK = ["python3", "-c", "import time; print('%.6f' % time.time())"]


def make_spider(path, total_mb, file_mb=2):
    os.makedirs(os.path.join(path, "data"))
    with open(os.path.join(path, "main.py"), "w") as f:
        f.write("print('spider')\n")
    left = total_mb * MB
    i = 0
    while left > 0:
        n = min(left, file_mb * MB)
        with open(os.path.join(path, "data", "part%03d.bin" % i), "wb") as f:
            f.write(os.urandom(n))
        left -= n
        i += 1


class Bench:
    def __init__(self, args):
        self.args = args
        self.root = tempfile.mkdtemp(prefix="crawlab-bench-spiders-")
        self.c = harness.Cluster(self.root, binary=args.bin)

    def cli(self, *a):
        rc, out, err = self.c.cli(*a, timeout=600)
        if rc != 0:
            raise RuntimeError("%r: rc %d: %s" % (a, rc, err.strip()))
        return out

    def run_pair(self, keys, label):
        """Submits one task per worker at once; returns (first, last) seconds from the submit
        to each task's process start, and the master's CPU seconds meanwhile."""
        cpu0 = harness.cpu_seconds(self.c.master.pid)
        t0 = time.time()
        ids = []
        for k in keys:
            ids += self.cli("submit", "--spider=big", "--node=%s" % k, "--", *TASK).split()

        def ended():
            ts = {t["id"]: t for t in json.loads(self.cli("tasks", "--json"))}
            return all(ts[i]["status"] in ("finished", "error") for i in ids) and ts
        ts = harness.wait_until(ended, timeout=600, what="the %s tasks" % label)
        cpu = harness.cpu_seconds(self.c.master.pid) - cpu0
        starts = []
        for i in ids:
            if ts[i]["status"] != "finished":
                raise RuntimeError("task %s: %s" % (i, ts[i]["error"]))
            starts.append(float(self.cli("logs", i).split()[0]) - t0)
        return min(starts), max(starts), cpu

    def run(self):
        mb = self.args.mb
        src = os.path.join(self.root, "big")
        make_spider(src, mb)
        self.c.start_master()
        workers = [self.c.start_worker("w%d" % i) for i in (1, 2)]
        for w in workers:
            w.wait_log("registered with the master")
        ns = self.c.wait_status("online", names=["w1", "w2"], timeout=30)
        keys = [harness.find_node(ns, name=n)["key"] for n in ("w1", "w2")]

        cpu0 = harness.cpu_seconds(self.c.master.pid)
        t0 = time.time()
        rc, out, err = self.c.run_cli("spider", "push", src, "--name=big",
                                      "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file, timeout=600)
        if rc != 0:
            raise RuntimeError("spider push: rc %d: %s" % (rc, err.strip()))
        push_s = time.time() - t0
        push_cpu = harness.cpu_seconds(self.c.master.pid) - cpu0
        size = int(out.split("size:")[1].split()[0])
        print("spider: %d files, archive %.1f MB" % (mb // 2 + 2, size / MB))
        print("push:                    %.2f s wall, master CPU %.1f ms (%.2f ms per MB)"
              % (push_s, push_cpu * 1000, push_cpu * 1000 / (size / MB)))

        first, last, cpu = self.run_pair(keys, "first")
        print("2 workers, cold cache:   first task running %.2f s after the submit, both %.2f s; "
              "master CPU %.1f ms for %.1f MB sent (%.2f ms per MB)"
              % (first, last, cpu * 1000, 2 * size / MB, cpu * 1000 / (2 * size / MB)))
        fetches = self.c.master.count("sending from byte 0 of")
        first, last, cpu = self.run_pair(keys, "second")
        print("2 workers, warm cache:   first task running %.2f s after the submit, both %.2f s; "
              "master CPU %.1f ms" % (first, last, cpu * 1000))
        print("fetches served by the master: %d (2 expected: one per worker)" % fetches)
        if self.c.master.count("sending from byte 0 of") != fetches:
            raise RuntimeError("the warm run fetched again")

    def close(self):
        self.c.stop_all()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=50, help="the spider's size in MB (default 50)")
    p.add_argument("--bin", default=harness.BIN)
    p.add_argument("--keep", action="store_true", help="keep the cluster directory")
    args = p.parse_args()
    b = Bench(args)
    try:
        b.run()
        return 0
    except (RuntimeError, harness.Timeout) as e:
        print("benchmark stopped: %s" % e)
        return 1
    finally:
        b.close()


if __name__ == "__main__":
    sys.exit(main())
