#!/usr/bin/python3
"""The OCI images of scripts/image.sh, built here from scratch: each is unpacked with umoci into a
directory, its files and configuration are checked, then a master runs from the distroless image
and a worker from the worker image, each under chroot as the images' user 65532, and a task runs,
logs and returns an item. Needs root (image.sh, chroot) and Debian's umoci and busybox-static;
skipped with the reason otherwise."""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SCRIPT = os.path.join(harness.HERE, "..", "..", "scripts", "image.sh")
UID = 65532

_out = None     # where image.sh put the images
_skip = None    # why this machine cannot build them


def setUpModule():
    global _out, _skip
    if os.geteuid() != 0:
        _skip = "image.sh and chroot need root (running as uid %d)" % os.geteuid()
        return
    for tool, package in (("umoci", "umoci"), ("chroot", "coreutils")):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")):
            _skip = "no %s on this machine (Debian's %s)" % (tool, package)
            return
    if not os.path.exists("/bin/busybox"):
        _skip = "no /bin/busybox on this machine (Debian's busybox-static)"
        return
    _out = tempfile.mkdtemp(prefix="crawlab-images-")
    p = subprocess.run(["/bin/sh", SCRIPT, "--bin=" + harness.BIN, "--out=" + _out],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    print(p.stdout.decode(), end="", flush=True)  # the sizes, into the test log
    if p.returncode != 0:
        raise AssertionError("image.sh failed (%d)" % p.returncode)


def tearDownModule():
    if _out:
        shutil.rmtree(_out, ignore_errors=True)


def blob(layout, digest):
    algo, hexd = digest.split(":")
    with open(os.path.join(layout, "blobs", algo, hexd), "rb") as f:
        return json.loads(f.read())


def image_config(name, tag="latest"):
    """The OCI image configuration of NAME:TAG, read from the layout's index and manifest."""
    layout = os.path.join(_out, name)
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    ref = [m for m in index["manifests"]
           if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(ref) == 1, index
    manifest = blob(layout, ref[0]["digest"])
    return blob(layout, manifest["config"]["digest"])


def tree(root):
    """{relative path: (type, uid, mode, link target)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
            out[os.path.relpath(p, root)] = (kind, st.st_uid, stat.S_IMODE(st.st_mode),
                                             os.readlink(p) if kind == "l" else None)
    return out


class Images(harness.ClusterTest, harness.TaskOps):

    def setUp(self):
        if _skip:
            self.skipTest(_skip)
        super().setUp()

    def unpack(self, name):
        """Unpacks NAME:latest into this test's directory; returns its root file system."""
        bundle = self.c.path(name + ".bundle")
        subprocess.run(["umoci", "unpack", "--image", os.path.join(_out, name) + ":latest",
                        bundle], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       timeout=120)
        return os.path.join(bundle, "rootfs")

    def check_common(self, name, role):
        cfg = image_config(name)
        self.assertEqual((cfg["os"], cfg["architecture"]), ("linux", "amd64"))
        c = cfg["config"]
        self.assertEqual(c["User"], "%d:%d" % (UID, UID))
        self.assertEqual(c["Entrypoint"], ["/crawlab-node"])
        # A container's network is its own: the master listens on all of its addresses.
        listen = ["--listen=0.0.0.0:9666"] if role == "master" else []
        self.assertEqual(c["Cmd"], ["--role=" + role, "--data-dir=/data"] + listen)
        self.assertEqual(list(c["ExposedPorts"]), ["9666/tcp"])
        self.assertEqual(list(c["Volumes"]), ["/data"])
        self.assertEqual(image_config(name, tag=self.version()), cfg)
        return c

    def version(self):
        rc, out, err = harness.run_cli("--version")
        return out.split()[1]

    def test_distroless_image_holds_the_binary_its_user_and_the_data_volume_only(self):
        c = self.check_common("crawlab-node", "master")
        self.assertNotIn("Env", c)
        root = self.unpack("crawlab-node")
        t = tree(root)
        self.assertEqual(sorted(t), ["crawlab-node", "data", "etc", "etc/group", "etc/passwd"])
        self.assertEqual(t["crawlab-node"][:3], ("f", 0, 0o755))
        self.assertEqual(t["data"][:3], ("d", UID, 0o700))
        with open(os.path.join(root, "etc", "passwd")) as f:
            self.assertRegex(f.read(), r"(?m)^nonroot:x:%d:%d:" % (UID, UID))

    def test_worker_image_adds_busybox_as_sh_and_coreutils(self):
        c = self.check_common("crawlab-node-worker", "worker")
        self.assertEqual(c["Env"], ["PATH=/bin"])
        t = tree(self.unpack("crawlab-node-worker"))
        self.assertEqual(t["bin/busybox"][:3], ("f", 0, 0o755))
        for applet in ("sh", "cat", "ls", "echo", "grep", "sed"):
            self.assertEqual(t["bin/" + applet], ("l", 0, 0o777, "busybox"))
        self.assertEqual(t["tmp"][:3], ("d", 0, 0o1777))
        extra = {p.split("/")[0] for p in t} - {"crawlab-node", "data", "etc", "bin", "tmp"}
        self.assertEqual(extra, set())

    def test_master_from_the_distroless_image_and_worker_from_the_worker_image_run_a_task(self):
        c = self.c
        master_root = self.unpack("crawlab-node")
        worker_root = self.unpack("crawlab-node-worker")
        chroot = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
        # A container runtime gives every container /dev/null; a task's standard input is it.
        dev = os.path.join(worker_root, "dev")
        os.mkdir(dev)
        os.mknod(os.path.join(dev, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(os.path.join(dev, "null"), 0o666)

        c.bin = "/crawlab-node"  # the path inside each root, for the daemons' argv
        c.master_dir = "/data"
        user = "--userspec=%d:%d" % (UID, UID)
        c.start_master(prefix=[chroot, user, master_root])
        key = os.path.join(worker_root, "auth.key")
        shutil.copy(os.path.join(master_root, "data", "auth.key"), key)
        os.chown(key, UID, UID)
        w = c.start_worker("w1", data_dir="/data", key_file="/auth.key",
                           prefix=[chroot, user, worker_root])
        w.wait_log("registered with the master")

        # From outside: the built binary, with the key through the master's root.
        c.bin = harness.BIN
        c.master_dir = os.path.join(master_root, "data")
        task = ('echo "hello from $(cat /etc/hostname 2>/dev/null || echo the image)"; '
                'ls /bin/sh; id -u; '
                'echo \'{"type":"data","ipc":true,"payload":{"shell":"busybox"}}\'')
        tid = self.submit1("--", "sh", "-c", task)
        t = self.wait_final([tid])[tid]
        self.assertEqual(t["status"], "finished", t)
        self.assertEqual(self.logs(tid), ["hello from the image", "/bin/sh", str(UID)])
        self.assertEqual(self.results(tid), [{"shell": "busybox"}])
        # The task ran in the worker's root, in its task directory under the volume.
        self.assertTrue(os.path.isdir(os.path.join(worker_root, "data", "tasks")))

    def test_a_failed_build_leaves_the_previous_images_and_nothing_half_made(self):
        out = self.c.path("out")
        shutil.copytree(_out, out, symlinks=True)
        before = tree(out)
        # umoci that fails where the worker image's layer is written, after the distroless image
        # was complete and moved into place.
        fake = self.c.path("fakebin")
        os.mkdir(fake)
        with open(os.path.join(fake, "umoci"), "w") as f:
            f.write('#!/bin/sh\ncase "$1 $3" in "repack "*/crawlab-node-worker:*) '
                    'echo "umoci: disk full" >&2; exit 1 ;; esac\nexec %s "$@"\n'
                    % shutil.which("umoci"))
        os.chmod(os.path.join(fake, "umoci"), 0o755)
        env = dict(os.environ, PATH=fake + ":" + os.environ["PATH"])
        p = subprocess.run(["/bin/sh", SCRIPT, "--bin=" + harness.BIN, "--out=" + out], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"disk full", p.stdout)
        self.assertIn(b"crawlab-node (crawlab-node:", p.stdout)  # the first image was made
        after = tree(out)
        self.assertEqual(sorted(p for p in after if p.startswith(".build")), [])
        # The worker image is the previous one, byte for byte where it matters: its index.
        with open(os.path.join(_out, "crawlab-node-worker", "index.json"), "rb") as a, \
                open(os.path.join(out, "crawlab-node-worker", "index.json"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(sorted(k for k in after if k.startswith("crawlab-node-worker")),
                         sorted(k for k in before if k.startswith("crawlab-node-worker")))


class ImageTools(harness.ClusterTest):

    def test_without_umoci_image_sh_names_the_package_and_builds_nothing(self):
        bare = self.c.path("bin")
        os.mkdir(bare)
        os.symlink(shutil.which("dirname"), os.path.join(bare, "dirname"))
        out = self.c.path("out")
        p = subprocess.run(["/bin/sh", SCRIPT, "--out=" + out], env={"PATH": bare},
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"install Debian's umoci", p.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    harness.main()
