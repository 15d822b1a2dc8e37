"""Several masters in --master=A,B: a worker registers with the first, and when that master is
killed (kill -9) it goes on with the next and shows online there; a client command skips a master
it cannot reach, names each one it could not, and takes the first answer it gets as final, an
error included; with TLS, each entry's certificate name is its own host. The two masters are independent (own data directories, SQLite) and share the node
and admin keys, which is all a worker and a client need of a cluster here.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_multimaster.py"""

import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class MultiMaster(harness.ClusterTest):

    def write_key(self, name, text):
        path = self.c.path(name)
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
        return path

    def start_masters(self):
        """Masters A and B on their own ports and data directories, with the same keys."""
        self.auth_key = self.write_key("auth.key", "multimaster-node-key")
        self.admin_key = self.write_key("admin.key", "multimaster-admin-key")
        keys = ["--auth-key-file=%s" % self.auth_key, "--admin-key-file=%s" % self.admin_key]
        procs, addrs = {}, {}
        for name in ("A", "B"):
            self.c.port = None
            procs[name] = self.c.start_master(name=name, data_dir=self.c.path(name), extra=keys)
            addrs[name] = self.c.master_addr
        return procs["A"], addrs["A"], addrs["B"]

    def cli(self, masters, *args):
        return self.c.run_cli(args[0], "--master=%s" % ",".join(masters),
                              "--admin-key-file=%s" % self.admin_key, *args[1:])

    def closer(self):
        """A port that accepts connections and closes them at once: a master that can be
        reached but answers nothing (the call ends UNAVAILABLE). Returns its address."""
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        self.addCleanup(ls.close)

        def serve():
            while True:
                try:
                    conn, _ = ls.accept()
                except OSError:
                    return
                conn.close()
        threading.Thread(target=serve, daemon=True).start()
        return "127.0.0.1:%d" % ls.getsockname()[1]

    def node_status(self, master, name):
        """w1's status as `nodes` on master says it, None when it does not know w1."""
        rc, out, err = self.cli([master], "nodes", "--json")
        self.assertEqual(rc, 0, err)
        return harness.status_of(json.loads(out), name=name)

    def test_worker_moves_and_clients_try_each_master_until_one_answers(self):
        master_a, a, b = self.start_masters()
        dead = "127.0.0.1:%d" % harness.free_port()

        w = self.c.start_worker("w1", key_file=self.auth_key, extra=["--master=%s,%s" % (a, b)])
        w.wait_log("registered with the master %s as node" % a)
        harness.wait_until(lambda: self.node_status(a, "w1") == "online", what="w1 online on A")
        self.assertIsNone(self.node_status(b, "w1"))  # the first master only

        # A master that cannot be reached is skipped, by a change too, and named on stderr.
        rc, out, err = self.cli([dead, b], "submit", "--", "true")
        self.assertEqual(rc, 0, err)
        on_b = out.strip()
        self.assertEqual(len(on_b), 24, out)
        self.assertIn("cannot connect to the master %s" % dead, err)
        rc, out, err = self.cli([dead, b], "tasks", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual([t["id"] for t in json.loads(out)], [on_b])

        # A master that answers nothing: a call that changes nothing goes on to the next one, a
        # change does not (the master may have applied it before it went away).
        mute = self.closer()
        rc, out, err = self.cli([mute, b], "tasks", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual([t["id"] for t in json.loads(out)], [on_b])
        self.assertIn("%s: UNAVAILABLE" % mute, err)
        rc, out, err = self.cli([mute, b], "submit", "--", "true")
        self.assertEqual((rc, out), (3, ""), err)
        self.assertIn("%s: UNAVAILABLE" % mute, err)
        rc, out, err = self.cli([b], "tasks", "--json")
        self.assertEqual([t["id"] for t in json.loads(out)], [on_b])

        # A's answer is final: the task is B's, A says NOT_FOUND, and B is not asked.
        for command in ("logs", "cancel"):
            rc, out, err = self.cli([a, b], command, on_b)
            self.assertEqual((rc, out), (1, ""), err)
            self.assertIn("%s: NOT_FOUND" % a, err)
            self.assertNotIn(b, err)
        rc, out, err = self.cli([b], "tasks", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual([t["status"] for t in json.loads(out)], ["pending"])

        # A dies: the worker goes on with B, registers there and is online.
        master_a.kill9()
        w.wait_log("moved from the master %s" % a)
        moved = [ln for ln in w.lines() if "moved from the master" in ln]
        self.assertIn("registered with the master %s as node" % b, moved[0])
        harness.wait_until(lambda: self.node_status(b, "w1") == "online", what="w1 online on B")
        rc, out, err = self.cli([a, b], "nodes", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(harness.status_of(json.loads(out), name="w1"), "online")
        self.assertIn("cannot connect to the master %s" % a, err)

        # No master reachable: each address tried is named, and the exit status is 3.
        rc, out, err = self.cli([a, dead], "nodes")
        self.assertEqual((rc, out), (3, ""), err)
        self.assertIn("cannot connect to the master %s" % a, err)
        self.assertIn("cannot connect to the master %s" % dead, err)

    def test_tls_name_is_checked_against_the_host_of_each_entry(self):
        pki = self.c.path("pki")
        rc, out, err = self.c.run_cli("cert", "init", "--dir=%s" % pki, "--master-host=localhost")
        self.assertEqual(rc, 0, err)
        self.c.start_master(extra=["--tls-cert=%s/master.pem" % pki,
                                   "--tls-key=%s/master.key" % pki])
        # One master under two names: its certificate is valid for the second only.
        by_ip, by_name = self.c.master_addr, "localhost:%d" % self.c.port
        tls = ["--tls-ca=%s/ca.pem" % pki]
        w = self.c.start_worker("w1", extra=tls + ["--master=%s,%s" % (by_ip, by_name)])
        w.wait_log("registered with the master %s as node" % by_name)
        self.assertIn("not valid for the address 127.0.0.1", w.log())
        rc, out, err = self.c.run_cli("nodes", "--json", "--master=%s,%s" % (by_ip, by_name),
                                      "--admin-key-file=%s" % self.c.admin_key_file, *tls)
        self.assertEqual(rc, 0, err)
        self.assertEqual(harness.status_of(json.loads(out), name="w1"), "online")
        self.assertIn("cannot connect to the master %s" % by_ip, err)


if __name__ == "__main__":
    harness.main()
