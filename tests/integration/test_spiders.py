#!/usr/bin/python3
"""Spiders on a real master and workers on 127.0.0.1: a pushed directory becomes a version that a
task runs in (its files in the task's fresh working directory), fetched once per worker however
many tasks need it; hostile archives (built here with tarfile and pushed as they are with the
hidden --test-archive) are refused with a clear message and leave nothing stored, and a worker
refuses an archive whose bytes are not its hash; a push cut midway stores nothing, and a fetch
cut midway resumes where it was cut.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_spiders.py"""

import hashlib
import io
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultproxy  # noqa: E402
import harness  # noqa: E402

REGISTERED = "registered with the master"
SENT_FROM_0 = "sending from byte 0 of"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def tgz(entries):
    """A gzip'd tar of (TarInfo, bytes or None) entries, as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name, data=None, type_=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.mode = 0o644
    if type_ == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    return info, (data if data is not None else (b"" if type_ == tarfile.REGTYPE else None))


class Spiders(harness.ClusterTest, harness.TaskOps):
    timeout = 120

    def spider(self, action, *args, master=None):
        """`spider ACTION ARGS` against this cluster's master (or master, a proxy's address)."""
        return self.c.run_cli("spider", action, "--master=%s" % (master or self.c.master_addr),
                              "--admin-key-file=%s" % self.c.admin_key_file, *args)

    def push(self, path, name, *flags, master=None):
        """Pushes a directory; returns the version it became."""
        rc, out, err = self.spider("push", path, "--name=%s" % name, *flags, master=master)
        self.assertEqual(rc, 0, err)
        fields = dict(line.split(":", 1) for line in out.splitlines())
        return int(fields["version"]), fields["sha256"].strip()

    def stored(self):
        """What the master keeps under <data-dir>/spiders."""
        d = os.path.join(self.c.master_dir, "spiders")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def online(self, *workers):
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers], timeout=30)
        return [harness.find_node(ns, name=w.name)["key"] for w in workers]

    def test_a_pushed_spider_runs_in_each_task_and_is_fetched_once(self):
        self.c.start_master()
        w = self.c.start_worker("w1", extra=["--max-runners=3"])
        key, = self.online(w)
        src = self.c.path("quotes")
        write(os.path.join(src, "data.txt"), "hello from version 1\n")
        write(os.path.join(src, "lib", "util.py"), "X = 1\n")
        os.symlink("lib/util.py", os.path.join(src, "util"))
        self.assertEqual(self.push(src, "quotes")[0], 1)
        write(os.path.join(src, "data.txt"), "hello from version 2\n")
        v2, sha2 = self.push(src, "quotes")
        self.assertEqual(v2, 2)

        rc, out, err = self.spider("list")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"\nquotes +2 ")  # the latest version of each spider
        rc, out, err = self.spider("list", "quotes")
        self.assertEqual([line.split()[1] for line in out.splitlines()[1:]], ["1", "2"])
        rc, out, err = self.spider("show", "quotes")
        self.assertIn("sha256:    %s" % sha2, out)
        self.assertIn("files:     4 entries", out)  # data.txt, lib, lib/util.py, util
        rc, out, err = self.spider("show", "quotes@7")
        self.assertEqual(rc, 1)
        self.assertIn("unknown spider or version", err)

        # three tasks of one version on one worker at once: one fetch
        cmd = ["--", "sh", "-c", "cat data.txt util; pwd"]
        ids = self.submit("--spider=quotes", "--node=%s" % key, *cmd) + \
            self.submit("--spider=quotes@2", "--node=%s" % key, *cmd) + \
            self.submit("--spider=quotes", "--node=%s" % key, *cmd)
        done = self.wait_final(ids)
        for i in ids:
            self.assertEqual(done[i]["status"], "finished", done[i])
            lines = self.logs(i)
            self.assertEqual(lines[:2], ["hello from version 2", "X = 1"])
            self.assertEqual(lines[2], os.path.join(w.data_dir, "tasks", i))  # its fresh dir
        self.assertEqual(self.c.master.count(SENT_FROM_0), 1)
        self.assertEqual(w.count("fetching it from the master"), 1)
        # the copies go with their tasks; the unpacked spider stays in the cache
        harness.wait_until(lambda: not os.listdir(os.path.join(w.data_dir, "tasks")),
                           what="the tasks' directories to go")
        self.assertIn(sha2, os.listdir(os.path.join(w.data_dir, "spiders")))

        # an older version by number; the next task of the cached version fetches nothing
        old = self.submit1("--spider=quotes@1", *cmd)
        self.assertEqual(self.wait_final([old])[old]["status"], "finished")
        self.assertEqual(self.logs(old)[0], "hello from version 1")
        self.assertEqual(self.c.master.count(SENT_FROM_0), 2)

        # refusals at submit: an unknown spider (1), a malformed reference (2, nothing sent)
        rc, out, err = self.c.cli("submit", "--spider=nope", "--", "true")
        self.assertEqual(rc, 1)
        self.assertIn("no spider nope", err)
        rc, out, err = self.c.cli("submit", "--spider=quotes@0", "--", "true")
        self.assertEqual(rc, 2)
        self.assertIn("--spider", err)

        # a schedule names the spider; each fire's task runs in it
        rc, out, err = self.c.run_cli("schedule", "add", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file,
                                      "--spider=quotes@1", "@every 1s", *cmd)
        self.assertEqual(rc, 0, err)
        self.c.master.wait_log("schedule 1: task ")
        fired = [t for t in self.tasks().values() if t["spider"] == "quotes@1" and t["id"] != old]
        self.assertTrue(fired)
        self.assertEqual(self.wait_final([fired[0]["id"]])[fired[0]["id"]]["status"], "finished")
        self.assertEqual(self.logs(fired[0]["id"])[0], "hello from version 1")
        self.assertEqual(self.c.run_cli("schedule", "rm", "1", "--master=%s" % self.c.master_addr,
                                        "--admin-key-file=%s" % self.c.admin_key_file)[0], 0)

        # a version a task still needs is kept; once the task ended it can go
        busy = self.submit1("--spider=quotes@2", "--", "sleep", "30")
        self.wait_task_status(busy, "running")
        rc, out, err = self.spider("rm", "quotes@2")
        self.assertEqual(rc, 1)
        self.assertIn("still needed by task %s" % busy, err)
        self.assertEqual(self.c.cli("cancel", "--force", busy)[0], 0)
        self.wait_final([busy])
        rc, out, err = self.spider("rm", "quotes@2")
        self.assertEqual((rc, out), (0, "removed quotes@2\n"), err)
        self.assertNotIn(sha2 + ".tgz", self.stored())
        rc, out, err = self.spider("list", "quotes")
        self.assertEqual([line.split()[1] for line in out.splitlines()[1:]], ["1"])

    def refused(self, archive, words, *flags):
        """Pushes archive bytes as they are; the push must fail naming words."""
        path = self.c.path("hostile.tgz")
        with open(path, "wb") as f:
            f.write(archive)
        rc, out, err = self.spider("push", "--name=hostile", "--test-archive=%s" % path, *flags)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn(words, err)
        return err

    def test_hostile_archives_are_refused_and_nothing_is_stored(self):
        self.c.start_master(extra=["--spider-max-bytes=64K", "--spider-max-files=5"])
        ok = tgz([entry("a.txt", b"fine")])
        self.refused(tgz([entry("a.txt", b"x"), entry("/etc/cron.d/evil", b"x")]),
                     "entry '/etc/cron.d/evil' refused: its path must be a relative path")
        self.refused(tgz([entry("a/../../evil", b"x")]), "entry 'a/../../evil' refused")
        self.refused(tgz([entry("d", type_=tarfile.DIRTYPE),
                          entry("d/l", type_=tarfile.SYMTYPE, linkname="../../etc/passwd")]),
                     "a symbolic link to '../../etc/passwd', out of the tree")
        self.refused(tgz([entry("h", type_=tarfile.LNKTYPE, linkname="/etc/shadow")]),
                     "a hard link to '/etc/shadow', out of the tree")
        self.refused(tgz([entry("null", type_=tarfile.CHRTYPE)]),
                     "entry 'null' refused: a device file")
        self.refused(tgz([entry("f%d" % i, b"x") for i in range(6)]),
                     "more than 5 entries (the file bound)")
        # small as an archive, large unpacked: the bound is on the files too
        self.refused(tgz([entry("zeros", bytes(70000))]),
                     "more than 65536 bytes (the size bound)")
        # too large as an archive: refused from the announced size, before a byte is written
        self.refused(os.urandom(70000),
                     "archive of 70000 bytes refused: over the size bound of 65536 bytes "
                     "(--spider-max-bytes)")
        self.refused(ok, "its SHA-256 is %s, not the %s announced"
                     % (hashlib.sha256(ok).hexdigest(), "0" * 64), "--test-sha256=" + "0" * 64)
        self.refused(b"no tar here, nor gzip" * 10, "not a spider archive")
        self.assertEqual(self.stored(), [])
        rc, out, err = self.spider("list")
        self.assertEqual(out.splitlines()[1:], [])
        # the same master takes a sound archive
        path = self.c.path("ok.tgz")
        write(path, ok)
        rc, out, err = self.spider("push", "--name=fine", "--test-archive=%s" % path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.stored(), [hashlib.sha256(ok).hexdigest() + ".tgz"])

    def test_a_cut_push_stores_nothing_and_a_cut_fetch_resumes(self):
        self.c.start_master()
        p = faultproxy.FaultProxy(self.c.port, name="proxy").start()
        self.addCleanup(p.close)
        src = self.c.path("big")
        blob = os.urandom(3 << 20)
        write(os.path.join(src, "blob.bin"), blob)

        # the client's connection is reset after 1 MiB of the push
        p.cut_after("up", 1 << 20)
        rc, out, err = self.spider("push", src, "--name=big", master=p.addr)
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(p.stats().get("cut_after"), 1)
        # (whether the master read the push's first message, which names it, before the reset
        # reached it is up to the scheduler: the line names the spider or not)
        harness.wait_until(lambda: [line for line in self.c.master.lines()
                                    if "spider push" in line and "refused" in line],
                           what="the master to see the push end")
        self.assertEqual(self.stored(), [])
        self.assertEqual(self.spider("list")[1].splitlines()[1:], [])

        # a worker behind the proxy: its fetch is cut after 2 MiB and resumes where the bytes it
        # had verified end (how many it had read by then is up to the scheduler)
        self.push(src, "big")
        w = self.c.start_worker("w1", master_addr=p.addr)
        self.online(w)
        p.cut_after("down", 2 << 20)
        task = self.submit1("--spider=big", "--", "sha256sum", "blob.bin")
        self.assertEqual(self.wait_final([task], timeout=60)[task]["status"], "finished")
        self.assertEqual(self.logs(task), ["%s  blob.bin" % hashlib.sha256(blob).hexdigest()])
        self.assertEqual(p.stats().get("cut_after"), 2)
        # The proxy's cut takes the worker's session down too; the reconnect that follows may
        # cut the resumed fetch once more (the old connection goes): one resumption or two, each
        # from where the bytes verified until then end.
        cut = [line for line in w.lines() if "fetch cut at byte" in line]
        self.assertIn(len(cut), (1, 2), cut)
        verified = [int(line.split("fetch cut at byte ")[1].split()[0]) for line in cut]
        self.assertEqual(verified, sorted(verified))
        sent = [int(line.split("sending from byte ")[1].split()[0])
                for line in self.c.master.lines() if "sending from byte" in line]
        self.assertEqual(sent, [0] + verified)  # each resumption asks from the verified end
        self.assertEqual(w.count("fetching it from the master"), 1)

        # an archive whose bytes changed on the master's disk: the worker's check refuses it
        small = self.c.path("small")
        write(os.path.join(small, "a.txt"), "x" * 1000)
        _, sha = self.push(small, "small")
        path = os.path.join(self.c.master_dir, "spiders", sha + ".tgz")
        with open(path, "r+b") as f:
            f.seek(20)
            byte = f.read(1)
            f.seek(20)
            f.write(bytes([byte[0] ^ 0xff]))
        task = self.submit1("--spider=small", "--", "cat", "a.txt")
        t = self.wait_final([task])[task]
        self.assertEqual(t["status"], "error")
        self.assertIn("refused: the archive fetched has SHA-256", t["error"])
        self.assertNotIn(sha, os.listdir(os.path.join(w.data_dir, "spiders")))
        self.assertNotIn(sha + ".tgz.part", os.listdir(os.path.join(w.data_dir, "spiders")))

    def master_and_proxy(self, name, data):
        """A master, a spider name of one file holding data, and a fault proxy to the master."""
        self.c.start_master()
        p = faultproxy.FaultProxy(self.c.port, name="proxy").start()
        self.addCleanup(p.close)
        src = self.c.path(name)
        write(os.path.join(src, "data"), data)
        self.push(src, name)
        return p

    def test_a_cancel_that_comes_while_the_spider_is_fetched_starts_nothing(self):
        p = self.master_and_proxy("small", "x\n")
        w = self.c.start_worker("w1", master_addr=p.addr)
        self.online(w)
        # From now on every chunk takes a second each way between the worker and the master. The
        # worker asks for the spider once the task is its own (pushed, or claimed), so the archive
        # comes two seconds after the worker says it is preparing the spider; a cancel sent at
        # that line comes one second after it, on the node stream.
        p.delay(1000)
        ran = self.c.path("ran")
        task = self.submit1("--spider=small", "--", "touch", ran)
        w.wait_log("task %s: preparing spider" % task)
        rc, out, err = self.c.cli("cancel", task)
        self.assertEqual(rc, 0, err)
        w.wait_log("task %s: cancel requested by the master" % task)
        # It ends at once (one write after the other), not once the archive has come.
        self.assertEqual(w.count("task %s: cancelled before it started" % task), 1, w.tail())
        t = self.wait_final([task], timeout=60)[task]
        self.assertEqual((t["status"], t["error"]), ("cancelled", "cancelled before it started"), t)
        self.assertEqual(w.count("task %s: cancel requested by the master" % task), 1, w.tail())
        self.assertEqual(w.count("task %s: cancelled before it started" % task), 1, w.tail())
        self.assertEqual(w.count("task %s started" % task), 0)
        self.assertFalse(os.path.exists(ran))
        # the copy it would have run in goes with it
        harness.wait_until(lambda: task not in os.listdir(os.path.join(w.data_dir, "tasks")),
                           what="the task's directory to go")

    def test_a_claimed_task_cancelled_by_resync_while_its_spider_is_fetched_ends_cancelled(self):
        # Queued before the worker exists, the task is fetched and claimed; once the claim is
        # accepted it is the worker's, which must end it rather than forget it. (A pushed task
        # is the worker's from the start and takes the same path.) Random bytes do not compress:
        # the archive is about 20 MiB, which the proxy, at a second per chunk, passes in seconds.
        p = self.master_and_proxy("big", os.urandom(20 << 20))
        ran = self.c.path("ran")
        task = self.submit1("--spider=big", "--", "touch", ran)
        p.delay(1000)
        w = self.c.start_worker("w1", master_addr=p.addr)
        w.wait_log("task %s: preparing spider" % task, timeout=60)
        # The worker is cut off while it fetches; the cancel waits in the store for its Resync.
        registered = w.count(REGISTERED)
        p.cut()
        rc, out, err = self.c.cli("cancel", task)
        self.assertEqual(rc, 0, err)
        p.delay(1000)
        w.wait_log(REGISTERED, count=registered + 1, timeout=60)
        # Nothing starts before the answer to Resync, however early the archive comes, and the
        # task ends with that answer, however late the archive comes.
        w.wait_log("task %s: cancelled while we were away" % task, timeout=60)
        self.assertEqual(w.count("task %s: cancelled before it started" % task), 1, w.tail())
        p.pass_()  # the rest of the archive comes at once
        t = self.wait_final([task], timeout=60)[task]
        self.assertEqual((t["status"], t["error"]), ("cancelled", "cancelled before it started"), t)
        self.assertEqual(w.count("task %s: cancelled before it started" % task), 1, w.tail())
        self.assertEqual(w.count("task %s started" % task), 0)
        self.assertFalse(os.path.exists(ran))


if __name__ == "__main__":
    harness.main()
