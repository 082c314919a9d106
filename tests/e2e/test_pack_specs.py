"""Pack specs (rootfs/packs/<name>/pack.json, docs/packs.md) and how rootfs/build.sh treats a bad
one: every spec of the tree is valid; a broken spec stops the build before any work, naming file
and field; an image whose smoke test fails in its VM is never published (packs.json, the images
and the stamps stay byte-identical).

Run: IMAGES_DIR=... python3 -m unittest test_pack_specs (the last test builds a tiny pack with
mmdebstrap and boots it: a few minutes, needs the Debian mirror like `make images`)."""

import copy
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST_PY = os.path.join(REPO, "rootfs", "lib", "manifest.py")
BUILD_SH = os.path.join(REPO, "rootfs", "build.sh")
PACKS = os.path.join(REPO, "rootfs", "packs")
PYTHON = "/usr/bin/python3"

GOOD = {
    "name": "tiny",
    "description": "a test pack",
    "base": "bookworm",
    "packages": {},
    "interpreter": ["/bin/sh"],
    "code": "file",
    "defaults": {"exec_timeout_ms": 30000, "output_limit_bytes": 1048576, "memory_mib": 128,
                 "vcpus": 1, "overlay_mib": 64},
    "smoke": {"code": "echo $((6 * 7))\n", "stdout": "42\n"},
}


def tree_digest(root):
    """{relative path: sha256 or link target} of every file under root (dot-dirs skipped)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("cache", "logs")]
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel == ".lock":
                continue
            if os.path.islink(full):
                out[rel] = "-> " + os.readlink(full)
            else:
                with open(full, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


class SpecTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="emberd-spec-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write_pack(self, spec, name="tiny", extra=None):
        d = os.path.join(self.tmp, "packs", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "pack.json"), "w", encoding="utf-8") as f:
            f.write(spec if isinstance(spec, str) else json.dumps(spec))
        for rel, (text, mode) in (extra or {}).items():
            path = os.path.join(d, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, mode)
        return d

    def check(self, pack_dir):
        return subprocess.run([PYTHON, MANIFEST_PY, "check", pack_dir], capture_output=True,
                              text=True, timeout=60)

    def test_every_pack_of_the_tree_is_valid_and_has_a_smoke_test(self):
        names = sorted(n for n in os.listdir(PACKS) if os.path.isdir(os.path.join(PACKS, n)))
        self.assertIn("python", names)
        self.assertIn("shell", names)
        for name in names:
            out = self.check(os.path.join(PACKS, name))
            self.assertEqual(out.returncode, 0, f"{name}: {out.stderr}")
            got = subprocess.run([PYTHON, MANIFEST_PY, "get", os.path.join(PACKS, name),
                                  "smoke-stdout"], capture_output=True, text=True, check=True)
            self.assertTrue(got.stdout, f"{name} has no expected smoke stdout")

    def test_good_spec_passes_and_gives_the_build_its_facts(self):
        d = self.write_pack(dict(GOOD, packages={"busybox": "a test"},
                                 files=[{"source": "files/motd", "path": "/etc/motd",
                                         "mode": "0644"}]),
                            extra={"files/motd": ("hi\n", 0o644)})
        self.assertEqual(self.check(d).returncode, 0, self.check(d).stderr)

        def get(*args):
            return subprocess.run([PYTHON, MANIFEST_PY, "get", d, *args], capture_output=True,
                                  text=True, check=True).stdout
        self.assertEqual(get("packages"), "busybox\n")
        self.assertEqual(get("smoke-stdout"), "42\n")
        inputs = get("image-inputs")
        self.assertIn("file=/etc/motd 0644 ", inputs)
        entry = json.loads(get("entry", "a" * 64, "packs/tiny.squashfs"))
        self.assertEqual(entry["code"], "file")
        self.assertEqual(list(entry), ["name", "image", "sha256", "interpreter", "code",
                                       "description", "defaults"])
        # Description, defaults and smoke test are not part of the image: changing them does not
        # rebuild it; a file's content is.
        self.write_pack(dict(GOOD, description="other", packages={"busybox": "a test"},
                             files=[{"source": "files/motd", "path": "/etc/motd",
                                     "mode": "0644"}]))
        self.assertEqual(get("image-inputs"), inputs)
        with open(os.path.join(d, "files", "motd"), "w", encoding="utf-8") as f:
            f.write("changed\n")
        self.assertNotEqual(get("image-inputs"), inputs)

    def test_bad_specs_are_refused_naming_file_and_field(self):
        no_interp = copy.deepcopy(GOOD)
        del no_interp["interpreter"]
        no_smoke = copy.deepcopy(GOOD)
        del no_smoke["smoke"]
        cases = [
            (dict(GOOD, shell="bash"), "`shell`: unknown key"),
            (no_interp, "`interpreter`: missing"),
            (no_smoke, "`smoke`: missing"),
            (dict(GOOD, interpreter=["sh"]), "`interpreter[0]`: must be an absolute path"),
            (dict(GOOD, code="stdin"), "`code`: must be one of file, argument"),
            (dict(GOOD, packages=["python3"]), "`packages`: must be an object"),
            (dict(GOOD, packages={"Bad_Name": "x"}), "`packages.Bad_Name`"),
            (dict(GOOD, base="../sid"), "`base`"),
            (dict(GOOD, defaults=dict(GOOD["defaults"], memory_mib=8)), "`defaults.memory_mib`"),
            (dict(GOOD, smoke={"code": "echo", "stdout": ""}), "`smoke`"),
            (dict(GOOD, files=[{"source": "../x", "path": "/etc/x", "mode": "0644"}]),
             "`files[0].source`"),
            (dict(GOOD, files=[{"source": "x", "path": "/etc/x", "mode": "0644"}]),
             "`files[0].source`: cannot read"),
            (dict(GOOD, files=[{"source": "pack.json", "path": "/etc/../x", "mode": "0644"}]),
             "`files[0].path`"),
            (dict(GOOD, files=[{"source": "pack.json", "path": "/etc/x", "mode": "644"}]),
             "`files[0].mode`"),
            (dict(GOOD, name="other"), "`name`: is `other` but the directory is `tiny`"),
            (dict(GOOD, customize="hook.sh"), "`customize`"),
            ('{"name": "tiny", "name": "tiny"}', "duplicate key"),
        ]
        for spec, message in cases:
            with self.subTest(message=message):
                d = self.write_pack(spec)
                out = self.check(d)
                self.assertEqual(out.returncode, 1, out)
                self.assertIn(os.path.join(d, "pack.json"), out.stderr)
                self.assertIn(message, out.stderr)
        # A customize.sh beside the spec that the spec does not name, or that is not executable.
        d = self.write_pack(GOOD, extra={"customize.sh": ("#!/bin/sh\n", 0o755)})
        self.assertIn("does not name it", self.check(d).stderr)
        d = self.write_pack(dict(GOOD, customize="customize.sh"),
                            extra={"customize.sh": ("#!/bin/sh\n", 0o644)})
        self.assertIn("executable", self.check(d).stderr)

    def build(self, images_dir, packs_dir, timeout):
        env = dict(os.environ, IMAGES_DIR=images_dir, PACKS_DIR=packs_dir, KERNEL="stock",
                   PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        return subprocess.run([BUILD_SH], capture_output=True, text=True, timeout=timeout, env=env)

    def images_with_a_manifest(self):
        images = os.path.join(self.tmp, "images")
        os.makedirs(images)
        with open(os.path.join(images, "packs.json"), "w", encoding="utf-8") as f:
            f.write('{"a manifest": "that must stay byte-identical"}\n')
        return images

    def test_build_stops_at_a_broken_spec_before_any_work(self):
        self.write_pack(GOOD)
        self.write_pack(dict(GOOD, name="broken", code="stdin"), name="broken")
        images = self.images_with_a_manifest()
        before = tree_digest(images)
        out = self.build(images, os.path.join(self.tmp, "packs"), timeout=120)
        self.assertNotEqual(out.returncode, 0, out)
        self.assertIn("broken/pack.json: field `code`", out.stderr)
        self.assertNotIn("kernel:", out.stdout)  # stopped before fetching anything
        self.assertEqual(tree_digest(images), before)

    def test_failing_smoke_test_publishes_nothing(self):
        if not os.path.exists(os.path.join(REPO, "bin", "ember-vm")):
            self.fail("bin/ember-vm is missing: run `make`")
        self.write_pack(dict(GOOD, smoke={"code": "echo 41\n", "stdout": "42\n"}))
        images = self.images_with_a_manifest()
        out = self.build(images, os.path.join(self.tmp, "packs"), timeout=1800)
        self.assertNotEqual(out.returncode, 0, out.stdout[-3000:])
        self.assertIn("tiny pack: smoke test in a VM: FAILED", out.stderr)
        self.assertIn('expected:  "42\\n"', out.stderr)
        self.assertIn('got:       "41\\n"', out.stderr)
        self.assertIn("the image was not published", out.stderr)
        with open(os.path.join(images, "packs.json"), encoding="utf-8") as f:
            self.assertEqual(f.read(), '{"a manifest": "that must stay byte-identical"}\n')
        left = sorted(os.listdir(os.path.join(images, "packs")))
        self.assertEqual(left, [], "nothing of the failed pack is published")
        self.assertEqual([e for e in os.listdir(images) if e.startswith(".work")], [])


if __name__ == "__main__":
    unittest.main()
