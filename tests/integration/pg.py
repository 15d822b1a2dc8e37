"""A real PostgreSQL for the tests: Debian's postgresql-15 server (scripts/debian-packages.txt),
initialised in a temporary directory and listening on a free 127.0.0.1 port only, with or
without TLS required (Server.start(tls=(cert, key))).

    import pg
    server = pg.Server.start()          # initdb, postgres, waits until it accepts connections
    server.conninfo("crawlab_test")     # "host=127.0.0.1 port=N user=crawlab dbname=crawlab_test"
    server.createdb("crawlab_test")
    server.stop()                       # fast shutdown by pid, directory removed

PostgreSQL refuses to run as root: as root (CI), the server runs as the `postgres` user that
Debian's package creates, in a directory chowned to it; otherwise as the current user. The
superuser is `crawlab`, trusted on 127.0.0.1 without a password: a throwaway server for this
machine's tests (its Unix socket is in its own directory, mode 0700). The server's writes are not synced
(fsync=off): a test checks what the store asks of it, not the disk under it (a benchmark of
durable figures asks for Server.start(fsync=True)). Its log is the directory's postgres.log; a
server that fails to start fails the wait with that log's tail.
"""

import atexit
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile

import harness

PG_BIN = "/usr/lib/postgresql/15/bin"
SUPERUSER = "crawlab"
READY = "database system is ready to accept connections"


class Server:
    def __init__(self, root, port, user, proc):
        self.root = root
        self.port = port
        self.user = user
        self.proc = proc

    @classmethod
    def start(cls, tls=None, timeout=harness.WAIT, fsync=False):
        """tls: (certificate file, key file) for a server that requires TLS on 127.0.0.1
        (ssl=on, hostssl lines only); None for one without TLS. fsync: the server syncs its
        writes (fsync=on; synchronous_commit is on, PostgreSQL's default, either way: a commit
        returns once its WAL is flushed, and with fsync on, flushed means on disk)."""
        user = None
        if os.geteuid() == 0:
            user = "postgres"
        root = tempfile.mkdtemp(prefix="crawlab-pg-")
        try:
            if user:
                pw = pwd.getpwnam(user)
                os.chown(root, pw.pw_uid, pw.pw_gid)
            data = os.path.join(root, "data")
            init = subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", data, "-U", SUPERUSER,
                                   "--auth=trust", "--no-sync", "--encoding=UTF8",
                                   "--locale=C"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, user=user, timeout=120)
            if init.returncode != 0:
                raise AssertionError("initdb failed (%d): %s"
                                     % (init.returncode, init.stdout.decode(errors="replace")))
            options = []
            if tls:
                options = cls._require_tls(root, data, tls, user)
            port = harness.free_port()
            proc = harness.Proc("postgres", [
                os.path.join(PG_BIN, "postgres"), "-D", data, "-p", port,
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + root,
                "-c", "fsync=%s" % ("on" if fsync else "off"),
                "-c", "logging_collector=off"] + options,
                os.path.join(root, "postgres.log"), cwd=root, user=user)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        server = cls(root, port, user, proc)
        # A run that ends before the test stops the server still does not leave it behind:
        # registered after the harness's sweep, this runs before it.
        atexit.register(server.stop)
        try:
            proc.wait_log(READY, timeout=timeout)
        except BaseException:
            print("\n".join(proc.tail()), file=sys.stderr)
            server.stop()
            raise
        return server

    @staticmethod
    def _require_tls(root, data, tls, user):
        """Copies the certificate and key where the server reads them (the key its user's
        alone, as it demands) and allows TCP connections with TLS only; returns the options."""
        files = []
        for src, name in zip(tls, ("server.crt", "server.key")):
            dst = os.path.join(root, name)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if user:
                pw = pwd.getpwnam(user)
                os.chown(dst, pw.pw_uid, pw.pw_gid)
            files.append(dst)
        with open(os.path.join(data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
        return ["-c", "ssl=on", "-c", "ssl_cert_file=" + files[0],
                "-c", "ssl_key_file=" + files[1]]

    def conninfo(self, dbname="postgres"):
        """A libpq connection string for dbname as the superuser, over TCP on 127.0.0.1."""
        return "host=127.0.0.1 port=%d user=%s dbname=%s" % (self.port, SUPERUSER, dbname)

    def psql(self, sql, dbname="postgres"):
        """Runs sql with Debian's psql; returns its output (unaligned, tuples only)."""
        out = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t",
                              "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(dbname), "-c", sql],
                             stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=harness.CLI_TIMEOUT)
        if out.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, out.stderr.decode(errors="replace")))
        return out.stdout.decode()

    def createdb(self, name):
        self.psql('CREATE DATABASE "%s"' % name)

    def pause(self):
        """Stops the server (fast shutdown: every session ends) and keeps its directory, so that
        resume() brings it back with its data on the same port: a database outage."""
        self.proc.signal(signal.SIGINT)
        self.proc.wait_exit()

    def resume(self, timeout=harness.WAIT):
        self.proc = harness.Proc("postgres", self.proc.argv, self.proc.log_path + ".resumed",
                                 cwd=self.root, user=self.user)
        self.proc.wait_log(READY, timeout=timeout)

    def stop(self):
        """Fast shutdown (SIGINT: sessions are ended), SIGKILL if it outlasts the grace, then
        the directory goes. Returns postgres's exit status."""
        self.proc.signal(signal.SIGINT)
        try:
            rc = self.proc.wait_exit()
        except harness.Timeout:
            rc = self.proc.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.stop)
        return rc
