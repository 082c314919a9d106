"""Language packs through the API (issue 14): every built-in pack of rootfs/packs/ is in the
catalog and its spec's smoke test gives exactly the spec's stdout in a sandbox; GET /packs says
how each pack takes code; a pack whose spec says "code": "argument" gets the code itself as its
interpreter's last argument (for execs and background processes), bounded to one argv string.

- BuiltinPacksTest: one daemon on every pack of IMAGES_DIR; each pack's smoke test (a clone of
  its template).
- ArgumentPackTest: a daemon on a private images directory (symlinks to IMAGES_DIR's kernel,
  initramfs and shell image) whose packs.json adds a pack `shc`: ["/bin/sh", "-c"], "argument".
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PACKS_DIR = os.path.join(harness.REPO, "rootfs", "packs")
ARG_MAX = 128 * 1024 - 1


def specs():
    out = {}
    for name in sorted(os.listdir(PACKS_DIR)):
        path = os.path.join(PACKS_DIR, name, "pack.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                out[name] = json.load(f)
    return out


class BuiltinPacksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(all_packs=True)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_every_built_in_pack_is_served_with_its_spec(self):
        status, body, _ = self.d.request("GET", "/packs")
        self.assertEqual(status, 200)
        served = {p["name"]: p for p in body["packs"]}
        for name, spec in specs().items():
            with self.subTest(pack=name):
                self.assertIn(name, served, f"pack `{name}` is not in the catalog: run "
                                            f"`make pack NAME={name}`")
                for key in ("interpreter", "code", "description", "defaults"):
                    self.assertEqual(served[name][key], spec[key], f"{name}.{key}")

    def test_every_built_in_pack_passes_its_smoke_test_through_the_api(self):
        for name, spec in specs().items():
            with self.subTest(pack=name):
                sb = self.d.create(language_pack=name)
                try:
                    self.assertEqual(sb["language_pack"], name)
                    status, res, _ = self.d.exec(sb["id"], spec["smoke"]["code"],
                                                 timeout_ms=300000)
                    self.assertEqual(status, 200, res)
                    self.assertEqual((res["exit_code"], res["stdout"]),
                                     (0, spec["smoke"]["stdout"]), res)
                finally:
                    self.d.delete(sb["id"])


class ArgumentPackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_images()
        cls.images = tempfile.mkdtemp(prefix="emberd-argpack-")
        with open(os.path.join(harness.IMAGES_DIR, "packs.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        for rel in (manifest["kernel"]["bzimage"], manifest["kernel"]["vmlinux"],
                    manifest["initramfs"]):
            os.makedirs(os.path.join(cls.images, os.path.dirname(rel)), exist_ok=True)
            os.symlink(os.path.join(harness.IMAGES_DIR, rel), os.path.join(cls.images, rel))
        shell = next(p for p in manifest["packs"] if p["name"] == "shell")
        os.makedirs(os.path.join(cls.images, "packs"))
        os.symlink(os.path.join(harness.IMAGES_DIR, shell["image"]),
                   os.path.join(cls.images, "packs", "shc.squashfs"))
        manifest["packs"] = [dict(shell, name="shc", image="packs/shc.squashfs",
                                  interpreter=["/bin/sh", "-c"], code="argument",
                                  description="sh -c CODE")]
        with open(os.path.join(cls.images, "packs.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f)
        try:
            cls.d = harness.Daemon("--images", cls.images, "--no-snapshots")
        except BaseException:
            shutil.rmtree(cls.images, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.images, ignore_errors=True)

    def setUp(self):
        self.sb = self.d.create(language_pack="shc")
        self.addCleanup(self.d.delete, self.sb["id"])

    def test_packs_lists_how_code_is_passed(self):
        status, body, _ = self.d.request("GET", "/packs")
        self.assertEqual(status, 200)
        self.assertEqual([(p["name"], p["code"], p["interpreter"]) for p in body["packs"]],
                         [("shc", "argument", ["/bin/sh", "-c"])])

    def test_exec_gets_the_code_as_the_last_argument(self):
        # $0 is sh -c's argv[0] when nothing follows the code; no code file exists anywhere.
        status, res, _ = self.d.exec(self.sb["id"], 'echo "$0 $#"; exit 4')
        self.assertEqual(status, 200, res)
        self.assertEqual((res["exit_code"], res["stdout"]), (4, "/bin/sh 0\n"), res)

    def test_code_up_to_one_argv_string_runs_and_more_is_refused(self):
        head = "echo big\n#"
        status, res, _ = self.d.exec(self.sb["id"], head + "x" * (ARG_MAX - len(head)))
        self.assertEqual(status, 200, res)
        self.assertEqual(res["stdout"], "big\n", res)
        status, res, _ = self.d.exec(self.sb["id"], head + "x" * (ARG_MAX + 1 - len(head)))
        self.assertEqual(status, 400, res)
        self.assertEqual(res["error"]["code"], "invalid_argument", res)
        self.assertIn("`code` must be at most 131071 bytes in pack `shc`", res["error"]["message"])
        # The sandbox is unharmed.
        status, res, _ = self.d.exec(self.sb["id"], "echo still")
        self.assertEqual(res["stdout"], "still\n", res)

    def test_background_process_gets_the_code_as_its_argument(self):
        status, proc, _ = self.d.request("POST", f"/sandboxes/{self.sb['id']}/processes",
                                         {"code": "echo from-bg >/tmp/bg; exec sleep 600"})
        self.assertEqual(status, 201, proc)
        got = harness.wait_for(
            lambda: self.d.exec(self.sb["id"], "cat /tmp/bg 2>/dev/null")[1]["stdout"],
            120, "the background process's file")
        self.assertEqual(got, "from-bg\n")
        status, res, _ = self.d.request("POST", f"/sandboxes/{self.sb['id']}/processes",
                                        {"code": "#" * (ARG_MAX + 1)})
        self.assertEqual(status, 400, res)


if __name__ == "__main__":
    unittest.main()
