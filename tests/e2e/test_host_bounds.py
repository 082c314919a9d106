"""Host resources a guest or a client must not be able to exhaust through the daemon: the memory
a response takes (output escaped up to 6x), and the time a DELETE takes when the guest stopped
reading (it must not wait out a write deadline per request in flight)."""

import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MIB = 1 << 20


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def reset_hwm(pid):
    # Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class ResponseMemoryTest(unittest.TestCase):
    EXECS = 8
    STREAM = 16 * MIB

    @classmethod
    def setUpClass(cls):
        # A small ASan quarantine, so freed buffers do not count as held (the default 256 MiB
        # would be most of the bound on its own).
        cls.d = harness.Daemon("--no-snapshots", "--max-sandboxes", "4", env={
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"})

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def streamed_exec(self, sandbox_id, code):
        """The exec's response read in pieces: (Content-Length, bytes read, head, tail)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=600)
        try:
            conn.request("POST", f"/sandboxes/{sandbox_id}/exec", body=json.dumps({
                "code": code, "max_output_bytes": self.STREAM, "timeout_ms": 540000}),
                headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            length, total, head, tail = int(resp.getheader("Content-Length")), 0, b"", b""
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                if len(head) < 512:
                    head += chunk[:512]
                tail = (tail + chunk)[-512:]
                total += len(chunk)
            return length, total, head, tail
        finally:
            conn.close()

    def test_parallel_control_character_floods_stay_bounded(self):
        sb = self.d.create(language_pack="shell")
        flood = (f"head -c {self.STREAM} /dev/zero | tr '\\000' '\\001'; "
                 f"head -c {self.STREAM} /dev/zero | tr '\\000' '\\001' >&2")
        pid = self.d.proc.pid
        reset_hwm(pid)
        before = vm_hwm_kib(pid)
        try:
            with concurrent.futures.ThreadPoolExecutor(self.EXECS) as pool:
                results = list(pool.map(lambda _: self.streamed_exec(sb["id"], flood),
                                        range(self.EXECS)))
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)
        growth_mib = (vm_hwm_kib(pid) - before) / 1024
        print(f"\nresponse memory: daemon peak RSS grew {growth_mib:.0f} MiB for {self.EXECS} "
              f"parallel execs of 2 x {self.STREAM // MIB} MiB of control characters "
              f"({self.EXECS * 2 * 6 * self.STREAM // MIB} MiB of JSON sent)", file=sys.stderr)
        for length, total, head, tail in results:
            self.assertEqual(total, length)  # the announced length is what came
            # each \x01 is 6 characters of JSON: 2 x 16 MiB of output is 192 MiB of text
            self.assertGreater(total, 2 * 6 * self.STREAM)
            self.assertIn(b'"stdout":"\\u0001\\u0001', head)
            end = json.loads(b"{" + tail[tail.rindex(b'"stderr_encoding"'):])
            self.assertEqual(end["stderr_encoding"], "utf-8")
            self.assertEqual(end["exit_code"], 0)
            self.assertFalse(end["truncated"])
        self.assertLess(growth_mib, 512)


class StalledGuestDeleteTest(unittest.TestCase):
    """A guest that stops reading its channel (here: its VMM is SIGSTOPped while 8 execs are
    sending 1 MiB of stdin each) must not hold up DELETE: before, each request in flight waited
    out its 10 s write deadline before the VMM was even asked to stop."""
    EXECS = 8
    WRITE_DEADLINE_S = 10  # CHANNEL_WRITE_TIMEOUT_MS: DELETE must not wait out even one

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--no-snapshots", "--max-body-bytes", str(8 * MIB))

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_delete_does_not_wait_for_a_guest_that_stopped_reading(self):
        sb = self.d.create(language_pack="shell")
        stdin = "x" * MIB
        with concurrent.futures.ThreadPoolExecutor(self.EXECS) as pool:
            os.kill(sb["vmm_pid"], signal.SIGSTOP)
            try:
                futures = [pool.submit(self.d.exec, sb["id"], "sleep 1000", stdin=stdin,
                                       timeout_ms=600000) for _ in range(self.EXECS)]
                # every exec is in flight (its stdin cannot all be written to a stopped guest)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    _, info, _ = self.d.request("GET", f"/sandboxes/{sb['id']}")
                    if info["execs_running"] == self.EXECS:
                        break
                    time.sleep(0.1)
                self.assertEqual(info["execs_running"], self.EXECS, info)
                t0 = time.monotonic()
                status = self.d.delete(sb["id"])
                took = time.monotonic() - t0
            finally:
                try:
                    os.kill(sb["vmm_pid"], signal.SIGCONT)
                except ProcessLookupError:
                    pass
            results = [f.result(timeout=120) for f in futures]
        self.assertEqual(status, 204)
        self.assertFalse(harness.pid_alive(sb["vmm_pid"]))
        print(f"\nstalled guest: DELETE took {took:.2f} s with {self.EXECS} execs in flight",
              file=sys.stderr)
        self.assertLess(took, self.WRITE_DEADLINE_S)
        for status, body, _ in results:
            self.assertIn(status, (409, 502), body)  # the sandbox went away under them
            self.assertIn("error", body)


def allocated_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


class TemplateCapTest(unittest.TestCase):
    """Each distinct shape (memory, vCPUs, overlay) gets a template holding its guest RAM in the
    run dir (tmpfs: host RAM) and in a sealed copy; a client asking for 20 shapes must not make
    20 of them."""
    CAP = 4
    SHAPES = 20

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--max-templates", str(cls.CAP), "--max-sandboxes", "4")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def templates(self):
        return self.d.request("GET", "/healthz")[1]["templates"]

    def test_twenty_shapes_keep_templates_under_the_cap(self):
        tdir = os.path.join(self.d.run_dir, "templates")
        peak_count, peak_bytes, largest = 0, 0, 0
        for mib in range(64, 64 + self.SHAPES):
            sb = self.d.create(language_pack="shell", memory_mib=mib, overlay_mib=32)
            self.assertEqual(self.d.delete(sb["id"]), 204)
            # let this shape's template build finish before the next one is asked for
            deadline = time.monotonic() + 300
            while self.templates()["building"] > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            t = self.templates()
            live = t["ready"] + t["building"] + t["failed"]
            peak_count = max(peak_count, live)
            dirs = [e for e in os.listdir(tdir) if not e.endswith(".pack")]
            self.assertLessEqual(len(dirs), self.CAP, dirs)
            used = allocated_bytes(tdir)
            peak_bytes = max(peak_bytes, used)
            for e in dirs:
                largest = max(largest, allocated_bytes(os.path.join(tdir, e)))
        t = self.templates()
        print(f"\ntemplate cap: {self.SHAPES} shapes, at most {peak_count} templates "
              f"({peak_bytes >> 20} MiB on disk at the peak, the largest {largest >> 20} MiB), "
              f"{t['evicted_total']} evicted", file=sys.stderr)
        self.assertLessEqual(peak_count, self.CAP)
        self.assertGreaterEqual(t["evicted_total"], self.SHAPES - self.CAP - t["failed"])
        self.assertGreater(t["ready"], 0)
        # the pinned pack copies (<key>.pack) count too: a cap's worth of templates at most
        self.assertLessEqual(peak_bytes, self.CAP * (largest + (64 << 20)))


class TrustedDirsTest(unittest.TestCase):
    """The root daemon refuses a run or images directory someone else could swap or write."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="emberd-trust-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self, run_dir, images=harness.IMAGES_DIR):
        return subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--addr", "127.0.0.1:0",
                               "--images", images, "--run-dir", run_dir, "--no-snapshots"],
                              capture_output=True, text=True, timeout=60)

    def test_world_writable_or_symlinked_run_dir_is_refused(self):
        open_dir = os.path.join(self.tmp, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        out = self.start(open_dir)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("--run-dir", out.stderr)
        self.assertIn("writable by group or others", out.stderr)
        real = os.path.join(self.tmp, "real")
        os.mkdir(real, 0o700)
        link = os.path.join(self.tmp, "link")
        os.symlink(real, link)
        out = self.start(link)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("is a symlink", out.stderr)
        # under a directory others may write (not sticky): they could rename it away
        os.chmod(open_dir, 0o777)
        inner = os.path.join(open_dir, "run")
        os.mkdir(inner, 0o700)
        out = self.start(inner)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn(f"`{open_dir}` is writable by group or others", out.stderr)

    def test_images_dir_of_another_user_is_refused(self):
        images = os.path.join(self.tmp, "images")
        os.mkdir(images, 0o755)  # checked before anything in it is read
        os.chown(images, 1000, 1000)
        out = self.start(os.path.join(self.tmp, "run"), images)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("--images", out.stderr)
        self.assertIn("owned by uid 1000", out.stderr)


if __name__ == "__main__":
    unittest.main()
