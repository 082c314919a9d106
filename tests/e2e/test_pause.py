"""Pause and resume (issue 15, docs/api.md "Pause and resume"): POST /sandboxes/{id}/pause writes
the whole VM to the state directory and stops its VMM; POST .../resume runs it on from there.

- PauseTest (QEMU): a context variable, a file in /tmp and a running background counter (its
  earlier output still in its ring, counting on from where it was) survive one pause and five
  in a row; while paused there is no VMM, every request to the guest is 409, the lifetime
  clock stops and the saved file exists; the resume removes it; the guest's clock is the
  host's after a pause; a busy sandbox, a second pause, a resume of a ready one are 409, an
  unknown id 404; DELETE of a paused sandbox leaves nothing behind; the paused gauge.
- PausedExpiryTest: with --max-paused-s 5 a paused sandbox is deleted after ~5 s.
- FullStateDirTest: a save that fails (a full --state-dir) leaves the sandbox running as it was;
  FirecrackerFullStateDirTest: the same under the fake Firecracker.
- PausedRestartTest: a paused sandbox survives a daemon SIGKILL and resumes with its memory
  and files; a saved VM no record names is removed at startup; with --keep-sandboxes it
  outlives a clean restart too, with the lifetime it had left; without, a stop deletes it and
  its saved VM.
- FirecrackerPauseTest: the Firecracker driver (the fake, unjailed): two pause/resume cycles
  keep a context variable, a file in /tmp and a running counter; no VMM while paused, the
  saved VM is two files (<id>.vmstate and its RAM in <id>.vmstate.mem), none after the resume
  nor after a DELETE of a paused sandbox; a fork of 2 gives distinct copies; a snapshot
  outlives its source and starts a sandbox. JailedFirecrackerPauseTest: the same pause and
  resume under the fake jailer (root only). FirecrackerPausedRestartTest: PausedRestartTest's
  restarts under the fake, the saved VM's two files kept and removed together.
"""

import datetime
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
import harness  # noqa: E402

FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
NDJSON = "application/x-ndjson"
# A background process that prints 1, 2, 3, ... every 0.2 s.
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done"]
PAUSED_MESSAGE = re.compile(r"^sandbox `sb_[0-9a-f]{32}` is paused: "
                            r"POST /sandboxes/\{id\}/resume first$")


def wall(timestamp):
    """Seconds since the epoch of a timestamp as the daemon writes them."""
    return datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class PauseBase(unittest.TestCase):
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

    def get(self, sandbox_id):
        status, sb, raw = self.d.request("GET", f"/sandboxes/{sandbox_id}")
        self.assertEqual(status, 200, raw)
        return sb

    def pause(self, sandbox_id, expect=200):
        status, body, raw = self.d.request("POST", f"/sandboxes/{sandbox_id}/pause")
        self.assertEqual(status, expect, raw)
        return body

    def resume(self, sandbox_id, expect=200):
        status, body, raw = self.d.request("POST", f"/sandboxes/{sandbox_id}/resume")
        self.assertEqual(status, expect, raw)
        return body


class PauseChecks(PauseBase):
    """What the pause tests of every driver check with."""

    def run_py(self, sandbox_id, code, **fields):
        status, res, raw = self.d.exec(sandbox_id, code, **fields)
        self.assertEqual(status, 200, raw)
        self.assertEqual(res["exit_code"], 0, res)
        return res["stdout"]

    def output(self, sandbox_id, pid):
        """What background process pid's stdout ring holds (GET .../output, not followed)."""
        path = f"/sandboxes/{sandbox_id}/processes/{pid}/output"
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=120)
        try:
            conn.request("GET", path, headers={"Accept": NDJSON})
            resp = conn.getresponse()
            payload = resp.read()
            self.d.check_contract("GET", path, None, resp.status, dict(resp.getheaders()),
                                  payload)
        finally:
            conn.close()
        self.assertEqual(resp.status, 200, payload)
        return "".join(ev["data"] for ev in contract.parse_events(NDJSON, payload)
                       if ev["type"] == "stdout")

    def counted(self, sandbox_id, pid):
        """The counter's numbers so far, checked to be 1, 2, 3, ... without a gap or restart."""
        text = self.output(sandbox_id, pid)
        numbers = [int(n) for n in text.split("\n")[:-1]]  # the last line may be partial
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)), text[-300:])
        return len(numbers)

    def prepare(self):
        """A python sandbox with a context holding x = 41, /tmp/kept and a running counter
        that has counted to 3 at least; returns (sandbox, context id, counter pid)."""
        sb = self.create(language_pack="python")
        status, ctx, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/contexts", {})
        self.assertEqual(status, 201, raw)
        self.run_py(sb["id"], "x = 41", context_id=ctx["id"])
        self.run_py(sb["id"], "open('/tmp/kept', 'w').write('kept across pauses')")
        status, proc, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/processes",
                                           {"cmd": COUNTER})
        self.assertEqual(status, 201, raw)
        harness.wait_for(lambda: self.counted(sb["id"], proc["pid"]) >= 3, 120,
                         "the counter to count to 3")
        return sb, ctx["id"], proc["pid"]

    def assert_all_kept(self, sb, ctx, pid, counted_before):
        """After a resume: x, /tmp/kept and the counter, which counts on from where it was."""
        self.assertEqual(self.run_py(sb["id"], "x += 1; print(x)", context_id=ctx), "42\n")
        self.run_py(sb["id"], "x -= 1", context_id=ctx)
        self.assertEqual(self.run_py(sb["id"], "print(open('/tmp/kept').read())"),
                         "kept across pauses\n")
        status, proc, raw = self.d.request("GET", f"/sandboxes/{sb['id']}/processes/{pid}")
        self.assertEqual((status, proc["state"]), (200, "running"), raw)
        # counted() holds that the ring still starts at 1 and never restarted; more numbers
        # than before the pause means it counts on
        harness.wait_for(lambda: self.counted(sb["id"], pid) > counted_before + 2, 120,
                         "the counter to count on after the resume")

    def saved_file(self, sandbox_id):
        return [f for f in self.d.paused_files() if os.path.basename(f).startswith(sandbox_id)]


class PauseTest(PauseChecks):
    def test_pause_and_resume_keep_context_files_and_a_running_process(self):
        sb, ctx, pid = self.prepare()
        before = self.get(sb["id"])
        old_vmm = before["vmm_pid"]
        counted = self.counted(sb["id"], pid)
        t_pause = time.time()
        paused = self.pause(sb["id"])
        self.assertEqual(paused["state"], "paused", paused)
        self.assertIsNone(paused["vmm_pid"], paused)
        # the lifetime stops; what runs instead is --max-paused-s (default 7 days)
        self.assertAlmostEqual(wall(paused["expires_at"]), t_pause + 604800, delta=30)
        left = wall(before["expires_at"]) - t_pause

        # while paused: no VMM, the state is a file, the guest is not reachable
        self.assertEqual(self.get(sb["id"])["state"], "paused")
        harness.wait_for(lambda: not harness.pid_alive(old_vmm), 30, "the old VMM to exit")
        self.assertEqual([p for p in harness.processes_mentioning(
            os.path.join(self.d.run_dir, sb["id"])) if harness.pid_alive(p)], [])
        self.assertEqual(len(self.saved_file(sb["id"])), 1, self.d.paused_files())
        self.assertGreater(os.path.getsize(self.saved_file(sb["id"])[0]), 1 << 20)
        for method, path, body in [
                ("POST", "/exec", {"code": "print(1)"}),
                ("POST", "/exec", {"code": "print(x)", "context_id": ctx}),
                ("GET", "/processes", None),
                ("POST", "/processes", {"cmd": ["true"]}),
                ("GET", "/files?path=/tmp/kept", None),
                ("GET", "/contexts", None)]:
            # subTest: one that answers otherwise is reported, the rest of the test still runs
            with self.subTest(request=f"{method} {path}"):
                status, reply, raw = self.d.request(method, f"/sandboxes/{sb['id']}{path}",
                                                    body)
                self.assertEqual(status, 409, raw)
                self.assertEqual(reply["error"]["code"], "conflict")
                self.assertRegex(reply["error"]["message"], PAUSED_MESSAGE)
        status, _, metrics = self.d.request("GET", "/metrics")
        self.assertIn('emberd_sandboxes{state="paused"} 1\n', metrics.decode())

        time.sleep(2)
        t_resume = time.time()
        resumed = self.resume(sb["id"])
        self.assertEqual(resumed["state"], "ready", resumed)
        self.assertTrue(harness.pid_alive(resumed["vmm_pid"]), resumed)
        self.assertNotEqual(resumed["vmm_pid"], old_vmm)
        # the lifetime it had left, from the resume on (not shortened by the pause)
        self.assertAlmostEqual(wall(resumed["expires_at"]) - t_resume, left, delta=5)
        self.assertEqual(self.saved_file(sb["id"]), [])
        status, _, metrics = self.d.request("GET", "/metrics")
        self.assertIn('emberd_sandboxes{state="paused"} 0\n', metrics.decode())
        # the resumed VMM holds about what the guest had touched, not its whole RAM: its
        # RAM is a memfd of its own whose zero pages were freed before it ran
        ram = harness.memfd_mapping(resumed["vmm_pid"], "emberd-ram", sb["memory_mib"])
        self.assertIsNotNone(ram, f"no {sb['memory_mib']} MiB memfd mapping")
        self.assertLess(ram["rss_kib"], sb["memory_mib"] * 1024 // 2, ram)
        self.assert_all_kept(sb, ctx, pid, counted)
        # a snapshot reads all of it (every page QEMU sends): the zero ones are freed again
        status, snap, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/snapshots")
        self.assertEqual(status, 201, raw)
        self.addCleanup(self.d.request, "DELETE", f"/snapshots/{snap['id']}")
        ram = harness.memfd_mapping(resumed["vmm_pid"], "emberd-ram", sb["memory_mib"])
        self.assertLess(ram["rss_kib"], sb["memory_mib"] * 1024 // 2, ram)
        self.assertEqual(self.run_py(sb["id"], "print(open('/tmp/kept').read())"),
                         "kept across pauses\n")

    def test_five_pauses_in_a_row_keep_everything(self):
        sb, ctx, pid = self.prepare()
        for cycle in range(5):
            with self.subTest(cycle=cycle):
                counted = self.counted(sb["id"], pid)
                self.assertEqual(self.pause(sb["id"])["state"], "paused")
                self.assertEqual(self.resume(sb["id"])["state"], "ready")
                self.assert_all_kept(sb, ctx, pid, counted)
        self.assertEqual(self.d.paused_files(), [])

    def test_the_guest_clock_is_the_hosts_after_a_pause(self):
        sb = self.create(language_pack="python")
        self.pause(sb["id"])
        time.sleep(5)  # a guest clock that stopped with the VM would now be 5 s behind
        self.resume(sb["id"])
        t0 = time.time()
        guest = float(self.run_py(sb["id"], "import time; print(time.time())"))
        t1 = time.time()
        self.assertGreater(guest, t0 - 2, "the guest's clock is behind the host's")
        self.assertLess(guest, t1 + 2, "the guest's clock is ahead of the host's")
        # and so does `date +%s`
        t0 = time.time()
        guest = int(self.run_py(sb["id"], "import subprocess; "
                                          "print(subprocess.check_output(['date', '+%s'])"
                                          ".decode().strip())"))
        t1 = time.time()
        self.assertGreaterEqual(guest, int(t0) - 2)
        self.assertLessEqual(guest, int(t1) + 2)

    def test_a_busy_sandbox_is_not_paused(self):
        sb = self.create(language_pack="python")
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            r=self.d.exec(sb["id"], "import time; time.sleep(6); print('done')")))
        worker.start()
        try:
            harness.wait_for(lambda: self.get(sb["id"])["execs_running"] == 1, 60,
                             "the exec to run")
            status, reply, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/pause")
            self.assertEqual(status, 409, raw)
            self.assertEqual(reply["error"]["code"], "conflict")
            self.assertIn("in flight", reply["error"]["message"])
            self.assertIn("pause once it ended", reply["error"]["message"])
            self.assertEqual(self.get(sb["id"])["state"], "ready")
        finally:
            worker.join(120)
        status, res, _ = result["r"]
        self.assertEqual((status, res["stdout"]), (200, "done\n"))
        self.assertEqual(self.d.paused_files(), [])
        # nothing changed: it pauses once idle
        self.assertEqual(self.pause(sb["id"])["state"], "paused")
        self.assertEqual(self.resume(sb["id"])["state"], "ready")
        self.assertEqual(self.run_py(sb["id"], "print(6*7)"), "42\n")

    def test_wrong_states_are_409_and_unknown_ids_404(self):
        sb = self.create(language_pack="shell")
        status, reply, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/resume")
        self.assertEqual(status, 409, raw)
        self.assertIn("is ready, not paused", reply["error"]["message"])
        self.pause(sb["id"])
        status, reply, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/pause")
        self.assertEqual(status, 409, raw)
        self.assertIn("is paused, not ready", reply["error"]["message"])
        self.assertEqual(self.get(sb["id"])["state"], "paused")
        self.resume(sb["id"])
        status, res, _ = self.d.exec(sb["id"], "echo hi")
        self.assertEqual((status, res["stdout"]), (200, "hi\n"))
        unknown = "sb_" + "0" * 32
        for action in ("pause", "resume"):
            status, reply, raw = self.d.request("POST", f"/sandboxes/{unknown}/{action}")
            self.assertEqual(status, 404, raw)
            self.assertEqual(reply["error"]["code"], "not_found")

    def test_delete_of_a_paused_sandbox_leaves_nothing(self):
        sb = self.d.create(language_pack="shell")
        self.pause(sb["id"])
        self.assertEqual(len(self.saved_file(sb["id"])), 1, self.d.paused_files())
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assertEqual(self.d.request("GET", f"/sandboxes/{sb['id']}")[0], 404)
        self.assertEqual(self.saved_file(sb["id"]), [])
        self.assertFalse(os.path.exists(os.path.join(self.d.run_dir, sb["id"])))


class PausedExpiryTest(PauseBase):
    daemon_args = ("--max-paused-s", "5")

    def test_a_paused_sandbox_is_deleted_after_max_paused_s(self):
        sb = self.d.create(language_pack="shell", timeout_s=3600)
        t_pause = time.time()
        paused = self.pause(sb["id"])
        self.assertAlmostEqual(wall(paused["expires_at"]), t_pause + 5, delta=3)
        harness.wait_for(lambda: self.d.request("GET", f"/sandboxes/{sb['id']}")[0] == 404,
                         90, "the paused sandbox to be deleted")
        self.assertGreater(time.time() - t_pause, 4, "deleted before --max-paused-s")
        self.assertEqual(self.d.paused_files(), [])
        self.assertFalse(os.path.exists(os.path.join(self.d.run_dir, sb["id"])))


class FullStateDirTest(unittest.TestCase):
    """A save that fails (--state-dir on a full file system) leaves the sandbox running as it
    was: a pause, a snapshot and a fork each fail, and the source still answers with its
    files; nothing is left in the state dir."""
    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.small = tempfile.mkdtemp(prefix="emt-full.", dir="/var/tmp")
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                            cls.small], check=True)
        except Exception:
            os.rmdir(cls.small)
            raise
        try:
            cls.d = harness.Daemon(*cls.daemon_args, "--state-dir", cls.small)
        except Exception:
            subprocess.run(["umount", cls.small], check=False)
            os.rmdir(cls.small)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            subprocess.run(["umount", cls.small], check=True)
            os.rmdir(cls.small)

    def test_a_failed_save_leaves_the_sandbox_running(self):
        sb = self.d.create(language_pack="shell")
        self.addCleanup(self.d.request, "DELETE", f"/sandboxes/{sb['id']}")
        status, res, raw = self.d.exec(sb["id"], "echo kept > /tmp/kept")
        self.assertEqual(status, 200, raw)
        for path, body in ((f"/sandboxes/{sb['id']}/pause", None),
                           (f"/sandboxes/{sb['id']}/snapshots", {}),
                           (f"/sandboxes/{sb['id']}/fork", {"count": 1})):
            with self.subTest(request=path):
                status, reply, raw = self.d.request("POST", path, body)
                self.assertGreaterEqual(status, 500, raw)
                self.assertIn("error", reply)
                after = self.d.request("GET", f"/sandboxes/{sb['id']}")[1]
                self.assertEqual((after["state"], after["vmm_pid"]), ("ready", sb["vmm_pid"]))
                status, res, raw = self.d.exec(sb["id"], "cat /tmp/kept")
                self.assertEqual((status, res["stdout"]), (200, "kept\n"), raw)
        self.assertEqual(self.d.request("GET", "/snapshots")[1]["snapshots"], [])
        left = [os.path.join(dp, f) for dp, _, fs in os.walk(self.small) for f in fs]
        self.assertEqual(left, [])
        self.assertEqual(len(self.d.request("GET", "/sandboxes")[1]["sandboxes"]), 1)


class FirecrackerFullStateDirTest(FullStateDirTest):
    """The same under the fake Firecracker: its /snapshot/create fails on the full disk, the
    driver resumes the VM and the daemon reaches the agent on a new vsock connection (the old
    one was reset at the snapshot)."""
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC, "--no-jail",
                   "--no-snapshots")


class PausedRestartTest(unittest.TestCase):
    """A paused sandbox survives a daemon SIGKILL: the next daemon lists it paused; resumed,
    it has its memory and files (its processes and contexts ended with the daemon that knew
    them); DELETE then leaves nothing."""
    daemon_args = ()
    saved_count = 1  # files of one saved VM

    def test_a_paused_sandbox_survives_sigkill_and_resumes(self):
        d = harness.Daemon(*self.daemon_args)
        try:
            sb = d.create(language_pack="python")
            status, res, raw = d.exec(sb["id"], "open('/tmp/note', 'w').write('before the crash')\n"
                                      "import builtins; builtins.kept = 7")
            self.assertEqual((status, res["exit_code"]), (200, 0), raw)
            status, paused, raw = d.request("POST", f"/sandboxes/{sb['id']}/pause")
            self.assertEqual(status, 200, raw)
            self.assertEqual(len(d.paused_files()), self.saved_count)
            d.kill9()
            # a RAM file whose saved VM is gone (a crash between Firecracker's two files)
            paused_dir = os.path.dirname(d.paused_files()[0])
            with open(os.path.join(paused_dir, "sb_" + "0" * 32 + ".vmstate.mem"), "w"):
                pass
            d = harness.Daemon(*self.daemon_args, reuse=d)
            status, again, raw = d.request("GET", f"/sandboxes/{sb['id']}")
            self.assertEqual(status, 200, raw)
            self.assertEqual((again["state"], again["vmm_pid"]), ("paused", None))
            # the stray is gone, the kept VM's files stay
            self.assertEqual(sorted(os.path.basename(f) for f in d.paused_files()),
                             [f"{sb['id']}.vmstate", f"{sb['id']}.vmstate.mem"][
                                 :self.saved_count])
            # the same moment, through a wall-clock round trip (a millisecond either way)
            self.assertAlmostEqual(wall(again["expires_at"]), wall(paused["expires_at"]),
                                   delta=0.01)
            status, res, raw = d.exec(sb["id"], "print(1)")
            self.assertEqual(status, 409, raw)
            status, resumed, raw = d.request("POST", f"/sandboxes/{sb['id']}/resume")
            self.assertEqual(status, 200, raw)
            self.assertEqual(resumed["state"], "ready")
            self.assertEqual(d.paused_files(), [])
            status, res, raw = d.exec(sb["id"], "print(open('/tmp/note').read())")
            self.assertEqual((status, res["stdout"]), (200, "before the crash\n"), raw)
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()

    def test_a_stray_saved_file_is_removed_at_startup(self):
        d = harness.Daemon(*self.daemon_args)
        try:
            sb = d.create(language_pack="shell")
            self.assertEqual(d.request("POST", f"/sandboxes/{sb['id']}/pause")[0], 200)
            d.kill9()
            # its record is gone: nothing names the saved VM any more
            os.unlink(os.path.join(d.run_dir, sb["id"], "sandbox.json"))
            d = harness.Daemon(*self.daemon_args, reuse=d)
            self.assertEqual(d.request("GET", f"/sandboxes/{sb['id']}")[0], 404)
            self.assertEqual(d.paused_files(), [])
        finally:
            d.stop()

    def test_a_paused_sandbox_outlives_a_restart_with_keep_sandboxes(self):
        d = harness.Daemon(*self.daemon_args, "--keep-sandboxes")
        try:
            sb = d.create(language_pack="shell", timeout_s=3600)
            status, res, _ = d.exec(sb["id"], "echo kept > /tmp/note; echo ok")
            self.assertEqual((status, res["stdout"]), (200, "ok\n"))
            before = d.request("GET", f"/sandboxes/{sb['id']}")[1]
            t_pause = time.time()
            status, _, raw = d.request("POST", f"/sandboxes/{sb['id']}/pause")
            self.assertEqual(status, 200, raw)
            left = wall(before["expires_at"]) - t_pause
            self.assertEqual(d.sigterm(), 0)
            self.assertEqual(len(d.paused_files()), self.saved_count, d.paused_files())
            time.sleep(3)  # a lifetime that ran on while paused would be shorter now
            d = harness.Daemon(*self.daemon_args, "--keep-sandboxes", reuse=d)
            status, again, _ = d.request("GET", f"/sandboxes/{sb['id']}")
            self.assertEqual((status, again["state"], again["vmm_pid"]), (200, "paused", None))
            t_resume = time.time()
            status, resumed, raw = d.request("POST", f"/sandboxes/{sb['id']}/resume")
            self.assertEqual((status, resumed["state"]), (200, "ready"), raw)
            # the lifetime it had left at the pause, from the resume on
            self.assertAlmostEqual(wall(resumed["expires_at"]) - t_resume, left, delta=2.5)
            status, res, _ = d.exec(sb["id"], "cat /tmp/note")
            self.assertEqual((status, res["stdout"]), (200, "kept\n"))
            self.assertEqual(d.paused_files(), [])
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()

    def test_a_stop_without_keep_sandboxes_deletes_paused_sandboxes(self):
        d = harness.Daemon(*self.daemon_args)
        try:
            sb = d.create(language_pack="shell")
            status, _, raw = d.request("POST", f"/sandboxes/{sb['id']}/pause")
            self.assertEqual(status, 200, raw)
            self.assertEqual(len(d.paused_files()), self.saved_count)
        finally:
            d.stop()  # fails on paused files or sandbox directories left behind


class FirecrackerPausedRestartTest(PausedRestartTest):
    """The same under the fake Firecracker: a saved VM is two files, both kept and removed
    together."""
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC, "--no-jail",
                   "--no-snapshots")
    saved_count = 2


class FirecrackerPauseTest(PauseChecks):
    """The fake Firecracker (tests/fakes/firecracker) stands in for the real one; its vsock is
    a virtio-serial port, so the guest's port session is what suspends (docs/firecracker.md)."""
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC, "--no-jail",
                   "--no-snapshots")
    saved_mode = 0o600  # a saved VM holds the guest's every secret: the daemon's alone

    def saved_names(self, sandbox_id):
        return sorted(os.path.basename(f) for f in self.saved_file(sandbox_id))

    def test_pause_and_resume_keep_context_files_and_a_running_process(self):
        sb, ctx, pid = self.prepare()
        for cycle in range(2):  # the second saves a VM that was loaded from a saved one
            with self.subTest(cycle=cycle):
                old_vmm = self.get(sb["id"])["vmm_pid"]
                counted = self.counted(sb["id"], pid)
                paused = self.pause(sb["id"])
                self.assertEqual((paused["state"], paused["vmm_pid"]), ("paused", None))
                harness.wait_for(lambda: not harness.pid_alive(old_vmm), 30,
                                 "the old VMM to exit")
                self.assertEqual([p for p in harness.processes_mentioning(
                    os.path.join(self.d.run_dir, sb["id"])) if harness.pid_alive(p)], [])
                self.assertEqual(self.saved_names(sb["id"]),
                                 [f"{sb['id']}.vmstate", f"{sb['id']}.vmstate.mem"])
                for f in self.saved_file(sb["id"]):
                    self.assertEqual(os.stat(f).st_mode & 0o777, self.saved_mode, f)
                mem = [f for f in self.saved_file(sb["id"]) if f.endswith(".mem")][0]
                self.assertEqual(os.path.getsize(mem), sb["memory_mib"] << 20)
                status, reply, raw = self.d.request("POST", f"/sandboxes/{sb['id']}/exec",
                                                    {"code": "print(1)"})
                self.assertEqual(status, 409, raw)
                self.assertRegex(reply["error"]["message"], PAUSED_MESSAGE)

                resumed = self.resume(sb["id"])
                self.assertEqual(resumed["state"], "ready", resumed)
                self.assertNotEqual(resumed["vmm_pid"], old_vmm)
                self.assertEqual(self.saved_file(sb["id"]), [])
                self.assert_all_kept(sb, ctx, pid, counted)

    def test_delete_of_a_paused_sandbox_leaves_nothing(self):
        sb = self.d.create(language_pack="shell")
        self.pause(sb["id"])
        self.assertEqual(len(self.saved_file(sb["id"])), 2, self.d.paused_files())
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assertEqual(self.d.request("GET", f"/sandboxes/{sb['id']}")[0], 404)
        self.assertEqual(self.d.paused_files(), [])
        self.assertFalse(os.path.exists(os.path.join(self.d.run_dir, sb["id"])))

    def test_a_fork_of_two_gives_distinct_copies_and_the_source_runs_on(self):
        src = self.create(language_pack="python")
        self.run_py(src["id"], "open('/tmp/from_source', 'w').write('source data')")
        status, reply, raw = self.d.request("POST", f"/sandboxes/{src['id']}/fork",
                                            {"count": 2})
        self.assertEqual(status, 201, raw)
        ids = [f["id"] for f in reply["sandboxes"]]
        for sandbox_id in ids:
            self.addCleanup(self.d.request, "DELETE", f"/sandboxes/{sandbox_id}")
        self.assertEqual(len(set(ids + [src["id"]])), 3, ids)
        after = self.get(src["id"])
        self.assertEqual((after["state"], after["vmm_pid"]), ("ready", src["vmm_pid"]))
        self.assertEqual(self.d.paused_files(), [])
        randoms = {self.run_py(i, "import os; print(os.urandom(16).hex())")
                   for i in ids + [src["id"]]}
        self.assertEqual(len(randoms), 3, randoms)
        check = "import os; print(open('/tmp/from_source').read(), os.path.exists('/tmp/mine'))"
        self.run_py(ids[0], "open('/tmp/mine', 'w').write('fork 0')")
        self.assertEqual(self.run_py(ids[0], check), "source data True\n")
        for sandbox_id in ids[1:] + [src["id"]]:
            self.assertEqual(self.run_py(sandbox_id, check), "source data False\n")

    def test_a_snapshot_outlives_its_source_and_starts_a_sandbox(self):
        src = self.d.create(language_pack="python")
        self.run_py(src["id"], "open('/home/sandbox/data.txt', 'w').write('in a snapshot')")
        status, snap, raw = self.d.request("POST", f"/sandboxes/{src['id']}/snapshots")
        self.assertEqual(status, 201, raw)
        self.addCleanup(self.d.request, "DELETE", f"/snapshots/{snap['id']}")
        # both files count: the device state and every RAM page
        self.assertGreaterEqual(snap["size_bytes"], src["memory_mib"] << 20, snap)
        self.assertEqual(self.run_py(src["id"], "print(6*7)"), "42\n")
        self.assertEqual(self.d.delete(src["id"]), 204)
        sb = self.create(from_snapshot=snap["id"])
        self.assertEqual(sb["boot_mode"], "snapshot", sb)
        self.assertEqual(self.run_py(sb["id"], "print(open('data.txt').read())"),
                         "in a snapshot\n")
        status, _, raw = self.d.request("DELETE", f"/snapshots/{snap['id']}")
        self.assertEqual(status, 204, raw)
        for root, _, files in os.walk(self.d.state_dir):
            self.assertEqual([f for f in files if snap["id"] in f], [], root)


class JailedFirecrackerPauseTest(FirecrackerPauseTest):
    """The same under the fake jailer: the save is written in the jail and moved out, a resume
    reads hard links of it in a new jail."""
    saved_mode = 0o644  # a jailed resume's own uid reads it through a link; the dir is 0700

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("the jailer needs a root daemon")
        cls.base = tempfile.mkdtemp(prefix="emj.", dir="/tmp")
        os.chmod(cls.base, 0o755)  # the fake reaches its jail through the base's path
        try:
            cls.d = harness.Daemon("--vmm", "firecracker", "--firecracker-bin", FAKE_FC,
                                   "--jailer", os.path.join(os.path.dirname(FAKE_FC), "jailer"),
                                   "--no-snapshots",
                                   env={"EMBERD_JAILER_CHROOT_BASE": cls.base})
        except Exception:
            shutil.rmtree(cls.base, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
            jails = os.path.join(cls.base, "firecracker")
            leftover = os.listdir(jails) if os.path.isdir(jails) else []
        finally:
            shutil.rmtree(cls.base, True)
        if leftover:
            raise AssertionError(f"jails left behind: {leftover}")


if __name__ == "__main__":
    unittest.main()
