"""The daemon under ThreadSanitizer, driven by 8 concurrent clients against the fake Firecracker
(create, exec, GET, DELETE in a loop) while another client lists every sandbox: any data race the
run reaches fails the test with TSan's report. The daemon is build/tsan/bin/emberd (make
tsan-bins). A race that was here: GET /sandboxes read a DESTROYING sandbox's VM handle while the
DELETE freed it. TsanForkTest: a fork (its children started on threads) beside a pause/resume
loop and a lister, with the QEMU driver.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TSAN_EMBERD = os.path.join(harness.REPO, "build", "tsan", "bin", "emberd")
FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
CLIENTS = 8
# At least this many create/exec/get/delete cycles while the lister runs, and at least this long
# (whichever ends later); a run that cannot make the cycles within the cap fails.
CYCLES = int(os.environ.get("EMBER_TSAN_CYCLES", "200"))
DURATION_S = float(os.environ.get("EMBER_TSAN_SECONDS", "60"))
CAP_S = 1200


def tsan_reports(log):
    return [line for line in log.splitlines() if "ThreadSanitizer" in line]


class TsanConcurrencyTest(unittest.TestCase):
    binary = TSAN_EMBERD
    env = {"TSAN_OPTIONS": "halt_on_error=0 exitcode=0 second_deadlock_stack=1"}

    def setUp(self):
        if not os.path.exists(self.binary):
            self.fail(f"{self.binary} is missing: run `make tsan-bins asan-bins`")
        # exitcode=0: the daemon's own exit status stays about its shutdown; the reports in
        # its log are what this test checks (and the harness's ASan/UBSan checks).
        self.d = harness.Daemon("--vmm", "firecracker", "--firecracker-bin", FAKE_FC,
                                "--pool-size", "2", "--max-sandboxes", "24",
                                binary=self.binary, env=self.env)

    def tearDown(self):
        problems = self.d.stop(check=False)
        log = self.d.read_log() if os.path.exists(self.d.log_path) else ""
        self.assertEqual(problems, [], log[-6000:])

    def cycle(self, errors):
        sb = self.d.create(language_pack="python")
        status, res, _ = self.d.exec(sb["id"], "print(6*7)")
        if status != 200 or res["stdout"] != "42\n":
            errors.append(f"exec: {status} {res}")
        status, info, _ = self.d.request("GET", f"/sandboxes/{sb['id']}")
        if status != 200 or info["id"] != sb["id"]:
            errors.append(f"get: {status} {info}")
        status = self.d.delete(sb["id"])
        if status != 204:
            errors.append(f"delete: {status}")

    def client(self, stop_at, counts, errors):
        cap = time.monotonic() + CAP_S
        while (time.monotonic() < stop_at or len(counts) < CYCLES) and time.monotonic() < cap:
            try:
                self.cycle(errors)
                counts.append(1)
            except Exception as e:  # noqa: BLE001 (reported below, with the others)
                errors.append(repr(e))

    def lister(self, stop, lists, errors):
        while not stop.is_set():
            status, body, _ = self.d.request("GET", "/sandboxes")
            if status != 200 or not isinstance(body.get("sandboxes"), list):
                errors.append(f"list: {status} {body}")
            lists.append(1)

    def test_concurrent_clients_race_free(self):
        started = time.monotonic()
        stop_at = started + DURATION_S
        counts, lists, errors = [], [], []
        stop = threading.Event()
        workers = [threading.Thread(target=self.client, args=(stop_at, counts, errors))
                   for _ in range(CLIENTS)]
        listing = threading.Thread(target=self.lister, args=(stop, lists, errors))
        listing.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        listing.join()
        log = self.d.read_log()
        self.assertEqual(tsan_reports(log), [], log[-12000:])
        self.assertEqual(errors, [])
        # The cycles were made (within a generous cap), and the lister ran alongside.
        self.assertGreaterEqual(len(counts), CYCLES)
        self.assertGreater(len(lists), 0)
        print(f"\n{type(self).__name__}: {len(counts)} create/exec/get/delete cycles from {CLIENTS} clients and "
              f"{len(lists)} listings in {time.monotonic() - started:.0f} s", file=sys.stderr)


class TsanForkTest(unittest.TestCase):
    """Pause, resume, fork and snapshots under ThreadSanitizer (QEMU driver): a fork starts its
    children on threads of its own while another client pauses and resumes a second sandbox
    and a third lists; no race report, every call answered as it should."""

    def setUp(self):
        if not os.path.exists(TSAN_EMBERD):
            self.fail(f"{TSAN_EMBERD} is missing: run `make tsan-bins asan-bins`")
        self.d = harness.Daemon("--max-sandboxes", "12", binary=TSAN_EMBERD,
                                env=TsanConcurrencyTest.env)

    def tearDown(self):
        problems = self.d.stop(check=False)
        log = self.d.read_log() if os.path.exists(self.d.log_path) else ""
        self.assertEqual(problems, [], log[-6000:])

    def pauser(self, sandbox_id, errors):
        for _ in range(2):
            for what in ("pause", "resume"):
                status, _, raw = self.d.request("POST", f"/sandboxes/{sandbox_id}/{what}")
                if status != 200:
                    errors.append(f"{what}: {status} {raw}")

    def test_fork_beside_pause_and_resume_race_free(self):
        src = self.d.create(language_pack="shell")
        other = self.d.create(language_pack="shell")
        errors, lists = [], []
        stop = threading.Event()
        pausing = threading.Thread(target=self.pauser, args=(other["id"], errors))
        listing = threading.Thread(target=TsanConcurrencyTest.lister,
                                   args=(self, stop, lists, errors))
        listing.start()
        pausing.start()
        status, reply, raw = self.d.request("POST", f"/sandboxes/{src['id']}/fork",
                                            {"count": 3})
        pausing.join()
        snap_status, snap, snap_raw = self.d.request("POST", f"/sandboxes/{src['id']}/snapshots")
        stop.set()
        listing.join()
        self.assertEqual(status, 201, raw)
        self.assertEqual(snap_status, 201, snap_raw)
        kids = [k["id"] for k in reply["sandboxes"]]
        self.assertEqual(len(set(kids)), 3, reply)
        for sandbox_id in kids + [src["id"], other["id"]]:
            status, res, _ = self.d.exec(sandbox_id, "echo ok")
            self.assertEqual((status, res.get("stdout")), (200, "ok\n"), sandbox_id)
            self.assertEqual(self.d.delete(sandbox_id), 204)
        self.assertEqual(self.d.request("DELETE", f"/snapshots/{snap['id']}")[0], 204)
        log = self.d.read_log()
        self.assertEqual(tsan_reports(log), [], log[-12000:])
        self.assertEqual(errors, [])
        self.assertGreater(len(lists), 0)


class AsanConcurrencyTest(TsanConcurrencyTest):
    """The same load against the ASan/UBSan daemon: use-after-free and leaks on the same paths
    (harness.Daemon.stop fails on any sanitizer report)."""
    binary = os.path.join(harness.ASAN_BIN, "emberd")
    env = None


if __name__ == "__main__":
    unittest.main()
