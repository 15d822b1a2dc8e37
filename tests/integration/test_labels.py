#!/usr/bin/python3
"""Node labels and lifecycle on a real master on 127.0.0.1: workers announce --label, a task with
--label runs only on a node that has all its labels, a node name works where a key does (an
ambiguous one is refused with its keys), node disable / enable / drain / rm, their states across
a master restart, and a task no node can take waits in the queue with a warning.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_labels.py"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Labels(harness.ClusterTest, harness.TaskOps):

    def node(self, key):
        return harness.find_node(self.c.nodes(), key=key)

    def wait_state(self, key, state):
        return self.c.wait_nodes(lambda ns: harness.find_node(ns, key=key)["state"] == state,
                                 what="node %s to be %s" % (key, state))

    def admin(self, *words):
        """`crawlab-node WORDS` against this cluster, its options before any "--" (the
        sub-command of node and schedule must come right after them)."""
        words = list(words)
        at = words.index("--") if "--" in words else len(words)
        return self.c.run_cli(*words[:at], "--master=%s" % self.c.master_addr,
                              "--admin-key-file=%s" % self.c.admin_key_file, *words[at:])

    def node_cmd(self, action, node):
        return self.admin("node", action, node)

    def gate(self, name):
        """A command that runs until the file `name` exists in the test's directory."""
        return ["sh", "-c", "while [ ! -e %s ]; do sleep 0.05; done" % self.c.path(name)]

    def open_gate(self, name):
        open(self.c.path(name), "w").close()

    def submit_warned(self, *args):
        """`submit ARGS` that queues one task and warns: (its id, the warning)."""
        rc, out, err = self.c.cli("submit", *args)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.strip(), r"^[0-9a-f]{24}$")
        return out.strip(), err.strip()

    def last_task(self, sched_id):
        rc, out, err = self.admin("schedule", "show", str(sched_id), "--json")
        self.assertEqual(rc, 0, err)
        return json.loads(out)["last_task"]

    def start_cluster(self):
        """A master and three workers: gpu ("big box", gpu=1 and zone=eu west), cpu1 and cpu2
        (both named "cpu", cpu1 in zone eu west). Returns the workers by key."""
        self.c.start_master()
        w = {"gpu": self.c.start_worker("gpu", node_name="big box",
                                        extra=["--node-key=gpu", "--label=gpu=1",
                                               "--label=zone=eu west"]),
             "cpu1": self.c.start_worker("cpu1", node_name="cpu",
                                         extra=["--node-key=cpu1", "--label=zone=eu west"]),
             "cpu2": self.c.start_worker("cpu2", node_name="cpu", extra=["--node-key=cpu2"])}
        self.c.wait_status("online", keys=tuple(w))
        return w

    def test_labels_and_names_pick_the_node(self):
        self.start_cluster()
        gpu = self.node("gpu")
        self.assertEqual(gpu["labels"], ["gpu=1", "zone=eu west"])
        self.assertEqual(gpu["state"], "enabled")
        self.assertEqual(self.node("cpu2")["labels"], [])
        rc, out, err = self.c.cli("nodes")
        self.assertEqual(rc, 0, err)
        self.assertIn("gpu=1,zone=eu west", out)

        # every labelled task runs on the one node that has all the labels
        ids = [self.submit1("--label=gpu=1", "--", "true") for _ in range(4)]
        ids.append(self.submit1("--label=zone=eu west", "--label=gpu=1", "--", "true"))
        ids.append(self.submit1("--node=big box", "--", "true"))
        done = self.wait_final(ids)
        self.assertEqual({t["status"] for t in done.values()}, {"finished"})
        self.assertEqual({t["assigned_node"] for t in done.values()}, {"gpu"})
        self.assertEqual(done[ids[4]]["labels"], ["zone=eu west", "gpu=1"])
        self.assertEqual(done[ids[5]]["node_key"], "gpu")  # the name was resolved to the key

        # an ambiguous name is refused with the keys it names; an unknown one too
        rc, out, err = self.c.cli("submit", "--node=cpu", "--", "true")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("ambiguous", err)
        self.assertIn("cpu1", err)
        self.assertIn("cpu2", err)
        rc, _, err = self.admin("node", "disable", "cpu")
        self.assertEqual(rc, 1)
        self.assertIn("ambiguous", err)
        rc, _, err = self.c.cli("submit", "--node=nobody", "--", "true")
        self.assertEqual(rc, 1)
        self.assertIn("unknown node", err)

        # no node has the label: queued, with a warning, and never handed out
        lonely, warning = self.submit_warned("--label=os=plan9", "--", "true")
        self.assertIn("no online, enabled node has those labels", warning)

        # a schedule's tasks carry its selector
        rc, out, err = self.admin("schedule", "add", "--label=gpu=1", "@every 1s", "--", "true")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.admin("schedule", "show", out.strip(), "--json")
        self.assertEqual(rc, 0, err)
        sched = json.loads(out)
        self.assertEqual(sched["labels"], ["gpu=1"])
        fire = harness.wait_until(lambda: self.last_task(sched["id"]),
                                  what="the schedule's first task")
        fire = self.wait_final([fire])[fire]
        self.assertEqual((fire["assigned_node"], fire["labels"]), ("gpu", ["gpu=1"]))
        self.assertEqual(self.admin("schedule", "rm", str(sched["id"]))[0], 0)
        self.assertEqual(self.task(lonely)["status"], "pending")

        # bad input is refused before anything is stored: exit 2, one line naming the field
        before = len(self.tasks())
        for args, field in ((("submit", "--label=gpu", "--", "true"), "--label"),
                            (("submit", "--label=a b=1", "--", "true"), "--label"),
                            (("submit", "--label=gpu=1", "--node=gpu", "--", "true"), "--label"),
                            (("schedule", "add", "--label==1", "@daily", "--", "true"), "--label"),
                            (("node", "sleep", "gpu"), "node sleep"),
                            (("node", "rm", "a\tb"), "NODE")):
            rc, out, err = self.admin(*args)
            self.assertEqual((rc, out), (2, ""), args)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn(field, err)
        self.assertEqual(len(self.tasks()), before)

    def test_disable_drain_remove_and_restart(self):
        workers = self.start_cluster()
        # disabled: takes no new task, by name or by label; enabled again, it runs what waited
        rc, out, err = self.node_cmd("disable", "big box")
        self.assertEqual(rc, 0, err)
        self.assertIn("disabled", out)
        waiting, warning = self.submit_warned("--label=gpu=1", "--", "true")
        self.assertIn("no online, enabled node has those labels", warning)
        addressed, warning = self.submit_warned("--node=gpu", "--", "true")
        self.assertIn("node gpu is not online and enabled", warning)
        other = self.submit1("--label=zone=eu west", "--", "true")
        self.assertEqual(self.wait_final([other])[other]["assigned_node"], "cpu1")
        self.assertEqual({self.task(i)["status"] for i in (waiting, addressed)}, {"pending"})
        self.assertEqual(self.node_cmd("enable", "gpu")[0], 0)
        done = self.wait_final([waiting, addressed])
        self.assertEqual({t["assigned_node"] for t in done.values()}, {"gpu"})

        # drain: the running task finishes, then the node is disabled; new work waits
        running = self.submit1("--node=gpu", "--", *self.gate("drain-gate"))
        self.wait_task_status(running, "running")
        rc, out, err = self.node_cmd("drain", "gpu")
        self.assertEqual(rc, 0, err)
        self.assertIn("draining", out)
        queued, _ = self.submit_warned("--label=gpu=1", "--", "true")
        self.open_gate("drain-gate")
        self.assertEqual(self.wait_final([running])[running]["status"], "finished")
        self.wait_state("gpu", "disabled")
        self.assertEqual(self.task(queued)["status"], "pending")

        # rm: refused while online, and while an offline node still holds a task
        rc, _, err = self.node_cmd("rm", "gpu")
        self.assertEqual(rc, 1)
        self.assertIn("online", err)
        held = self.submit1("--node=cpu1", "--", *self.gate("never"))
        pid = self.wait_tasks([held], lambda t: t["status"] == "running" and t["pid"] > 0,
                              what="the held task to run")[held]["pid"]
        # its worker is killed and never comes back to stop it: the test does (pgid = pid)
        self.addCleanup(harness.kill_group, pid)
        workers["cpu1"].kill9()
        self.c.wait_status("offline", keys=("cpu1",))
        rc, _, err = self.node_cmd("rm", "cpu1")
        self.assertEqual(rc, 1)
        self.assertIn("holds 1 tasks", err)
        self.assertEqual(workers["gpu"].stop(), 0)
        self.c.wait_status("offline", keys=("gpu",))
        rc, out, err = self.node_cmd("rm", "big box")
        self.assertEqual((rc, out), (0, ""), err)
        self.assertIsNone(self.node("gpu"))
        self.assertEqual(self.node_cmd("disable", "cpu2")[0], 0)

        # states and labels survive a restart of the master; the removed node stays removed
        self.assertEqual(self.c.master.stop(), 0)
        self.c.start_master()
        nodes = self.c.nodes()
        self.assertIsNone(harness.find_node(nodes, key="gpu"))
        self.assertEqual(harness.find_node(nodes, key="cpu2")["state"], "disabled")
        self.assertEqual(harness.find_node(nodes, key="cpu1")["labels"], ["zone=eu west"])
        rc, out, err = self.c.cli("nodes", "--limit=1", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual([n["key"] for n in json.loads(out)], ["cpu1"])
        self.assertIn("more follow", err)


if __name__ == "__main__":
    harness.main()
