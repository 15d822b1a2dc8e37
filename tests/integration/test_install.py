#!/usr/bin/python3
"""`meson install --skip-subprojects` into a DESTDIR: every file in its place and nothing else,
both systemd units accepted by `systemd-analyze verify`, and the installed binary keeping the
units' contract: READY=1 on $NOTIFY_SOCKET once the master listens or the worker registered, and
exit status 1 (which the units do not restart) with the reason in its last line when the data
directory is not writable.

The build directory, meson and the install directories come from the environment meson sets for
this test (tests/integration/meson.build)."""

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ENV = os.environ
UNITS = ("crawlab-node-master.service", "crawlab-node-worker.service")
NOBODY = 65534
READY_WAIT = harness.WAIT

_destdir = None


def setUpModule():
    """One `meson install --skip-subprojects` (the README's) for every test of this file, into a
    directory anyone may read (the unwritable-directory test runs the installed binary as another
    user)."""
    global _destdir
    _destdir = tempfile.mkdtemp(prefix="crawlab-install-")
    os.chmod(_destdir, 0o755)
    subprocess.run([ENV["CRAWLAB_MESON"], "install", "-C", ENV["CRAWLAB_BUILD_ROOT"],
                    "--no-rebuild", "--skip-subprojects", "--quiet", "--destdir", _destdir],
                   check=True, stdin=subprocess.DEVNULL, timeout=120)


def tearDownModule():
    shutil.rmtree(_destdir, ignore_errors=True)


def installed(path):
    """path (absolute, as installed) inside the DESTDIR."""
    return os.path.join(_destdir, path.lstrip("/"))


def expected_files():
    """{installed path: mode} of everything `meson install` must put in place."""
    prefix = ENV["CRAWLAB_INSTALL_PREFIX"]
    under = lambda d: d if os.path.isabs(d) else os.path.join(prefix, d)  # noqa: E731
    files = {
        os.path.join(under(ENV["CRAWLAB_INSTALL_BINDIR"]), "crawlab-node"): 0o755,
        os.path.join(under(ENV["CRAWLAB_INSTALL_MANDIR"]), "man1", "crawlab-node.1"): 0o644,
        os.path.join(under(ENV["CRAWLAB_INSTALL_SYSUSERSDIR"]), "crawlab-node.conf"): 0o644,
        os.path.join(under(ENV["CRAWLAB_INSTALL_DATADIR"]), "doc", "crawlab-node",
                     "crawlab-node.default"): 0o644,
    }
    for unit in UNITS:
        files[os.path.join(under(ENV["CRAWLAB_INSTALL_UNITDIR"]), unit)] = 0o644
    return files


def unit_path(unit):
    return [p for p in expected_files() if p.endswith("/" + unit)][0]


def read_unit(unit):
    """The unit's [Service] etc. as {section: {key: [values]}} (a key may repeat)."""
    out = {}
    section = None
    with open(installed(unit_path(unit))) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return out


def bind_notify_socket(directory):
    """A datagram socket where a service manager would listen; returns (socket, its path)."""
    path = os.path.join(directory, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    return s, path


def next_datagram(sock, timeout=READY_WAIT):
    """The next datagram on sock, as text; fails the test when none comes within timeout."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise harness.Timeout("no datagram on the notify socket within %.0f s" % timeout)
    return sock.recv(4096).decode()


class Install(harness.ClusterTest, harness.TaskOps):

    def test_every_file_is_installed_where_expected_and_nothing_else(self):
        want = expected_files()
        got = {}
        for root, _, names in os.walk(_destdir):
            for n in names:
                p = os.path.join(root, n)
                got["/" + os.path.relpath(p, _destdir)] = os.stat(p).st_mode & 0o7777
        self.assertEqual(got, want)

    def test_installed_binary_and_man_page_are_the_built_ones(self):
        binary = [p for p in expected_files() if p.endswith("/crawlab-node")][0]
        with open(installed(binary), "rb") as a, open(harness.BIN, "rb") as b:
            self.assertTrue(a.read() == b.read(), "installed binary differs from %s" % harness.BIN)
        rc, out, err = harness.run_cli("--version", binary=installed(binary))
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("crawlab-node "), out)
        man = [p for p in expected_files() if p.endswith("/crawlab-node.1")][0]
        src = os.path.join(harness.HERE, "..", "..", "man", "crawlab-node.1")
        with open(installed(man)) as a, open(src) as b:
            self.assertEqual(a.read(), b.read())

    def test_units_run_the_installed_binary_as_a_notify_service(self):
        binary = os.path.join(ENV["CRAWLAB_INSTALL_PREFIX"], ENV["CRAWLAB_INSTALL_BINDIR"],
                              "crawlab-node")
        for unit, role, user in (("crawlab-node-master.service", "master", "crawlab-node"),
                                 ("crawlab-node-worker.service", "worker",
                                  "crawlab-node-worker")):
            svc = read_unit(unit)["Service"]
            self.assertEqual(svc["Type"], ["notify"], unit)
            self.assertEqual(svc["ExecStart"][0].split()[:2], [binary, "--role=" + role], unit)
            self.assertEqual(svc["EnvironmentFile"], ["-/etc/default/crawlab-node"], unit)
            self.assertEqual(svc["User"], [user], unit)
            self.assertEqual(svc["StateDirectory"], [user], unit)
            self.assertIn("--data-dir=${STATE_DIRECTORY}", svc["ExecStart"][0], unit)
            self.assertEqual(svc["Restart"], ["on-failure"], unit)
            # A start that cannot succeed (exit 1) or a bad command line (2) is not restarted.
            self.assertEqual(sorted(svc["RestartPreventExitStatus"][0].split()), ["1", "2"])
            self.assertEqual(svc["NoNewPrivileges"], ["yes"], unit)
            self.assertEqual(svc["CapabilityBoundingSet"], [""], unit)
            self.assertEqual(svc["ProtectSystem"], ["strict"], unit)
        # The worker's tasks are arbitrary programs: it must not get the master's filters.
        worker = read_unit("crawlab-node-worker.service")["Service"]
        for key in ("SystemCallFilter", "MemoryDenyWriteExecute", "RestrictNamespaces"):
            self.assertNotIn(key, worker)
        self.assertEqual(worker["KillMode"], ["mixed"])
        # Each task gets a cgroup of its own under the unit's: the subtree must be the worker's.
        self.assertEqual(worker["Delegate"], ["yes"])
        self.assertNotIn("ProtectControlGroups", worker)
        users = open(installed([p for p in expected_files()
                                if p.endswith("sysusers.d/crawlab-node.conf")][0])).read()
        for user in ("crawlab-node", "crawlab-node-worker"):
            self.assertRegex(users, r"(?m)^u %s " % user)

    def test_systemd_analyze_verifies_both_units(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("no systemd-analyze on this machine (Debian's systemd package)")
        # A root holding the installed tree and the system's targets and slices, which the units'
        # default dependencies name; verify resolves ExecStart and man: inside it.
        root = self.c.path("root")
        shutil.copytree(_destdir, root, symlinks=True)
        targets = os.path.join(root, "usr", "lib", "systemd", "system")
        os.makedirs(targets, exist_ok=True)
        for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
            if os.path.isdir(d):
                for n in os.listdir(d):
                    if n.endswith((".target", ".slice")):
                        shutil.copy(os.path.join(d, n), targets)
        env = dict(os.environ, MANPATH=os.path.join(root, ENV["CRAWLAB_INSTALL_PREFIX"].lstrip("/"),
                                                    ENV["CRAWLAB_INSTALL_MANDIR"]))
        p = subprocess.run([analyze, "verify", "--root=" + root] + [unit_path(u) for u in UNITS],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=60)
        # verify exits 0 even for settings it ignores; anything it prints is a fault here.
        self.assertEqual((p.returncode, p.stdout.decode()), (0, ""))

    def test_master_says_ready_once_it_listens_and_worker_once_it_registered(self):
        c = self.c
        c.bin = installed([p for p in expected_files() if p.endswith("/crawlab-node")][0])
        sock, path = bind_notify_socket(c.dir)
        self.addCleanup(sock.close)
        saved = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = path
        self.addCleanup(os.environ.update, {"NOTIFY_SOCKET": saved} if saved else {})
        self.addCleanup(os.environ.pop, "NOTIFY_SOCKET", None)

        m = c.start_master(wait=False)
        self.assertEqual(next_datagram(sock), "READY=1")
        # The master logs that it listens before it says so: the line is there already.
        self.assertEqual(m.count("master listening on"), 1, m.tail())

        # The worker starts before its master is back, so READY=1 waits for the registration.
        m.stop()
        w = c.start_worker("w1")
        w.wait_log("cannot connect")
        c.start_master()
        self.assertEqual(next_datagram(sock), "READY=1")  # the master's
        self.assertEqual(next_datagram(sock), "READY=1")  # the worker's
        self.assertEqual(w.count("registered with the master"), 1, w.tail())
        # Registering again (after the master restarted) says nothing more.
        lost = w.count("cannot connect")
        c.master.stop()
        w.wait_log("cannot connect", count=lost + 1)
        os.environ.pop("NOTIFY_SOCKET")  # this master is no unit of ours
        c.start_master()
        w.wait_log("registered with the master", count=2, timeout=60)
        # The worker fetches tasks only after its on-line hook, which notifies, has returned: a
        # task that ran proves that a second READY=1 would have been sent by now.
        self.wait_final([self.submit1("--", "true")])
        self.assertEqual(select.select([sock], [], [], 0)[0], [])

    def test_unwritable_data_directory_fails_the_start_with_status_1_and_the_reason(self):
        binary = installed([p for p in expected_files() if p.endswith("/crawlab-node")][0])
        run_as = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                self.skipTest("root cannot be refused a directory, and there is no setpriv to "
                              "run as another user")
            run_as = [setpriv, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
        base = tempfile.mkdtemp(prefix="crawlab-ro-")
        self.addCleanup(shutil.rmtree, base, True)
        os.chmod(base, 0o755)
        data = os.path.join(base, "data")
        os.mkdir(data, 0o555)
        for role in ("master", "worker"):
            argv = run_as + [binary, "--role=" + role, "--data-dir=" + data,
                             "--listen=127.0.0.1:%d" % harness.free_port()
                             if role == "master" else "--insecure-no-auth"]
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=harness.CLI_TIMEOUT)
            lines = p.stderr.decode().splitlines()
            self.assertEqual(p.returncode, 1, (role, lines))
            self.assertTrue(lines, role)
            for line in lines:
                self.assertIn(" error %s: " % role, line)
            self.assertIn(data, lines[-1])
            self.assertIn("Permission denied", lines[-1])


if __name__ == "__main__":
    harness.main()
