#!/usr/bin/python3
"""The static binary runs in an empty chroot (no libc, no /etc, no /dev): a master and a worker
inside, queried from outside. Needs root; skipped otherwise."""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import find_node, read_key  # noqa: E402


class StaticChroot(harness.ClusterTest):

    def test_master_and_worker_run_in_an_empty_chroot(self):
        if os.geteuid() != 0:
            self.skipTest("chroot needs root (running as uid %d)" % os.geteuid())
        chroot = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
        if not chroot:
            self.skipTest("no chroot command on this machine")
        c = self.c
        jail = c.path("jail")
        os.makedirs(os.path.join(jail, "tmp"))
        os.chmod(os.path.join(jail, "tmp"), 0o1777)
        shutil.copy2(harness.BIN, os.path.join(jail, "crawlab-node"))
        self.assertEqual(sorted(os.listdir(jail)), ["crawlab-node", "tmp"])

        inside = [chroot, jail]
        c.bin = "/crawlab-node"  # the path inside the chroot, for the daemons' argv
        c.master_dir = "/data"
        m = c.start_master(prefix=inside)
        w = c.start_worker("w1", data_dir="/w", key_file="/data/auth.key", prefix=inside)
        w.wait_log("registered with the master")

        # from outside: the same binary, the key file through the jail
        c.bin = harness.BIN
        c.master_dir = os.path.join(jail, "data")
        ns = c.wait_status("online", names=["w1"])
        self.assertEqual(len(ns), 1, ns)
        self.assertEqual(find_node(ns, name="w1")["key"],
                         read_key(os.path.join(jail, "w", "node.key")))
        m.wait_log("(w1) online")
        self.assertTrue(m.alive(), m)
        self.assertTrue(w.alive(), w)


if __name__ == "__main__":
    harness.main()
