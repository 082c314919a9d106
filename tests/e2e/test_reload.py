"""End-to-end tests of issue 14's catalog reload (docs/api.md `POST /packs/reload`,
docs/operations.md "Reloading the catalog"): packs.json is read again on SIGHUP or
POST /packs/reload, without a restart.

Each class runs a daemon on an images directory of its own: symlinks to the kernel, initramfs
and pack images of $IMAGES_DIR, and a packs.json the test writes.

- ReloadTest: one daemon, no snapshots; added packs can be created, a removed pack refuses new
  sandboxes while its live one keeps running exec, a changed pack (another image) is created from
  the new image, a broken or incomplete packs.json changes nothing, a reload without changes
  changes nothing.
- ReloadAuthTest: with --auth-token-file a reload needs the token.
- ReloadPoolTest: with a warm pool, a changed pack's pooled clone is given back and the pool is
  filled again from the new template; a removed pack's pool is drained.
- ReloadTsanTest: the ThreadSanitizer daemon, reloads alongside creates and the pool.
- ReloadRestartTest: a sandbox of a retired pack does not survive a restart (the new daemon only
  knows the catalog in force; it is cleaned with a log line naming the pack).
"""

import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def real_catalog():
    with open(os.path.join(harness.IMAGES_DIR, "packs.json")) as f:
        return json.load(f)


class Images:
    """A private images directory: the real files by symlink, packs.json written by the test."""

    def __init__(self):
        self.real = real_catalog()
        self.dir = tempfile.mkdtemp(prefix="emreload.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        for rel in (self.real["kernel"]["bzimage"], self.real["kernel"]["vmlinux"],
                    self.real["initramfs"], *[p["image"] for p in self.real["packs"]]):
            os.makedirs(os.path.join(self.dir, os.path.dirname(rel)), exist_ok=True)
            os.symlink(os.path.join(harness.IMAGES_DIR, rel), os.path.join(self.dir, rel))
        self.packs = {p["name"]: p for p in self.real["packs"]}

    def write(self, packs):
        """packs: names of real packs, or whole pack objects."""
        manifest = dict(self.real)
        manifest["packs"] = [self.packs[p] if isinstance(p, str) else p for p in packs]
        tmp = os.path.join(self.dir, "packs.json.tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=2)
        os.rename(tmp, os.path.join(self.dir, "packs.json"))

    def write_raw(self, text):
        with open(os.path.join(self.dir, "packs.json"), "w") as f:
            f.write(text)

    def changed(self, name):
        """The pack with another image: a copy of its squashfs with 4 KiB of padding appended
        (the kernel reads a squashfs up to its superblock's bytes_used), so another sha256."""
        pack = dict(self.packs[name])
        rel = f"packs/{name}-v2.squashfs"
        path = os.path.join(self.dir, rel)
        shutil.copyfile(os.path.join(harness.IMAGES_DIR, pack["image"]), path)
        with open(path, "ab") as f:
            f.write(b"\0" * 4096)
        with open(path, "rb") as f:
            pack["sha256"] = hashlib.sha256(f.read()).hexdigest()
        pack["image"] = rel
        return pack

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def pack_names(d):
    status, body, _ = d.request("GET", "/packs")
    assert status == 200, body
    return [p["name"] for p in body["packs"]]


def reload(d, expect=200):
    status, body, _ = d.request("POST", "/packs/reload")
    if status != expect:
        raise AssertionError(f"POST /packs/reload: {status} {body}")
    return body


def sighup(d):
    """SIGHUP; returns the log line of its outcome (reloaded or reload_failed)."""
    def outcomes():
        return [ln for ln in d.read_log().splitlines()
                if "daemon.reloaded" in ln or "daemon.reload_failed" in ln]

    before = len(outcomes())
    d.proc.send_signal(signal.SIGHUP)
    return harness.wait_for(lambda: outcomes()[before:] and outcomes()[before], 120,
                            "the outcome of a SIGHUP")


class ReloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.images = Images()
        cls.images.write(["shell"])
        try:
            cls.d = harness.Daemon("--images", cls.images.dir, "--no-snapshots")
        except Exception:
            cls.images.remove()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.images.remove()

    def setUp(self):
        self.images.write(["shell"])
        reload(self.d)

    def test_reload_adds_and_retires_packs_with_live_sandboxes_untouched(self):
        d = self.d
        self.assertEqual(pack_names(d), ["shell"])
        status, body, _ = d.request("POST", "/sandboxes", {"language_pack": "python"})
        self.assertEqual(status, 400, body)
        self.assertIn("unknown language_pack `python`", body["error"]["message"])

        # Added over HTTP.
        self.images.write(["shell", "python"])
        summary = reload(d)
        self.assertEqual(summary["added"], ["python"])
        self.assertEqual(summary["unchanged"], ["shell"])
        self.assertEqual((summary["removed"], summary["changed"]), ([], []))
        self.assertEqual([p["name"] for p in summary["packs"]], ["shell", "python"])
        self.assertEqual(pack_names(d), ["shell", "python"])

        shell = d.create(language_pack="shell")
        status, out, _ = d.exec(shell["id"], "echo before")
        self.assertEqual((status, out["stdout"]), (200, "before\n"))

        # Retired by SIGHUP while the shell sandbox lives.
        self.images.write(["python"])
        line = sighup(d)
        self.assertIn("removed=[shell]", line)
        self.assertIn("unchanged=[python]", line)
        self.assertEqual(pack_names(d), ["python"])
        status, body, _ = d.request("POST", "/sandboxes", {"language_pack": "shell"})
        self.assertEqual(status, 400, body)
        self.assertIn("unknown language_pack `shell`", body["error"]["message"])
        self.assertIn("available packs: python", body["error"]["message"])
        status, out, _ = d.exec(shell["id"], "echo after")
        self.assertEqual((status, out["stdout"]), (200, "after\n"))
        status, got, _ = d.request("GET", f"/sandboxes/{shell['id']}")
        self.assertEqual((status, got["language_pack"]), (200, "shell"))

        py = d.create(language_pack="python")
        status, out, _ = d.exec(py["id"], "print(6*7)")
        self.assertEqual((status, out["stdout"]), (200, "42\n"))
        self.assertEqual(d.delete(py["id"]), 204)
        self.assertEqual(d.delete(shell["id"]), 204)

    def test_changed_pack_is_created_from_its_new_image(self):
        d = self.d
        pack = self.images.changed("shell")
        self.images.write([pack])
        summary = reload(d)
        self.assertEqual(summary["changed"], ["shell"])
        status, body, _ = d.request("GET", "/packs")
        self.assertEqual(body["packs"][0]["sha256"], pack["sha256"])
        sb = d.create(language_pack="shell")
        status, out, _ = d.exec(sb["id"], "echo changed")
        self.assertEqual((status, out["stdout"]), (200, "changed\n"))
        cmdline = ""
        for pid in d.vmm_pids():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline += f.read().replace(b"\0", b" ").decode()
        self.assertIn("shell-v2.squashfs", cmdline)
        self.assertEqual(d.delete(sb["id"]), 204)

    def test_a_broken_catalog_changes_nothing(self):
        d = self.d
        self.images.write_raw('{"version": 1, "packs": [')
        body = reload(d, expect=400)
        self.assertIn("packs.json", body["error"]["message"])
        self.assertEqual(pack_names(d), ["shell"])
        # A pack whose image is not there.
        missing = dict(self.images.packs["python"], name="ghost", image="packs/ghost.squashfs")
        self.images.write(["shell", missing])
        status, body, _ = d.request("POST", "/packs/reload")
        self.assertIn(status, (400, 500), body)
        self.assertIn("ghost", body["error"]["message"])
        self.assertEqual(pack_names(d), ["shell"])
        # A new kernel needs a restart.
        self.images.write(["shell"])
        with open(os.path.join(self.images.dir, "packs.json")) as f:
            manifest = json.load(f)
        manifest["kernel"]["bzimage"] = manifest["kernel"]["vmlinux"]
        self.images.write_raw(json.dumps(manifest))
        body = reload(d, expect=400)
        self.assertIn("restart the daemon", body["error"]["message"])
        # By SIGHUP: logged, nothing changes.
        self.images.write_raw("not json")
        line = sighup(d)
        self.assertIn("reload_failed", line)
        self.assertEqual(pack_names(d), ["shell"])

    def test_a_reload_without_changes_changes_nothing(self):
        summary = reload(self.d)
        self.assertEqual(summary["unchanged"], ["shell"])
        self.assertEqual((summary["added"], summary["removed"], summary["changed"]),
                         ([], [], []))


class ReloadAuthTest(unittest.TestCase):
    """With --auth-token-file, a reload needs the token like every route."""

    def test_reload_needs_the_token(self):
        images = Images()
        images.write(["shell"])
        token = "reload-token-0123456789abcdef"
        token_file = os.path.join(images.dir, "token")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(token_file, 0o600)
        d = None
        try:
            d = harness.Daemon("--images", images.dir, "--no-snapshots", "--auth-token-file",
                               token_file)
            images.write(["shell", "python"])
            status, body, _ = d.request("POST", "/packs/reload")
            self.assertEqual(status, 401, body)
            status, body, _ = d.request("GET", "/packs",
                                        headers={"Authorization": f"Bearer {token}"})
            self.assertEqual([p["name"] for p in body["packs"]], ["shell"])
            status, body, _ = d.request("POST", "/packs/reload",
                                        headers={"Authorization": f"Bearer {token}"})
            self.assertEqual((status, body["added"]), (200, ["python"]))
        finally:
            if d is not None:
                d.stop()
            images.remove()


class ReloadPoolTest(unittest.TestCase):
    """--pool-size 1 with snapshots: the pool follows the catalog in force."""

    def test_pool_follows_changed_and_removed_packs(self):
        images = Images()
        images.write(["shell"])
        d = None
        try:
            d = harness.Daemon("--images", images.dir, "--pool-size", "1")
            d.wait_health(lambda h: h["pool"]["ready_by_pack"] == {"shell": 1}, 600,
                          "a pooled shell clone")

            pack = images.changed("shell")
            images.write([pack])
            self.assertEqual(reload(d)["changed"], ["shell"])
            # The old clone was given back before the reload answered.
            self.assertIn("its pack was removed or changed by a catalog reload", d.read_log())
            d.wait_health(lambda h: h["pool"]["ready_by_pack"] == {"shell": 1}, 600,
                          "a pooled clone of the changed shell pack")
            log = d.read_log()
            self.assertIn("template.superseded", log)
            self.assertIn("pack=shell", log[log.index("template.superseded"):])
            sb = d.create(language_pack="shell")
            status, out, _ = d.exec(sb["id"], "echo pooled")
            self.assertEqual((status, out["stdout"]), (200, "pooled\n"))
            self.assertEqual(d.delete(sb["id"]), 204)

            # Retired: its pool is drained, nothing refills it.
            images.write(["python"])
            self.assertEqual(reload(d)["removed"], ["shell"])
            pool = d.request("GET", "/healthz")[1]["pool"]
            self.assertNotIn("shell", pool["ready_by_pack"])
            self.assertEqual(pool["ready"], sum(pool["ready_by_pack"].values()))
        finally:
            if d is not None:
                d.stop()
            images.remove()


class ReloadRestartTest(unittest.TestCase):
    """A sandbox of a pack a reload retired is cleaned by the next daemon, which knows only
    the catalog in force (docs/operations.md)."""

    def test_a_retired_packs_sandbox_is_cleaned_at_restart(self):
        images = Images()
        images.write(["shell", "python"])
        args = ("--images", images.dir, "--no-snapshots", "--keep-sandboxes")
        d1 = d2 = None
        try:
            d1 = harness.Daemon(*args)
            gone = d1.create(language_pack="shell")
            images.write(["python"])
            self.assertEqual(reload(d1)["removed"], ["shell"])
            status, out, _ = d1.exec(gone["id"], "echo still")
            self.assertEqual((status, out["stdout"]), (200, "still\n"))
            self.assertEqual(d1.sigterm(), 0)
            d2 = harness.Daemon(*args, reuse=d1)
            self.assertEqual(d2.request("GET", f"/sandboxes/{gone['id']}")[0], 404)
            self.assertIn("pack `shell` is no longer installed", d2.read_log())
        except Exception:
            if d1 is not None and d2 is None:
                d1.stop(check=False)
            raise
        finally:
            if d2 is not None:
                d2.stop()
            images.remove()


class ReloadTsanTest(unittest.TestCase):
    """The ThreadSanitizer daemon (make tsan-bins) under the fake Firecracker with a warm pool:
    clients create, exec and delete shell sandboxes while another thread reloads a catalog that
    alternates between two generations (shell changed, python added and removed) and reads
    GET /packs and /healthz. Any data race fails the test with TSan's report."""
    RELOADS = 40  # below the 63 a daemon allows (CATALOG_GENERATIONS_MAX)
    CLIENTS = 3

    def test_reloads_race_free_with_creates_and_the_pool(self):
        binary = os.path.join(harness.REPO, "build", "tsan", "bin", "emberd")
        if not os.path.exists(binary):
            self.fail(f"{binary} is missing: run `make tsan-bins`")
        images = Images()
        changed = images.changed("shell")
        images.write(["shell", "python"])
        d = harness.Daemon("--images", images.dir, "--vmm", "firecracker", "--firecracker-bin",
                           os.path.join(harness.REPO, "tests", "fakes", "firecracker"),
                           "--pool-size", "1", "--max-sandboxes", "12", binary=binary,
                           env={"TSAN_OPTIONS": "halt_on_error=0 exitcode=0"})
        errors, cycles, reloads = [], [], []
        done = threading.Event()

        def client():
            while not done.is_set():
                try:
                    sb = d.create(language_pack="shell")
                    status, out, _ = d.exec(sb["id"], "echo ok")
                    if status != 200:
                        errors.append(f"exec: {status} {out}")
                    if d.delete(sb["id"]) != 204:
                        errors.append("delete failed")
                    cycles.append(1)
                except Exception as e:  # noqa: BLE001 (reported below)
                    errors.append(repr(e))

        def reloader():
            try:
                for i in range(self.RELOADS):
                    images.write([changed] if i % 2 == 0 else ["shell", "python"])
                    summary = reload(d)
                    if summary["changed"] != ["shell"]:
                        errors.append(f"reload {i}: {summary}")
                    pack_names(d)
                    d.request("GET", "/healthz")
                    reloads.append(1)
                    time.sleep(0.5)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            finally:
                done.set()

        threads = [threading.Thread(target=client) for _ in range(self.CLIENTS)]
        threads.append(threading.Thread(target=reloader))
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            log = d.read_log()
            self.assertEqual([ln for ln in log.splitlines() if "ThreadSanitizer" in ln], [],
                             log[-12000:])
            self.assertEqual(errors, [])
            self.assertEqual(len(reloads), self.RELOADS)
            self.assertGreater(len(cycles), 0)
            print(f"\n{type(self).__name__}: {len(reloads)} reloads alongside {len(cycles)} "
                  "create/exec/delete cycles", file=sys.stderr)
        finally:
            done.set()
            problems = d.stop(check=False)
            images.remove()
        self.assertEqual(problems, [])


if __name__ == "__main__":
    unittest.main()
