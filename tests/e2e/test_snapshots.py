"""Fast create: templates, copy-on-write clones, clone identity, the warm pool, template rebuilds.
Runs against the QEMU driver (TCG here); test_firecracker.py covers the Firecracker half.
"""

import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_api  # noqa: E402  (a module import: discovery must not collect ApiTest twice)




IDENTITY = "import os, time, uuid; print(os.urandom(16).hex(), uuid.uuid4(), time.time())"


class CloneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--prewarm")
        cls.d.wait_health_or_stop(lambda h: h["templates"]["ready"] >= 2, 300, "both templates")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def clone(self, pack="python"):
        sb = self.d.create(language_pack=pack)
        self.assertEqual(sb["boot_mode"], "clone", sb)
        return sb

    def test_clone_answers_exec(self):
        for pack, code, out in [("python", "print(6*7)", "42\n"), ("shell", "echo hi", "hi\n")]:
            sb = self.clone(pack)
            try:
                # a clone attaches its template's pinned copy of the pack image, never the
                # catalog path that a rebuild may replace underneath it
                with open(f"/proc/{sb['vmm_pid']}/cmdline", "rb") as f:
                    cmdline = f.read().decode()
                self.assertRegex(cmdline, r"file=[^,]*/templates/[0-9a-f]{64}\.pack,")
                self.assertNotIn(f"packs/{pack}.squashfs", cmdline)
                status, res, _ = self.d.exec(sb["id"], code)
                self.assertEqual((status, res["stdout"], res["exit_code"]), (200, out, 0))
            finally:
                self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_clones_are_isolated_from_each_other_and_the_template(self):
        harness.assert_clones_isolated(self, self.d, self.clone)

    def test_two_clones_have_their_own_identity_and_the_host_clock(self):
        seen = []
        for _ in range(2):
            t0 = time.time()
            sb = self.clone()
            try:
                status, res, _ = self.d.exec(sb["id"], IDENTITY)
                t1 = time.time()
                rand, uid, guest_time = res["stdout"].split()
                # The guest's clock was set from the host's at the handshake, during the create
                # (late by however long the guest took to handle it): it reads between the
                # create's start and the exec's end (host time), 1 s either way.
                self.assertGreater(float(guest_time), t0 - 1.0)
                self.assertLess(float(guest_time), t1 + 1.0)
                seen.append((rand, uid))
            finally:
                self.d.delete(sb["id"])
        self.assertNotEqual(seen[0][0], seen[1][0], "clones share their RNG")
        self.assertNotEqual(seen[0][1], seen[1][1], "clones share uuid4 state")

    def test_other_shapes_get_their_own_template(self):
        first = self.d.create(language_pack="shell", memory_mib=192)
        self.d.delete(first["id"])
        self.assertEqual(first["boot_mode"], "cold")
        self.d.wait_health(lambda h: h["templates"]["ready"] >= 3, 300, "the new template")
        again = self.d.create(language_pack="shell", memory_mib=192)
        try:
            self.assertEqual(again["boot_mode"], "clone")
            self.assertEqual(again["memory_mib"], 192)
            status, res, _ = self.d.exec(again["id"], "grep MemTotal /proc/meminfo")
            self.assertEqual(status, 200)
        finally:
            self.d.delete(again["id"])


class PoolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--pool-size", "2", "--prewarm")
        cls.d.wait_health_or_stop(lambda h: h["pool"]["ready"] >= 4, 300, "full pools")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_pool_hands_out_fresh_sandboxes_and_refills(self):
        self.d.wait_health(lambda h: h["pool"]["ready"] >= 4, 300, "full pools")
        taken = [self.d.create(language_pack="python") for _ in range(2)]
        try:
            for sb in taken:
                self.assertEqual(sb["boot_mode"], "pool")
                self.assertEqual(sb["state"], "ready")
            health = self.d.request("GET", "/healthz")[1]
            self.assertGreaterEqual(health["pool"]["handouts_total"], 2)
            outs = []
            for sb in taken:
                status, res, _ = self.d.exec(sb["id"], IDENTITY + "; import os; "
                                             "print(os.listdir('/tmp'))")
                self.assertEqual(status, 200, res)
                outs.append(res["stdout"].split("\n")[0].split()[0])
                self.assertEqual(res["stdout"].split("\n")[1], "[]")  # clean overlay
            self.assertNotEqual(outs[0], outs[1])
            self.d.wait_health(lambda h: h["pool"]["ready"] >= 4, 300, "the pool to refill")
        finally:
            for sb in taken:
                self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_concurrent_pooled_creates(self):
        self.d.wait_health(lambda h: h["pool"]["ready"] >= 4, 300, "full pools")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            made = list(pool.map(lambda p: self.d.create(language_pack=p),
                                 ["python", "python", "shell", "shell"]))
        try:
            self.assertEqual({sb["boot_mode"] for sb in made}, {"pool"})
            self.assertEqual(len({sb["id"] for sb in made}), 4)
        finally:
            for sb in made:
                self.d.delete(sb["id"])


class PoolPacksTest(unittest.TestCase):
    """--pool-packs: only the packs listed are kept ready; the others still clone or boot."""

    def test_only_the_listed_packs_are_pooled(self):
        d = harness.Daemon("--pool-size", "1", "--pool-packs", "shell")
        try:
            h = d.wait_health(lambda h: h["pool"]["ready"] >= 1, 300, "the shell pool")
            self.assertEqual(h["pool"]["size_by_pack"], {"python": 0, "shell": 1})
            self.assertEqual(h["pool"]["ready_by_pack"], {"python": 0, "shell": 1})
            shell = d.create(language_pack="shell")
            python = d.create(language_pack="python")
            try:
                self.assertEqual(shell["boot_mode"], "pool")
                self.assertIn(python["boot_mode"], ("cold", "clone"))
                status, res, _ = d.exec(python["id"], "print(6*7)")
                self.assertEqual((status, res["stdout"]), (200, "42\n"), res)
                # The shell pool refills; python's stays empty whatever time passes.
                h = d.wait_health(lambda h: h["pool"]["ready_by_pack"]["shell"] >= 1, 300,
                                  "the shell pool to refill")
                self.assertEqual(h["pool"]["ready_by_pack"]["python"], 0)
                self.assertNotIn("pack=python", " ".join(
                    x for x in d.read_log().splitlines() if "event=pool.filled" in x))
            finally:
                for sb in (shell, python):
                    self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()


class PooledApiTest(test_api.ApiTest):
    """The whole HTTP suite again with the warm pool on (most creates come from the pool)."""
    daemon_args = ("--vmm", "qemu", "--pool-size", "2", "--prewarm")


class TemplateRebuildTest(unittest.TestCase):
    def test_a_changed_pack_image_gets_a_new_template(self):
        harness.require_images()
        images = tempfile.mkdtemp(prefix="img.", dir="/tmp")
        try:
            # A private images directory whose python pack we may replace.
            for entry in os.listdir(harness.IMAGES_DIR):
                src = os.path.join(harness.IMAGES_DIR, entry)
                if entry in ("packs", "packs.json"):
                    continue
                os.symlink(src, os.path.join(images, entry))
            os.mkdir(os.path.join(images, "packs"))
            for entry in os.listdir(os.path.join(harness.IMAGES_DIR, "packs")):
                src = os.path.join(harness.IMAGES_DIR, "packs", entry)
                dst = os.path.join(images, "packs", entry)
                if entry == "python.squashfs":
                    shutil.copyfile(src, dst)
                else:
                    os.symlink(src, dst)
            shutil.copyfile(os.path.join(harness.IMAGES_DIR, "packs.json"),
                            os.path.join(images, "packs.json"))
            env = {"IMAGES_DIR": images}
            d = harness.Daemon("--images", images, "--prewarm", env=env)
            try:
                tdir = os.path.join(d.run_dir, "templates")
                d.wait_health(lambda h: h["templates"]["ready"] >= 2, 300, "templates")
                before = set(os.listdir(tdir))
                old = d.create(language_pack="python")
                self.assertEqual(old["boot_mode"], "clone")
                # Rebuild the image the way the pipeline does: a new file renamed into place.
                # (squashfs ignores bytes after its end: the content hash changes, the fs not.)
                image = os.path.join(images, "packs", "python.squashfs")
                shutil.copyfile(image, image + ".new")
                with open(image + ".new", "ab") as f:
                    f.write(b"\0" * 4096)
                os.rename(image + ".new", image)
                fresh = d.create(language_pack="python")
                self.assertEqual(fresh["boot_mode"], "cold")  # the old template is not used
                d.wait_health(lambda h: h["templates"]["ready"] >= 2 and
                            h["templates"]["building"] == 0, 300, "the new template")
                after = set(os.listdir(tdir))
                # a directory and its pinned pack image
                self.assertEqual(sorted(len(k) for k in after - before), [64, 69],
                                 (before, after))
                # the old template stays while its clone lives, and goes with the last one
                self.assertTrue(before <= after)
                status, res, _ = d.exec(old["id"], "print('old clone fine')")
                self.assertEqual(res["stdout"], "old clone fine\n")
                self.assertEqual(d.delete(old["id"]), 204)
                self.assertEqual(d.delete(fresh["id"]), 204)
                python_old = [k for k in before if k not in os.listdir(tdir)]
                self.assertEqual(sorted(len(k) for k in python_old), [64, 69], os.listdir(tdir))
                newer = d.create(language_pack="python")
                self.assertEqual(newer["boot_mode"], "clone")
                d.delete(newer["id"])
            finally:
                d.stop()
        finally:
            shutil.rmtree(images, ignore_errors=True)


class RunDirOnAnotherFilesystemTest(unittest.TestCase):
    def test_templates_copy_the_pack_when_it_cannot_be_linked(self):
        # The default layout: --run-dir on a tmpfs (/run), images on disk. The pinned pack
        # cannot be a hard link there; it is a copy, and clones work from it.
        run = tempfile.mkdtemp(prefix="emr.", dir="/dev/shm")
        self.addCleanup(shutil.rmtree, run, True)
        image = os.path.join(harness.IMAGES_DIR, "packs", "shell.squashfs")
        self.assertNotEqual(os.stat(run).st_dev, os.stat(image).st_dev)
        d = harness.Daemon("--run-dir", os.path.join(run, "r"))
        try:
            first = d.create(language_pack="shell")  # cold; starts the template build
            d.wait_health(lambda h: h["templates"]["ready"] >= 1, 300, "the shell template")
            sb = d.create(language_pack="shell")
            try:
                self.assertEqual(sb["boot_mode"], "clone", sb)
                status, res, _ = d.exec(sb["id"], "echo from a copy")
                self.assertEqual((status, res["stdout"]), (200, "from a copy\n"), res)
                tdir = os.path.join(run, "r", "templates")
                pinned = [os.path.join(tdir, e) for e in os.listdir(tdir) if e.endswith(".pack")]
                self.assertEqual(len(pinned), 1, os.listdir(tdir))
                st = os.stat(pinned[0])
                self.assertEqual((st.st_nlink, st.st_size), (1, os.stat(image).st_size))
                with open(pinned[0], "rb") as a, open(image, "rb") as b:
                    self.assertTrue(a.read() == b.read())
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
                self.assertEqual(d.delete(first["id"]), 204)
        finally:
            d.stop()
        # a clean shutdown removes the templates, pinned copy included
        self.assertEqual(os.listdir(os.path.join(run, "r")) if os.path.isdir(
            os.path.join(run, "r")) else [], [])


if __name__ == "__main__":
    unittest.main()
