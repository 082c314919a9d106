"""Fork and snapshots (issue 15, docs/api.md "Snapshots and forks", docs/snapshots.md "Pause,
fork and snapshots"): POST /sandboxes/{id}/fork copies a running sandbox into N new ones;
POST /sandboxes/{id}/snapshots keeps a copy that outlives it and starts sandboxes
(POST /sandboxes with from_snapshot).

- ForkTest: a fork of 4 gives 4 distinct sandboxes with their own entropy and the host's clock,
  the source's files (copy-on-write: a write in one is seen by no other) and neither its
  processes nor its contexts; the source runs on; labels and timeout_s; bad counts; busy 409.
  Forks map one sealed memfd of the source's RAM privately (shared pages, few private ones)
  and leave no passing file behind.
- ForkCapacityTest: a count beyond the room under --max-sandboxes is 429 and makes nothing.
- SnapshotTest: a snapshot outlives its source and starts 3 sandboxes that see its files, each
  with its own entropy; shape mismatches are 400, unknown ids 404; DELETE removes its files;
  GET /snapshots lists it.
- SnapshotLimitTest: --max-snapshots 1: a second snapshot is 429.
- SnapshotRestartTest: snapshots survive a daemon restart and still start sandboxes.
- SnapshotPinTest: after a reload changed the pack's image, a create from a snapshot of the old
  one is 409 naming what changed.
- EmberctlTest: emberctl pause, resume, fork --count, snapshot, snapshots, create
  --from-snapshot and rm-snapshot drive the same routes.
"""

import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_reload  # noqa: E402  (a module import: discovery must not collect its tests twice)

CTL = os.path.join(harness.ASAN_BIN, "emberctl")
IDENTITY = "import os, time; print(os.urandom(16).hex(), time.time())"
SNAP_ID = re.compile(r"^snap_[0-9a-f]{32}$")


class Base(unittest.TestCase):
    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(*cls.daemon_args)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def create(self, **fields):
        sb = self.d.create(**fields)
        self.addCleanup(self.d.request, "DELETE", f"/sandboxes/{sb['id']}")
        return sb

    def run_code(self, sandbox_id, code, **fields):
        status, res, raw = self.d.exec(sandbox_id, code, **fields)
        self.assertEqual(status, 200, raw)
        self.assertEqual(res["exit_code"], 0, res)
        return res["stdout"]

    def identity(self, sandbox_id):
        """(16 random bytes in hex, the guest's clock) and the host's clock right around the
        exec, as (urandom, guest, t0, t1)."""
        t0 = time.time()
        out = self.run_code(sandbox_id, IDENTITY)
        t1 = time.time()
        rand, clock = out.split()
        return rand, float(clock), t0, t1

    def fork(self, sandbox_id, expect=201, **body):
        status, reply, raw = self.d.request("POST", f"/sandboxes/{sandbox_id}/fork", body)
        self.assertEqual(status, expect, raw)
        if status == 201:
            for sb in reply["sandboxes"]:
                self.addCleanup(self.d.request, "DELETE", f"/sandboxes/{sb['id']}")
        return reply

    def snapshot(self, sandbox_id, expect=201, **body):
        status, reply, raw = self.d.request("POST", f"/sandboxes/{sandbox_id}/snapshots",
                                            body or None)
        self.assertEqual(status, expect, raw)
        if status == 201:
            self.addCleanup(self.d.request, "DELETE", f"/snapshots/{reply['id']}")
        return reply

    def snapshot_files(self, snap_id):
        """Files and directories under the state directory named after snap_id (wherever the
        daemon keeps them there)."""
        found = []
        for root, dirs, files in os.walk(self.d.state_dir):
            found += [os.path.join(root, n) for n in dirs + files if snap_id in n]
        return found

    def sandbox_count(self):
        status, body, _ = self.d.request("GET", "/sandboxes")
        self.assertEqual(status, 200)
        return len(body["sandboxes"])


class ForkTest(Base):
    def test_four_forks_are_distinct_copies_and_the_source_runs_on(self):
        src = self.create(language_pack="python")
        self.run_code(src["id"], "open('/tmp/from_source', 'w').write('source data')")
        status, ctx, raw = self.d.request("POST", f"/sandboxes/{src['id']}/contexts", {})
        self.assertEqual(status, 201, raw)
        status, proc, raw = self.d.request("POST", f"/sandboxes/{src['id']}/processes",
                                           {"cmd": ["sleep", "600"]})
        self.assertEqual(status, 201, raw)

        reply = self.fork(src["id"], count=4, labels={"fork": "yes"}, timeout_s=900)
        forks = reply["sandboxes"]
        self.assertEqual(len(forks), 4, reply)
        ids = [f["id"] for f in forks]
        self.assertEqual(len(set(ids + [src["id"]])), 5, ids)
        for f in forks:
            self.assertEqual((f["state"], f["boot_mode"], f["language_pack"]),
                             ("ready", "fork", "python"), f)
            self.assertEqual((f["labels"], f["timeout_s"]), ({"fork": "yes"}, 900), f)
            self.assertEqual((f["vcpus"], f["memory_mib"], f["overlay_mib"]),
                             (src["vcpus"], src["memory_mib"], src["overlay_mib"]))
            self.assertTrue(harness.pid_alive(f["vmm_pid"]), f)

        # the source was only stopped for a moment: same VMM, ready, its process running
        after = self.d.request("GET", f"/sandboxes/{src['id']}")[1]
        self.assertEqual((after["state"], after["vmm_pid"]), ("ready", src["vmm_pid"]))
        status, p, _ = self.d.request("GET", f"/sandboxes/{src['id']}/processes/{proc['pid']}")
        self.assertEqual((status, p["state"]), (200, "running"))

        # entropy: nobody repeats anybody's bytes; clock: the host's, within 1 s of the exec
        randoms = []
        for sandbox_id in ids + [src["id"]]:
            rand, clock, t0, t1 = self.identity(sandbox_id)
            randoms.append(rand)
            self.assertGreater(clock, t0 - 1, f"{sandbox_id}: the guest's clock is behind")
            self.assertLess(clock, t1 + 1, f"{sandbox_id}: the guest's clock is ahead")
        self.assertEqual(len(set(randoms)), 5, randoms)

        # files: the source's are there; a write in one fork is seen by no other
        check = "import os; print(open('/tmp/from_source').read(), os.path.exists('/tmp/mine'))"
        for sandbox_id in ids:
            self.assertEqual(self.run_code(sandbox_id, check), "source data False\n")
        self.run_code(ids[0], "open('/tmp/mine', 'w').write('fork 0')")
        self.assertEqual(self.run_code(ids[0], check), "source data True\n")
        for sandbox_id in ids[1:] + [src["id"]]:
            self.assertEqual(self.run_code(sandbox_id, check), "source data False\n")

        # processes and contexts stay with the source
        for sandbox_id in ids:
            status, body, _ = self.d.request("GET", f"/sandboxes/{sandbox_id}/processes")
            self.assertEqual((status, body["processes"]), (200, []))
            status, body, _ = self.d.request("GET", f"/sandboxes/{sandbox_id}/contexts")
            self.assertEqual((status, body["contexts"]), (200, []))
        status, body, _ = self.d.request("GET", f"/sandboxes/{src['id']}/contexts")
        self.assertEqual([c["id"] for c in body["contexts"]], [ctx["id"]])

        # a fork is a sandbox like any other: it goes alone
        self.assertEqual(self.d.delete(ids[0]), 204)
        self.assertEqual(self.run_code(ids[1], "print(6*7)"), "42\n")
        self.assertEqual(self.run_code(src["id"], "print(6*7)"), "42\n")

    def test_forks_share_the_source_memory_copy_on_write(self):
        src = self.create(language_pack="python")
        self.run_code(src["id"], "open('/tmp/before', 'w').write('x' * 4096)")
        forks = self.fork(src["id"], count=2)["sandboxes"]
        mib = src["memory_mib"]
        rams = []
        for f in forks:
            self.assertEqual(self.run_code(f["id"], "print(len(open('/tmp/before').read()))"),
                             "4096\n")
            ram = harness.memfd_mapping(f["vmm_pid"], "fork_", mib)
            self.assertIsNotNone(ram, f"{f['id']}: no {mib} MiB mapping of a fork's memfd")
            rams.append(ram)
        # one memfd (the fork base's RAM, sealed), mapped privately by both children: each
        # holds only the pages it wrote, the rest is shared
        self.assertEqual(rams[0]["inode"], rams[1]["inode"], rams)
        for ram in rams:
            self.assertIn("p", ram["perms"], ram)
            self.assertLess(ram["private_kib"], mib * 1024 // 2, ram)
            self.assertGreater(ram["shared_kib"], 0, ram)
        # the fork's passing files are gone: its saved state, the base's device state and
        # the base VM's run directory
        self.assertEqual(self.d.paused_files(), [])
        self.assertEqual([e for e in self.d.runtime_entries() if e.startswith("fork_")], [])

    def test_count_defaults_to_one_and_bad_counts_are_400(self):
        src = self.create(language_pack="shell")
        reply = self.fork(src["id"])
        self.assertEqual(len(reply["sandboxes"]), 1, reply)
        self.assertEqual(reply["sandboxes"][0]["boot_mode"], "fork")
        before = self.sandbox_count()
        for count in (0, 17):
            status, body, raw = self.d.request("POST", f"/sandboxes/{src['id']}/fork",
                                               {"count": count})
            self.assertEqual(status, 400, raw)
            self.assertEqual(body["error"]["code"], "invalid_argument")
            self.assertIn("count", body["error"]["message"])
        self.assertEqual(self.sandbox_count(), before)
        status, body, raw = self.d.request("POST", f"/sandboxes/sb_{'0' * 32}/fork", {})
        self.assertEqual(status, 404, raw)

    def test_a_busy_or_paused_sandbox_is_not_forked(self):
        src = self.create(language_pack="python")
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            r=self.d.exec(src["id"], "import time; time.sleep(6); print('done')")))
        worker.start()
        try:
            harness.wait_for(lambda: self.d.request("GET", f"/sandboxes/{src['id']}")[1]
                             ["execs_running"] == 1, 60, "the exec to run")
            before = self.sandbox_count()
            status, body, raw = self.d.request("POST", f"/sandboxes/{src['id']}/fork", {})
            self.assertEqual(status, 409, raw)
            self.assertEqual(body["error"]["code"], "conflict")
            self.assertEqual(self.sandbox_count(), before)
        finally:
            worker.join(120)
        self.assertEqual(result["r"][1]["stdout"], "done\n")
        status, _, raw = self.d.request("POST", f"/sandboxes/{src['id']}/pause")
        self.assertEqual(status, 200, raw)
        status, body, raw = self.d.request("POST", f"/sandboxes/{src['id']}/fork", {})
        self.assertEqual(status, 409, raw)
        status, _, raw = self.d.request("POST", f"/sandboxes/{src['id']}/resume")
        self.assertEqual(status, 200, raw)


class ForkCapacityTest(Base):
    daemon_args = ("--max-sandboxes", "3")

    def test_a_count_beyond_the_room_is_429_and_makes_nothing(self):
        src = self.create(language_pack="shell")
        status, body, raw = self.d.request("POST", f"/sandboxes/{src['id']}/fork",
                                           {"count": 3})
        self.assertEqual(status, 429, raw)
        self.assertEqual(body["error"]["code"], "capacity")
        self.assertEqual(self.sandbox_count(), 1)
        # the source is untouched and exactly the room left still forks
        self.assertEqual(self.run_code(src["id"], "echo ok"), "ok\n")
        self.assertEqual(len(self.fork(src["id"], count=2)["sandboxes"]), 2)
        self.assertEqual(self.sandbox_count(), 3)


class SnapshotTest(Base):
    def test_a_snapshot_outlives_its_source_and_starts_sandboxes(self):
        src = self.d.create(language_pack="python")
        self.run_code(src["id"], "open('/home/sandbox/data.txt', 'w').write('kept in a snapshot')")
        snap = self.snapshot(src["id"], labels={"stage": "data written"})
        self.assertRegex(snap["id"], SNAP_ID)
        self.assertEqual((snap["sandbox_id"], snap["language_pack"], snap["vcpus"],
                          snap["memory_mib"], snap["overlay_mib"], snap["labels"]),
                         (src["id"], "python", src["vcpus"], src["memory_mib"],
                          src["overlay_mib"], {"stage": "data written"}))
        self.assertGreater(snap["size_bytes"], 1 << 20, snap)
        self.assertTrue(self.snapshot_files(snap["id"]), "no file of the snapshot in --state-dir")
        # the source runs on after the snapshot, then goes
        self.assertEqual(self.run_code(src["id"], "print(6*7)"), "42\n")
        self.assertEqual(self.d.delete(src["id"]), 204)

        status, listing, _ = self.d.request("GET", "/snapshots")
        self.assertEqual(status, 200)
        self.assertIn(snap, listing["snapshots"])
        status, one, _ = self.d.request("GET", f"/snapshots/{snap['id']}")
        self.assertEqual((status, one), (200, snap))

        randoms = set()
        for i in range(3):
            sb = self.create(from_snapshot=snap["id"], labels={"n": str(i)})
            self.assertEqual((sb["boot_mode"], sb["language_pack"], sb["labels"]),
                             ("snapshot", "python", {"n": str(i)}), sb)
            self.assertEqual(self.run_code(sb["id"], "print(open('data.txt').read())"),
                             "kept in a snapshot\n")
            rand, clock, t0, t1 = self.identity(sb["id"])
            self.assertGreater(clock, t0 - 1)
            self.assertLess(clock, t1 + 1)
            randoms.add(rand)
        self.assertEqual(len(randoms), 3, randoms)

    def test_shape_and_unknown_ids(self):
        src = self.create(language_pack="shell")
        snap = self.snapshot(src["id"])
        self.assertEqual(snap["labels"], {})
        for fields in ({"memory_mib": src["memory_mib"] * 2}, {"language_pack": "python"},
                       {"vcpus": src["vcpus"] + 1}, {"overlay_mib": src["overlay_mib"] // 2}):
            status, body, raw = self.d.request("POST", "/sandboxes",
                                               {"from_snapshot": snap["id"], **fields})
            self.assertEqual(status, 400, f"{fields}: {raw}")
            self.assertEqual(body["error"]["code"], "invalid_argument")
        sb = self.create(from_snapshot=snap["id"], language_pack="shell",
                         memory_mib=src["memory_mib"], vcpus=src["vcpus"],
                         overlay_mib=src["overlay_mib"])
        self.assertEqual(sb["boot_mode"], "snapshot")
        unknown = "snap_" + "0" * 32
        self.assertEqual(self.d.request("GET", f"/snapshots/{unknown}")[0], 404)
        self.assertEqual(self.d.request("DELETE", f"/snapshots/{unknown}")[0], 404)
        status, _, raw = self.d.request("POST", "/sandboxes", {"from_snapshot": unknown})
        self.assertIn(status, (400, 404), raw)
        self.assertEqual(self.d.request("POST", f"/sandboxes/sb_{'0' * 32}/snapshots")[0], 404)

    def test_delete_removes_the_snapshot_and_its_files(self):
        src = self.create(language_pack="shell")
        status, snap, raw = self.d.request("POST", f"/sandboxes/{src['id']}/snapshots")
        self.assertEqual(status, 201, raw)
        self.assertTrue(self.snapshot_files(snap["id"]))
        sb = self.create(from_snapshot=snap["id"])
        self.assertEqual(self.d.request("DELETE", f"/snapshots/{snap['id']}")[0], 204)
        self.assertEqual(self.snapshot_files(snap["id"]), [])
        self.assertEqual(self.d.request("GET", f"/snapshots/{snap['id']}")[0], 404)
        status, listing, _ = self.d.request("GET", "/snapshots")
        self.assertNotIn(snap["id"], [s["id"] for s in listing["snapshots"]])
        # a sandbox started from it runs on
        self.assertEqual(self.run_code(sb["id"], "echo alive"), "alive\n")


class EmberctlTest(Base):
    def ctl(self, *args, expect=0):
        proc = subprocess.run([CTL, "--addr", self.d.addr, *args], capture_output=True,
                              text=True, timeout=300)
        self.assertEqual(proc.returncode, expect, proc.stdout + proc.stderr)
        self.assertEqual(harness.sanitizer_problems(proc.stderr), [])
        return proc

    def test_the_commands(self):
        src = self.create(language_pack="shell")
        sid = src["id"]
        self.assertRegex(self.ctl("pause", sid).stdout,
                         rf"^{sid} paused expires_at \d{{4}}-\d\d-\d\dT[\d:.]+Z\n$")
        self.assertEqual(self.d.request("GET", f"/sandboxes/{sid}")[1]["state"], "paused")
        err = self.ctl("pause", sid, expect=1).stderr
        self.assertIn("HTTP 409 conflict", err)
        self.assertRegex(self.ctl("resume", sid).stdout, rf"^{sid} ready expires_at \S+Z\n$")

        forks = self.ctl("fork", sid, "--count", "2", "--label", "via=ctl").stdout.split()
        self.assertEqual(len(forks), 2, forks)
        for fork_id in forks:
            self.addCleanup(self.d.request, "DELETE", f"/sandboxes/{fork_id}")
            sb = self.d.request("GET", f"/sandboxes/{fork_id}")[1]
            self.assertEqual((sb["boot_mode"], sb["labels"]), ("fork", {"via": "ctl"}))
        self.assertIn("--count must be a whole number",
                      self.ctl("fork", sid, "--count", "x", expect=2).stderr)

        snap_id = self.ctl("snapshot", sid, "--label", "k=v").stdout.strip()
        self.assertRegex(snap_id, SNAP_ID)
        self.addCleanup(self.d.request, "DELETE", f"/snapshots/{snap_id}")
        listing = self.ctl("snapshots").stdout.splitlines()
        self.assertEqual(listing[0].split(), ["ID", "PACK", "BYTES", "CREATED", "SANDBOX"])
        row = [line.split() for line in listing[1:] if line.startswith(snap_id)]
        self.assertEqual(len(row), 1, listing)
        self.assertEqual((row[0][1], row[0][4]), ("shell", sid))
        self.assertGreater(int(row[0][2]), 0)

        new_id = self.ctl("create", "--from-snapshot", snap_id).stdout.strip()
        self.addCleanup(self.d.request, "DELETE", f"/sandboxes/{new_id}")
        self.assertEqual(self.d.request("GET", f"/sandboxes/{new_id}")[1]["boot_mode"],
                         "snapshot")
        self.assertEqual(self.ctl("rm-snapshot", snap_id).stdout, f"{snap_id}\n")
        self.assertEqual(self.d.request("GET", f"/snapshots/{snap_id}")[0], 404)
        self.assertIn("HTTP 404 not_found", self.ctl("rm-snapshot", snap_id, expect=1).stderr)


class SnapshotLimitTest(Base):
    daemon_args = ("--max-snapshots", "1")

    def test_one_snapshot_beyond_max_snapshots_is_429(self):
        src = self.create(language_pack="shell")
        first = self.snapshot(src["id"])
        status, body, raw = self.d.request("POST", f"/sandboxes/{src['id']}/snapshots")
        self.assertEqual(status, 429, raw)
        self.assertEqual(body["error"]["code"], "capacity")
        self.assertEqual(self.d.request("DELETE", f"/snapshots/{first['id']}")[0], 204)
        self.snapshot(src["id"])


class SnapshotRestartTest(unittest.TestCase):
    def test_snapshots_survive_a_daemon_restart(self):
        d = harness.Daemon()
        try:
            src = d.create(language_pack="shell")
            status, res, _ = d.exec(src["id"], "echo before the restart > /tmp/note")
            self.assertEqual(status, 200)
            status, snap, raw = d.request("POST", f"/sandboxes/{src['id']}/snapshots")
            self.assertEqual(status, 201, raw)
            self.assertEqual(d.delete(src["id"]), 204)
            self.assertEqual(d.sigterm(), 0)
            d = harness.Daemon(reuse=d)
            status, listing, _ = d.request("GET", "/snapshots")
            self.assertEqual(status, 200)
            self.assertEqual([s["id"] for s in listing["snapshots"]], [snap["id"]])
            self.assertEqual(d.request("GET", f"/snapshots/{snap['id']}")[1], snap)
            sb = d.create(from_snapshot=snap["id"])
            status, res, _ = d.exec(sb["id"], "cat /tmp/note")
            self.assertEqual((status, res["stdout"]), (200, "before the restart\n"))
            self.assertEqual(d.delete(sb["id"]), 204)
            self.assertEqual(d.request("DELETE", f"/snapshots/{snap['id']}")[0], 204)
        finally:
            d.stop()


class SnapshotPinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.images = test_reload.Images()
        cls.images.write(["shell"])
        try:
            cls.d = harness.Daemon("--images", cls.images.dir)
        except Exception:
            cls.images.remove()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.images.remove()

    def test_a_snapshot_of_a_changed_pack_is_refused(self):
        src = self.d.create(language_pack="shell")
        status, snap, raw = self.d.request("POST", f"/sandboxes/{src['id']}/snapshots")
        self.assertEqual(status, 201, raw)
        self.addCleanup(self.d.request, "DELETE", f"/snapshots/{snap['id']}")
        self.assertEqual(self.d.delete(src["id"]), 204)
        sb = self.d.create(from_snapshot=snap["id"])  # the pack as it was: fine
        self.assertEqual(self.d.delete(sb["id"]), 204)

        self.images.write([self.images.changed("shell")])
        self.assertEqual(test_reload.reload(self.d)["changed"], ["shell"])
        status, body, raw = self.d.request("POST", "/sandboxes", {"from_snapshot": snap["id"]})
        self.assertEqual(status, 409, raw)
        self.assertEqual(body["error"]["code"], "conflict")
        self.assertRegex(body["error"]["message"], r"(?i)pack|image|digest")
        self.assertEqual(self.d.request("GET", "/sandboxes")[1]["sandboxes"], [])
        # the snapshot itself is still there, to be deleted by its owner
        self.assertEqual(self.d.request("GET", f"/snapshots/{snap['id']}")[0], 200)


if __name__ == "__main__":
    unittest.main()
