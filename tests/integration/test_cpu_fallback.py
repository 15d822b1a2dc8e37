#!/usr/bin/python3
"""wolfSSL picks its x86-64 assembly at run time from CPUID: the same static binary must run on an
x86-64 CPU without AES-NI or AVX. qemu's user-mode emulator (Debian's qemu-user) runs it on the
`qemu64` CPU model, which has neither: a master and a worker run there with mutual TLS 1.3, their
TLS peers (the client commands) run natively with the assembly, and a task runs, logs and
returns an item. `--version` says which of the two each one uses. For the static build only;
skipped with the reason when qemu-x86_64 is missing."""

import os
import shutil
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NO_EXTENSIONS = "x86-64 assembly built in, idle on this CPU (no AES-NI, AVX1 or AVX2)"
EMULATED_WAIT = 60  # the emulator runs the daemons several times slower


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


AES_FIRST = "TLS_AES_128_GCM_SHA256"
CHACHA_FIRST = "TLS_CHACHA20_POLY1305_SHA256"


def negotiated_cipher(port, pki):
    """The suite a TLS master on port picks when offered OpenSSL's TLS 1.3 order (AES-256-GCM,
    ChaCha20-Poly1305, AES-128-GCM): the master's own preference decides."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    ctx.load_cert_chain(os.path.join(pki, "worker.pem"), os.path.join(pki, "worker.key"))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=EMULATED_WAIT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.cipher()[0]


class CpuFallback(harness.ClusterTest, harness.TaskOps):
    timeout = 240

    def setUp(self):
        self.qemu = shutil.which("qemu-x86_64")
        if not self.qemu:
            self.skipTest("no qemu-x86_64 on this machine (Debian's qemu-user)")
        super().setUp()
        rc, out, err = harness.run_cli("--version")
        self.assertEqual(rc, 0, err)
        if "assembly not built in" in out:
            self.skipTest("this binary links a wolfSSL without its assembly (-Dwolfssl=system)")
        self.emulated = [self.qemu, "-cpu", "qemu64"]

    def test_version_names_the_extensions_in_use_natively_and_none_on_qemu64(self):
        rc, out, err = harness.run_cli("--version")
        want = [name for name, flag in (("AES-NI", "aes"), ("AVX1", "avx"), ("AVX2", "avx2"))
                if flag in cpu_flags()]
        line = out.splitlines()[2]
        if want:
            self.assertTrue(line.endswith("x86-64 assembly on (%s)" % ", ".join(want)), line)
        else:
            self.assertTrue(line.endswith(NO_EXTENSIONS), line)
        rc, out, err = harness.run_cli("-cpu", "qemu64", harness.BIN, "--version",
                                       binary=self.qemu, timeout=EMULATED_WAIT)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.splitlines()[2].endswith(NO_EXTENSIONS), out)

    def test_native_master_prefers_aes_gcm_only_where_it_runs_with_aes_ni(self):
        c = self.c
        pki = c.path("pki")
        rc, out, err = c.run_cli("cert", "init", "--dir=" + pki, "--master-host=127.0.0.1")
        self.assertEqual(rc, 0, err)
        pem = lambda n: os.path.join(pki, n)  # noqa: E731
        c.start_master(extra=["--tls-cert=" + pem("master.pem"), "--tls-key=" + pem("master.key"),
                              "--tls-ca=" + pem("ca.pem")])
        rc, out, err = harness.run_cli("--version")
        self.assertEqual(negotiated_cipher(c.port, pki),
                         AES_FIRST if "AES-NI" in out else CHACHA_FIRST, out)

    def test_tls_master_and_worker_without_the_extensions_run_a_task(self):
        c = self.c
        pki = c.path("pki")
        rc, out, err = c.run_cli("cert", "init", "--dir=" + pki, "--master-host=127.0.0.1")
        self.assertEqual(rc, 0, err)
        rc, out, err = c.run_cli("cert", "issue", "--dir=" + pki, "--name=ops", "--role=admin")
        self.assertEqual(rc, 0, err)
        pem = lambda n: os.path.join(pki, n)  # noqa: E731
        client = ["--tls-ca=" + pem("ca.pem"), "--tls-cert=" + pem("worker.pem"),
                  "--tls-key=" + pem("worker.key")]
        m = c.start_master(prefix=self.emulated, wait=False,
                           extra=["--tls-cert=" + pem("master.pem"),
                                  "--tls-key=" + pem("master.key"), "--tls-ca=" + pem("ca.pem")])
        m.wait_log("master listening on", timeout=EMULATED_WAIT)
        # Without AES-NI the master prefers ChaCha20-Poly1305, whatever the client offers first.
        self.assertEqual(negotiated_cipher(c.port, pki), CHACHA_FIRST)
        # cert init's worker certificate names the node key "worker" (keys are bound to them).
        w = c.start_worker("w1", prefix=self.emulated, extra=client + ["--node-key=worker"])
        w.wait_log("registered with the master", timeout=EMULATED_WAIT)
        # The client commands run natively, with the assembly, and an admin certificate.
        c.cli_args = ["--tls-ca=" + pem("ca.pem"), "--tls-cert=" + pem("ops.pem"),
                      "--tls-key=" + pem("ops.key")]
        task = 'echo "over TLS"; echo \'{"type":"data","ipc":true,"payload":{"cpu":"qemu64"}}\''
        tid = self.submit1("--", "sh", "-c", task)
        t = self.wait_final([tid], timeout=EMULATED_WAIT)[tid]
        self.assertEqual(t["status"], "finished", t)
        self.assertEqual(self.logs(tid), ["over TLS"])
        self.assertEqual(self.results(tid), [{"cpu": "qemu64"}])
        self.assertEqual(m.count("refused a TLS connection"), 0, m.tail())


if __name__ == "__main__":
    harness.main()
