"""`emberctl pack import`: user packs from OCI images (docs/packs.md).

Builds a tiny image itself (umoci: a busybox-static root), imports it into a private copy of
IMAGES_DIR (never the real one) from an OCI layout and from a `docker save` tarball, runs code in
a sandbox of a daemon started on that copy, and checks that broken inputs are refused with the
catalog and the packs byte-identical. Needs root, skopeo, umoci, mksquashfs and /bin/busybox
(busybox-static; scripts/install-deps.sh installs them all).
Run: cd tests/e2e && IMAGES_DIR=... /usr/bin/python3 -m unittest test_oci_import -v"""

import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
from unittest import mock

import harness

EMBERCTL = os.path.join(harness.BIN, "emberctl")
LIB = os.path.join(harness.REPO, "rootfs", "lib")
TOOLS = ("skopeo", "umoci", "mksquashfs", "zstd")
BUSYBOX = "/bin/busybox"
# An import boots a VM for its smoke test: seconds under TCG, much more on a loaded machine.
IMPORT_TIMEOUT_S = 900


def missing_prerequisites():
    if os.geteuid() != 0:
        return "needs root (umoci keeps file owners; prepare-root.sh chowns)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/install-deps.sh)"
    if not os.path.isfile(BUSYBOX):
        return f"{BUSYBOX} is missing (busybox-static)"
    if not os.access(EMBERCTL, os.X_OK):
        return f"{EMBERCTL} is missing (make)"
    return None


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def check_run(argv):
    proc = run(argv)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr}")
    return proc


def make_busybox_layout(layout, applets=("sh", "echo", "cat", "ls", "id")):
    """An OCI layout with one image, tag `latest`: /bin/busybox and applets, Cmd ["sh"], Env
    PATH and GREETING, WorkingDir /srv/app."""
    work = tempfile.mkdtemp(prefix="oci-root.")
    try:
        root = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "srv", "app"))
        shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
        for applet in applets:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        check_run(["umoci", "init", "--layout", layout])
        check_run(["umoci", "new", "--image", f"{layout}:latest"])
        check_run(["umoci", "insert", "--image", f"{layout}:latest", root, "/"])
        check_run(["umoci", "config", "--image", f"{layout}:latest", "--config.cmd", "sh",
                   "--config.env", "PATH=/bin", "--config.env", "GREETING=from-image",
                   "--config.workingdir", "/srv/app"])
    finally:
        shutil.rmtree(work)


def blob_path(layout, digest):
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


def put_blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(layout, digest), "wb") as f:
        f.write(data)
    return digest, len(data)


def layout_with_layer(base, dest, layer_tar):
    """A copy of layout base whose `latest` image has layer_tar (uncompressed tar bytes, or
    raw bytes with raw=True) gzipped on top, the manifest, config and index rewritten to match."""
    shutil.copytree(base, dest)
    with open(os.path.join(dest, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    desc = index["manifests"][0]
    with open(blob_path(dest, desc["digest"]), encoding="utf-8") as f:
        manifest = json.load(f)
    with open(blob_path(dest, manifest["config"]["digest"]), encoding="utf-8") as f:
        config = json.load(f)
    gz = gzip.compress(layer_tar, mtime=0)
    digest, size = put_blob(dest, gz)
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "digest": digest, "size": size})
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(layer_tar).hexdigest())
    cdigest, csize = put_blob(dest, json.dumps(config).encode())
    manifest["config"].update(digest=cdigest, size=csize)
    mdigest, msize = put_blob(dest, json.dumps(manifest).encode())
    desc.update(digest=mdigest, size=msize)
    with open(os.path.join(dest, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f)
    return dest


def tar_of(*members):
    """Uncompressed tar bytes of (TarInfo, data) pairs."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info


def import_lib(name):
    """A module of rootfs/lib (packctl, userpacks), for checks that need no VM."""
    sys.path.insert(0, LIB)
    try:
        return __import__(name)
    finally:
        sys.path.remove(LIB)


def tree_state(images):
    """Every file of the catalog and the packs, byte for byte (sha256 for images)."""
    state = {}
    for top in ("packs.json", "user-packs", "packs"):
        path = os.path.join(images, top)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                state[top] = f.read()
            continue
        for dirpath, _, files in os.walk(path):
            for name in files:
                full = os.path.join(dirpath, name)
                with open(full, "rb") as f:
                    state[os.path.relpath(full, images)] = hashlib.sha256(f.read()).hexdigest()
    return state


@unittest.skipIf(missing_prerequisites(), missing_prerequisites() or "")
class OciImportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_images()
        cls.tmp = tempfile.mkdtemp(prefix="oci-import.", dir="/var/tmp")
        cls.images = os.path.join(cls.tmp, "images")
        # A copy of the real images without the download cache (never the real directory).
        shutil.copytree(harness.ALL_IMAGES_DIR, cls.images, symlinks=True,
                        ignore=lambda d, names: ["cache", "logs"] if d == harness.ALL_IMAGES_DIR
                        else [])
        cls.layout = os.path.join(cls.tmp, "busybox-oci")
        make_busybox_layout(cls.layout)
        cls.docker_tar = os.path.join(cls.tmp, "busybox-docker.tar")
        check_run(["skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{cls.layout}:latest",
                   f"docker-archive:{cls.docker_tar}:busybox:latest"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def pack(self, *args, addr="127.0.0.1:1"):
        """emberctl pack; addr: where it looks for a daemon to hint at (default: none there)."""
        return run([EMBERCTL, "--addr", addr, "pack", *args, "--images", self.images],
                   timeout=IMPORT_TIMEOUT_S)

    def imported(self, name, *args):
        proc = self.pack("import", name, *args)
        self.assertEqual(proc.returncode, 0, f"import {name} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def catalog_entry(self, name):
        with open(os.path.join(self.images, "packs.json"), encoding="utf-8") as f:
            found = [p for p in json.load(f)["packs"] if p["name"] == name]
        return found[0] if found else None

    def assert_refused(self, name, oci, *args, says):
        before = tree_state(self.images)
        proc = self.pack("import", name, "--oci", oci, *args)
        self.assertNotEqual(proc.returncode, 0, proc.stdout)
        for text in says:
            self.assertIn(text, proc.stderr)
        self.assertEqual(tree_state(self.images), before, "the refused import changed the catalog")
        self.assertEqual([e for e in os.listdir(self.images) if e.startswith(".work.")], [])
        return proc

    def test_imported_packs_run_code_in_sandboxes(self):
        proc = self.imported("bb-layout", "--oci", f"{self.layout}:latest")
        self.assertIn("smoke test in a VM", proc.stdout)
        self.assertIn("2 Env entries, directory /srv/app", proc.stdout)
        # This one takes its code as `sh -c CODE`: the smoke test and the execs run that way.
        self.imported("bb-docker", "--oci", self.docker_tar, "--description", "busybox (docker)",
                      "--memory-mib", "96", "--interpreter", "/bin/sh", "--interpreter", "-c",
                      "--code", "argument")
        entry = self.catalog_entry("bb-layout")
        self.assertEqual(entry["interpreter"], ["/bin/sh"])  # Cmd ["sh"] found on the image PATH
        self.assertEqual(entry["code"], "file")
        self.assertEqual((entry["env"], entry["cwd"]), (["PATH=/bin", "GREETING=from-image"],
                                                        "/srv/app"))
        self.assertEqual(entry["image"], "packs/user/bb-layout.squashfs")
        with open(os.path.join(self.images, "user-packs", "bb-layout.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f), entry)
        docker = self.catalog_entry("bb-docker")
        self.assertEqual(docker["defaults"]["memory_mib"], 96)
        self.assertEqual((docker["interpreter"], docker["code"]), (["/bin/sh", "-c"], "argument"))
        self.assertEqual(docker["description"], "busybox (docker)")
        self.assertIsNotNone(self.catalog_entry("python"))  # the built-in packs stay
        listed = self.pack("list").stdout
        self.assertIn("bb-layout", listed)
        self.assertIn("bb-docker", listed)

        daemon = harness.Daemon("--images", self.images)
        try:
            for name in ("bb-layout", "bb-docker"):
                sb = daemon.create(language_pack=name)
                # The image's Env and WorkingDir; the request's env wins on a name.
                status, body, _ = daemon.exec(sb["id"], "echo $((6*7)); id -u; pwd; "
                                              "echo $GREETING $PATH")
                self.assertEqual(status, 200, body)
                self.assertEqual(body["stdout"], "42\n1000\n/srv/app\nfrom-image /bin\n", body)
                status, body, _ = daemon.exec(sb["id"], "echo $GREETING", env={"GREETING": "mine"})
                self.assertEqual(status, 200, body)
                self.assertEqual(body["stdout"], "mine\n", body)
                # A shell context and a background process start there too.
                status, ctx, _ = daemon.request("POST", f"/sandboxes/{sb['id']}/contexts",
                                                {"language": "shell"})
                self.assertEqual(status, 201, ctx)
                status, body, _ = daemon.exec(sb["id"], "pwd; echo $GREETING",
                                              context_id=ctx["id"])
                self.assertEqual(status, 200, body)
                self.assertEqual(body["stdout"], "/srv/app\nfrom-image\n", body)
                status, proc, _ = daemon.request("POST", f"/sandboxes/{sb['id']}/processes",
                                                 {"cmd": ["sh", "-c", "pwd >/tmp/bg"]})
                self.assertEqual(status, 201, proc)
                harness.wait_for(lambda: daemon.exec(sb["id"], "cat /tmp/bg")[1]["stdout"]
                                 == "/srv/app\n", 120, "the process's directory")
                self.assertEqual(daemon.delete(sb["id"]), 204)
            # A daemon answers: emberctl says it still serves the catalog it read.
            proc = self.pack("remove", "bb-docker", addr=daemon.addr)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("still serves the catalog", proc.stderr)
            # emberctl reload: the daemon drops the removed pack, the other stays.
            proc = run([EMBERCTL, "--addr", daemon.addr, "reload"], timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn("removed   bb-docker\n", proc.stdout)
            status, body, _ = daemon.request("POST", "/sandboxes", {"language_pack": "bb-docker"})
            self.assertEqual(status, 400, body)
            served = {p["name"]: p for p in daemon.request("GET", "/packs")[1]["packs"]}
            self.assertEqual((served["bb-layout"]["env"], served["bb-layout"]["cwd"]),
                             (["PATH=/bin", "GREETING=from-image"], "/srv/app"))
            self.assertNotIn("env", served["python"])
        finally:
            daemon.stop()

        # An existing user pack needs --replace; then it is replaced.
        self.assert_refused_existing("bb-layout")
        self.imported("bb-layout", "--oci", self.layout, "--replace", "--description", "again")
        self.assertEqual(self.catalog_entry("bb-layout")["description"], "again")

        self.assertIsNone(self.catalog_entry("bb-docker"))
        self.assertFalse(os.path.exists(os.path.join(self.images, "packs/user/bb-docker.squashfs")))
        self.assertFalse(os.path.exists(os.path.join(self.images, "user-packs/bb-docker.json")))

    def assert_refused_existing(self, name):
        before = tree_state(self.images)
        proc = self.pack("import", name, "--oci", self.layout)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--replace", proc.stderr)
        self.assertEqual(tree_state(self.images), before)

    def test_image_without_a_shell_imports(self):
        """No /bin/sh in the image (as in distroless ones): the interpreter is found without
        running anything from the image."""
        layout = os.path.join(self.tmp, "no-shell")
        make_busybox_layout(layout, applets=())
        self.imported("noshell", "--oci", layout, "--interpreter", "/bin/busybox",
                      "--interpreter", "sh")
        self.assertEqual(self.catalog_entry("noshell")["interpreter"], ["/bin/busybox", "sh"])
        self.assertEqual(self.pack("remove", "noshell").returncode, 0)
        self.assertIsNone(self.catalog_entry("noshell"))

    def test_import_waits_for_the_images_lock(self):
        """rootfs/build.sh holds flock on IMAGES_DIR/.lock while it builds: an import waits."""
        before = tree_state(self.images)
        with open(os.path.join(self.images, ".lock"), "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            proc = subprocess.Popen([EMBERCTL, "--addr", "127.0.0.1:1", "pack", "import",
                                     "locked", "--oci", self.layout, "--images", self.images],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()
                self.assertIn("waiting", line)
                self.assertIsNone(proc.poll())
                self.assertEqual(tree_state(self.images), before)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            out, err = proc.communicate(timeout=IMPORT_TIMEOUT_S)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertIsNotNone(self.catalog_entry("locked"))
        self.assertEqual(self.pack("remove", "locked").returncode, 0)

    def test_smoke_cli_passes_and_fails_with_a_clear_message(self):
        """rootfs/lib/smoke.py as rootfs/build.sh calls it, on the built-in shell pack."""
        entry = self.catalog_entry("shell")
        entry_file = os.path.join(self.tmp, "shell-entry.json")
        with open(entry_file, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        base = [sys.executable, os.path.join(LIB, "smoke.py"), "--images", self.images,
                "--entry", entry_file, "--squashfs", os.path.join(self.images, entry["image"])]
        proc = run(base + ["--code", "echo $((6*7))", "--stdout", "42\n"],
                   timeout=IMPORT_TIMEOUT_S)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("smoke: ok", proc.stdout)
        proc = run(base + ["--code", "echo 41; echo oops >&2; exit 3", "--stdout", "42\n"],
                   timeout=IMPORT_TIMEOUT_S)
        self.assertEqual(proc.returncode, 1)
        for text in ("smoke test failed", 'expected:  "42\\n"', 'got:       "41\\n"',
                     "exit code: 3", "oops"):
            self.assertIn(text, proc.stderr)

    def test_builtin_name_is_refused(self):
        self.assert_refused("shell", self.layout, says=["built-in pack"])

    def test_corrupt_tarballs_are_refused(self):
        with open(self.docker_tar, "rb") as f:
            data = f.read()
        truncated = os.path.join(self.tmp, "truncated.tar")
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 2])
        self.assert_refused("broken", truncated, says=["truncated.tar", "not a readable tarball"])
        garbage = os.path.join(self.tmp, "garbage.tar")
        with open(garbage, "wb") as f:
            f.write(b"\x1f\x8b\x08 not really gzip" * 100)
        self.assert_refused("broken", garbage, says=["garbage.tar", "not a readable tarball"])

    def test_corrupt_layer_is_refused(self):
        good = tar_of((member("etc/motd"), b"hello\n" * 1000))
        layout = layout_with_layer(self.layout, os.path.join(self.tmp, "corrupt-layer"), good)
        with open(os.path.join(layout, "index.json"), encoding="utf-8") as f:
            mdigest = json.load(f)["manifests"][0]["digest"]
        with open(blob_path(layout, mdigest), encoding="utf-8") as f:
            last = json.load(f)["layers"][-1]["digest"]
        # Truncated in place: skopeo's copy or our digest check must notice.
        path = blob_path(layout, last)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        self.assert_refused("broken", layout, says=[last[:19]])
        # Digests right, but the tar inside is cut in a file's data: our scan must see it.
        cut = good[:512 + 3000]
        layout = layout_with_layer(self.layout, os.path.join(self.tmp, "cut-layer"), cut)
        self.assert_refused("broken", layout, says=["layer 1", "corrupt or truncated archive"])

    def test_unsafe_layers_are_refused_naming_layer_and_member(self):
        cases = {
            "dotdot": (tar_of((member("usr/../../x"), b"x")), "usr/../../x", "`..`"),
            "absolute": (tar_of((member("/abs"), b"x")), "/abs", "absolute path"),
            "device": (tar_of((member("dev-null", tarfile.CHRTYPE), b"")), "dev-null",
                       "device node"),
            "hardlink": (tar_of((member("etc/shadow-link", tarfile.LNKTYPE, "../../etc/shadow"),
                                 b"")), "etc/shadow-link", "hard link"),
            "symlink": (tar_of((member("a/up", tarfile.SYMTYPE, "../../../etc"), b"")), "a/up",
                        "climbs above the root"),
        }
        for label, (layer, name, why) in cases.items():
            with self.subTest(label):
                layout = layout_with_layer(self.layout, os.path.join(self.tmp, "bad-" + label),
                                           layer)
                self.assert_refused("bad", layout, says=["layer 1", f"member `{name}`", why])

    def test_symlink_where_guest_pieces_go_is_refused_and_host_untouched(self):
        """`var/cache -> /abs` is fine in a guest but finish-root.sh empties var/cache/ on the
        host: the import refuses it rather than follow it."""
        canary = os.path.join(self.tmp, "canary")
        os.makedirs(canary, exist_ok=True)
        with open(os.path.join(canary, "keep"), "w", encoding="utf-8") as f:
            f.write("host file\n")
        var = member("var", tarfile.DIRTYPE)
        var.mode = 0o755
        layer = tar_of((var, b""), (member("var/cache", tarfile.SYMTYPE, canary), b""))
        layout = layout_with_layer(self.layout, os.path.join(self.tmp, "var-cache-link"), layer)
        self.assert_refused("varlink", layout, says=["/var/cache is a symlink", canary])
        self.assertTrue(os.path.exists(os.path.join(canary, "keep")))

    def test_absolute_symlinks_are_accepted_and_resolved_inside_the_root(self):
        packctl = import_lib("packctl")
        link = member("usr/bin/sh", tarfile.SYMTYPE, "/bin/busybox")
        self.assertIsNone(packctl.check_member(link))
        self.assertIsNone(packctl.check_member(member("a/b/c", tarfile.SYMTYPE, "../x")))
        root = os.path.join(self.tmp, "symroot")
        os.makedirs(os.path.join(root, "bin"), exist_ok=True)
        os.makedirs(os.path.join(root, "usr", "bin"), exist_ok=True)
        shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
        if not os.path.lexists(os.path.join(root, "usr", "bin", "sh")):
            os.symlink("/bin/busybox", os.path.join(root, "usr", "bin", "sh"))
            os.symlink("/etc/passwd", os.path.join(root, "bin", "host-file"))
        self.assertTrue(packctl.is_executable_in(root, "/usr/bin/sh"))
        # resolved in the root, not on the host, where /etc/passwd exists
        self.assertFalse(packctl.is_executable_in(root, "/bin/host-file"))

    def test_zstd_layers_are_scanned(self):
        packctl = import_lib("packctl")
        for label, layer, refusal in (
                ("fine", tar_of((member("a"), b"x" * 1000)), None),
                ("device", tar_of((member("d", tarfile.BLKTYPE), b"")), "is a device node"),
                ("cut", tar_of((member("a"), b"x" * 4000))[:2000], "corrupt or truncated")):
            with self.subTest(label):
                blob = subprocess.run(["zstd", "-q", "-c"], input=layer, capture_output=True,
                                      check=True).stdout
                digest = hashlib.sha256(blob).hexdigest()
                path = os.path.join(self.tmp, "zstd-" + digest)
                with open(path, "wb") as f:
                    f.write(blob)
                layers = [({"digest": "sha256:" + digest}, path)]
                if refusal is None:
                    self.assertEqual(packctl.scan_layers(layers, 1 << 30, 100), (1000, 1))
                else:
                    with self.assertRaisesRegex(Exception, refusal):
                        packctl.scan_layers(layers, 1 << 30, 100)

    def test_failing_smoke_test_publishes_nothing(self):
        proc = self.assert_refused("smokefail", self.layout, "--smoke-code", "echo no",
                                   "--smoke-stdout", "yes\n",
                                   says=["smoke test failed", '"yes\\n"', '"no\\n"',
                                         "catalog is unchanged"])
        self.assertIn("smoke test in a VM", proc.stdout)

    def test_missing_interpreter_is_refused(self):
        self.assert_refused("nointerp", self.layout, "--interpreter", "/usr/bin/python3",
                            says=["/usr/bin/python3", "not an executable file"])

    def test_failed_publish_leaves_catalog_and_packs_byte_identical(self):
        packctl = import_lib("packctl")
        userpacks = import_lib("userpacks")
        images = os.path.join(self.tmp, "publish-images")
        os.makedirs(os.path.join(images, "packs", "user"))
        os.makedirs(os.path.join(images, "user-packs"))
        shutil.copy2(os.path.join(self.images, "packs.json"), images)
        old = dict(self.catalog_entry("shell"), name="old", image="packs/user/old.squashfs",
                   description="old")
        with open(os.path.join(images, "packs/user/old.squashfs"), "wb") as f:
            f.write(b"old image")
        userpacks.write_atomic(os.path.join(images, "user-packs/old.json"), json.dumps(old))
        userpacks.rewrite_catalog(images)
        before = tree_state(images)
        candidate = os.path.join(images, "packs/user/.old.squashfs.tmp.1")
        with open(candidate, "wb") as f:
            f.write(b"new image")
        new = dict(old, description="new")
        with mock.patch.object(userpacks, "rewrite_catalog", side_effect=OSError("disk full")):
            with self.assertRaises(OSError):
                packctl.publish(images, new, candidate)
        self.assertEqual(tree_state(images), before)


if __name__ == "__main__":
    unittest.main()
