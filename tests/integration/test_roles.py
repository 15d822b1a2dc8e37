#!/usr/bin/python3
"""Roles end to end: the node key (auth.key) opens what workers call and nothing of the admin
service; the admin key (admin.key) opens the admin service and cannot register a worker; with
mutual TLS a worker certificate cannot submit, an admin certificate cannot register, and node keys
are bound to certificates by default. Both keys are generated 0600 on the master's first start and
kept; a master upgraded in place keeps the auth.key its workers hold.

Certificates made before roles existed (no role in the subject) and ones with a role we do not know
are made with openssl(1), which the cert command cannot make; those tests are skipped without it.
Run: CRAWLAB_NODE_BIN=build/src/crawlab-node python3 tests/integration/test_roles.py"""

import json
import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import find_node, read_key  # noqa: E402

REGISTERED = "registered with the master"
NODE_KEY_REFUSED = "the node key cannot call admin methods"
ADMIN_KEY_REFUSED = "the admin key cannot call worker methods"
NOT_ADMIN_CERT = "the client certificate is not an admin's"
ADMIN_CERT_REFUSED = "an admin certificate cannot call worker methods"
INVALID_CERT = "the client certificate's role"


class Roles(harness.ClusterTest, harness.TaskOps):

    def setUp(self):
        super().setUp()
        self.addCleanup(self.check_keys_never_logged)

    # ---- helpers

    def check_keys_never_logged(self):
        for key_file in (self.c.key_file, self.c.admin_key_file):
            if not os.path.exists(key_file):
                continue
            key = read_key(key_file).encode()
            for root, _, files in os.walk(self.c.dir):
                for f in files:
                    if f.endswith(".log"):
                        with open(os.path.join(root, f), "rb") as fh:
                            self.assertNotIn(key, fh.read(), "a key in %s" % f)

    def cli_with(self, key_file, command, *args, extra=()):
        """A client command presenting key_file as its admin key (and extra flags)."""
        return self.c.run_cli(command, "--master=%s" % self.c.master_addr,
                              "--admin-key-file=%s" % key_file, *extra, *args)

    def online(self, *workers):
        for w in workers:
            w.wait_log(REGISTERED)
        ns = self.c.wait_status("online", names=[w.name for w in workers])
        return [find_node(ns, name=w.name)["key"] for w in workers]

    def assert_refused(self, result, status, why):
        rc, out, err = result
        self.assertEqual(rc, 3, (out, err))
        self.assertIn(status, err)
        self.assertIn(why, err)
        self.assertEqual(out, "")

    # ---- the two keys

    def test_keys_are_generated_private_distinct_and_kept_across_restarts(self):
        m = self.c.start_master()
        self.assertTrue(m.count("generated a new auth key"), m.tail())
        self.assertTrue(m.count("generated a new admin key"), m.tail())
        node_key, admin_key = read_key(self.c.key_file), read_key(self.c.admin_key_file)
        self.assertNotEqual(node_key, admin_key)
        for f in (self.c.key_file, self.c.admin_key_file):
            self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600, f)
        m.stop()
        m = self.c.start_master()
        self.assertTrue(m.count("using the auth key"), m.tail())
        self.assertTrue(m.count("using the admin key"), m.tail())
        self.assertEqual(read_key(self.c.key_file), node_key)
        self.assertEqual(read_key(self.c.admin_key_file), admin_key)

    def test_master_upgraded_in_place_keeps_its_workers_key(self):
        # A data directory from before roles: auth.key only.
        os.makedirs(self.c.master_dir, mode=0o700)
        with open(self.c.key_file, "w") as f:
            f.write("old-cluster-key-0123456789abcdef\n")
        os.chmod(self.c.key_file, 0o600)
        m = self.c.start_master()
        self.assertTrue(m.count("using the auth key"), m.tail())
        self.assertTrue(m.count("generated a new admin key"), m.tail())
        (key,) = self.online(self.c.start_worker("w1"))
        tid = self.submit1("--node=%s" % key, "--", "echo", "upgraded")
        self.assertEqual(self.wait_final([tid])[tid]["status"], "finished")
        self.assertEqual(self.logs(tid), ["upgraded"])

    def test_the_same_secret_for_both_roles_is_refused_at_start(self):
        os.makedirs(self.c.master_dir, mode=0o700)
        same = self.c.path("same.key")
        with open(same, "w") as f:
            f.write("one-key-for-everything-0123456789\n")
        m = self.c.start_master(wait=False, extra=["--auth-key-file=%s" % same,
                                                   "--admin-key-file=%s" % same])
        self.assertEqual(m.wait_exit(), 1)
        self.assertIn("the admin key must differ", m.log())
        self.assertNotIn("one-key-for-everything", m.log())

    def test_node_key_cannot_list_submit_read_or_cancel(self):
        m = self.c.start_master()
        (key,) = self.online(self.c.start_worker("w1"))
        long = self.submit1("--node=%s" % key, "--", "sleep", "600")
        self.wait_task_status(long, "running")
        node = self.c.key_file
        for command, args in (("nodes", ()), ("tasks", ()),
                              ("submit", ("--", "echo", "from a worker")),
                              ("cancel", (long,)), ("logs", (long,)), ("results", (long,))):
            self.assert_refused(self.cli_with(node, command, *args), "PERMISSION_DENIED",
                                NODE_KEY_REFUSED)
        m.wait_log(NODE_KEY_REFUSED)
        # Nothing happened: one task, still running; the admin key still works.
        ts = self.tasks()
        self.assertEqual(list(ts), [long])
        self.assertEqual(ts[long]["status"], "running")
        rc, out, err = self.c.cli("cancel", long)
        self.assertEqual(rc, 0, err)
        self.wait_task_status(long, "cancelled")

    def test_admin_key_cannot_register_a_worker(self):
        m = self.c.start_master()
        w = self.c.start_worker("intruder", key_file=self.c.admin_key_file,
                                extra=["--log-level=debug"])
        # One warn line, then a debug line per further attempt: it keeps being refused.
        w.wait_log("registration refused: PERMISSION_DENIED", count=2)
        m.wait_log(ADMIN_KEY_REFUSED)
        self.assertEqual(w.count(REGISTERED), 0)
        self.assertTrue(w.alive(), w.tail())
        ns = self.c.nodes()
        self.assertIsNone(find_node(ns, name="intruder"), ns)

    def test_a_wrong_key_is_unauthenticated_not_a_role(self):
        self.c.start_master()
        bad = self.c.path("wrong.key")
        with open(bad, "w") as f:
            f.write("0" * 64 + "\n")
        self.assert_refused(self.cli_with(bad, "nodes"), "UNAUTHENTICATED",
                            "missing or wrong auth key")
        # A client command does not read CRAWLAB_AUTH_KEY, and refuses the node key's flags.
        rc, out, err = self.c.run_cli("nodes", "--master=%s" % self.c.master_addr,
                                      "--auth-key-file=%s" % self.c.key_file)
        self.assertEqual(rc, 2, err)
        self.assertIn("--admin-key-file", err)

    def test_admin_key_from_the_environment_as_the_readme_shows(self):
        self.c.start_master()
        (key,) = self.online(self.c.start_worker("w1"))
        env = dict(os.environ, CRAWLAB_ADMIN_KEY=read_key(self.c.admin_key_file))
        rc, out, err = self.c.run_cli("nodes", "--json", "--master=%s" % self.c.master_addr,
                                      env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual([n["key"] for n in json.loads(out)], [key])
        # The node key in the environment is ignored by client commands: no key, refused.
        env = dict(os.environ, CRAWLAB_AUTH_KEY=read_key(self.c.key_file))
        env.pop("CRAWLAB_ADMIN_KEY", None)
        rc, out, err = self.c.run_cli("nodes", "--master=%s" % self.c.master_addr, env=env)
        self.assertEqual(rc, 3, err)
        self.assertIn("UNAUTHENTICATED", err)


class TlsRoles(harness.ClusterTest, harness.TaskOps):

    def setUp(self):
        super().setUp()
        self.pki = self.c.path("pki")
        self.cert("init", "--dir=%s" % self.pki, "--master-host=localhost,127.0.0.1")
        self.cert("issue", "--dir=%s" % self.pki, "--name=alice", "--role=admin")
        self.c.cli_args = self.tls("alice")

    def cert(self, *args):
        rc, out, err = self.c.run_cli("cert", *args)
        self.assertEqual(rc, 0, "cert %r: %s" % (args, err))
        return out

    def pem(self, name, ext="pem"):
        return os.path.join(self.pki, "%s.%s" % (name, ext))

    def tls(self, name):
        return ["--tls-ca=%s" % self.pem("ca"), "--tls-cert=%s" % self.pem(name),
                "--tls-key=%s" % self.pem(name, "key")]

    def start_master(self, extra=()):
        return self.c.start_master(extra=["--tls-cert=%s" % self.pem("master"),
                                          "--tls-key=%s" % self.pem("master", "key"),
                                          "--tls-ca=%s" % self.pem("ca")] + list(extra))

    def start_worker(self, name, cert=None, node_key=None, extra=()):
        """A worker presenting cert (default: one issued for it, of the worker role) with node
        key node_key (default: its name)."""
        if cert is None:
            cert = name
            if not os.path.exists(self.pem(name)):
                self.cert("issue", "--dir=%s" % self.pki, "--name=%s" % name)
        return self.c.start_worker(name, extra=self.tls(cert) +
                                   ["--node-key=%s" % (node_key or name)] + list(extra))

    def online(self, w):
        w.wait_log(REGISTERED)
        return find_node(self.c.wait_status("online", names=[w.name]), name=w.name)["key"]

    def refused_registration(self, w, m, master_line):
        w.wait_log("registration refused: PERMISSION_DENIED", count=2)
        m.wait_log(master_line)
        self.assertEqual(w.count(REGISTERED), 0)
        self.assertTrue(w.alive(), w.tail())
        self.assertIsNone(find_node(self.c.nodes(), name=w.name))

    def openssl_cert(self, name, subject):
        """A client certificate signed by our CA with the given subject, made by openssl."""
        openssl = shutil.which("openssl")
        if not openssl:
            self.skipTest("no openssl to make a certificate the cert command does not make")
        ext = self.c.path("%s.ext" % name)
        with open(ext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n")
        key, csr = self.pem(name, "key"), self.c.path("%s.csr" % name)
        for argv in (["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                     ["req", "-new", "-key", key, "-subj", subject, "-out", csr],
                     ["x509", "-req", "-in", csr, "-CA", self.pem("ca"), "-CAkey",
                      self.pem("ca", "key"), "-set_serial", "4242", "-days", "2", "-sha256",
                      "-extfile", ext, "-out", self.pem(name)]):
            p = subprocess.run([openssl] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=harness.CLI_TIMEOUT)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
        os.chmod(key, 0o600)

    # ---- the tests

    def test_the_readme_tls_section_word_for_word(self):
        """Runs the commands of README.md's TLS section as written, with three substitutions
        that put them on this machine: master.example.com is localhost, 10.0.0.1 is 127.0.0.1,
        the port is a free one (the master gets --listen for it); the worker gets a data
        directory of its own (on its machine the default would do). The copies the comments
        ask for are made here, into the directory every command runs in."""
        readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                              "README.md")
        with open(readme) as f:
            text = f.read()
        block = text.split("\n## TLS\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
        commands = " ".join(line.strip() for line in block.replace("\\\n", " ").splitlines()
                            if line.strip() and not line.lstrip().startswith("#")).split(
                                "crawlab-node ")[1:]
        self.assertEqual(len(commands), 5, commands)
        work = self.c.path("readme")
        os.makedirs(work)
        self.c.port = harness.free_port()
        self.c.master_dir = os.path.join(work, "master")
        procs = {}
        for cmd in commands:
            words = cmd.replace("master.example.com", "localhost").replace(
                "10.0.0.1", "127.0.0.1").replace(":9666", ":%d" % self.c.port).split()
            log = None
            if words[-1] == "&":
                words, log = words[:-2], words[-2][len("2>"):]
            if words[0] == "--role=master":
                words.append("--listen=127.0.0.1:%d" % self.c.port)
            if words[0] == "--role=worker":
                words.append("--data-dir=%s" % os.path.join(work, "worker-data"))
                shutil.copy(self.c.key_file, os.path.join(work, "auth.key"))
            if words[0] == "nodes":
                shutil.copy(self.c.admin_key_file, os.path.join(work, "admin.key"))
                procs["worker"].wait_log(REGISTERED)
            if log:
                p = self.c.spawn(words[0].split("=")[-1], [self.c.bin] + words, cwd=work)
                procs[p.name] = p
                if p.name == "master":
                    p.wait_log("master listening on")
            else:
                rc, out, err = self.c.run_cli(*words, cwd=work)
                self.assertEqual(rc, 0, "%s: %s" % (" ".join(words), err))
        # The last command, nodes as alice: the worker, online, its key its certificate's name.
        self.assertRegex(out, r"(?m)^worker\s.*online")
        for f in ("auth.key", "admin.key"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(work, "master", f)).st_mode),
                             0o600)

    def test_worker_certificate_cannot_submit_and_admin_certificate_can(self):
        m = self.start_master()
        key = self.online(self.start_worker("w1"))
        # The worker's certificate with the right admin key: refused, whatever the command.
        for command, args in (("submit", ("--", "echo", "no")), ("nodes", ()), ("tasks", ())):
            rc, out, err = self.c.run_cli(command, "--master=%s" % self.c.master_addr,
                                          "--admin-key-file=%s" % self.c.admin_key_file,
                                          *self.tls("w1"), *args)
            self.assertEqual(rc, 3, err)
            self.assertIn("PERMISSION_DENIED", err)
            self.assertIn(NOT_ADMIN_CERT, err)
        m.wait_log(NOT_ADMIN_CERT)
        self.assertEqual(self.tasks(), {})
        # cert init's worker.pem is a worker's too.
        rc, out, err = self.c.run_cli("submit", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file,
                                      *self.tls("worker"), "--", "echo", "no")
        self.assertEqual(rc, 3, err)
        self.assertIn(NOT_ADMIN_CERT, err)
        # alice's admin certificate: the task runs.
        tid = self.submit1("--node=%s" % key, "--", "echo", "by alice")
        self.assertEqual(self.wait_final([tid])[tid]["status"], "finished")
        self.assertEqual(self.logs(tid), ["by alice"])

    def test_admin_certificate_cannot_register_even_under_its_own_name(self):
        m = self.start_master()
        w = self.start_worker("alice", cert="alice", extra=["--log-level=debug"])
        self.refused_registration(w, m, ADMIN_CERT_REFUSED)

    def test_node_keys_are_bound_to_certificates_by_default(self):
        m = self.start_master()
        self.online(self.start_worker("w1"))
        thief = self.start_worker("thief", cert="w1", node_key="w2", extra=["--log-level=debug"])
        self.refused_registration(thief, m, "node w2: refused a registration")

    def test_binding_can_be_turned_off(self):
        m = self.start_master(extra=["--no-tls-bind-node-key"])
        w = self.start_worker("any", cert="worker", node_key="n-9")
        self.assertEqual(self.online(w), "n-9")
        self.assertEqual(m.count("refused a registration"), 0)

    def test_certificate_without_a_role_is_a_workers(self):
        # As `cert issue` made them before roles: organization and common name only.
        self.openssl_cert("legacy", "/O=crawlab-node/CN=legacy")
        m = self.start_master()
        key = self.online(self.start_worker("legacy", cert="legacy"))
        self.assertEqual(key, "legacy")
        rc, out, err = self.c.run_cli("nodes", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file,
                                      *self.tls("legacy"))
        self.assertEqual(rc, 3, err)
        self.assertIn(NOT_ADMIN_CERT, err)
        m.wait_log(NOT_ADMIN_CERT)

    def test_certificate_with_an_unknown_role_may_call_nothing(self):
        self.openssl_cert("odd", "/O=crawlab-node/OU=crawlab-node:root/CN=odd")
        m = self.start_master()
        w = self.start_worker("odd", cert="odd", extra=["--log-level=debug"])
        self.refused_registration(w, m, INVALID_CERT)
        rc, out, err = self.c.run_cli("nodes", "--master=%s" % self.c.master_addr,
                                      "--admin-key-file=%s" % self.c.admin_key_file,
                                      *self.tls("odd"))
        self.assertEqual(rc, 3, err)
        self.assertIn(INVALID_CERT, err)


if __name__ == "__main__":
    harness.main()
