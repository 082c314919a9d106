"""End-to-end tests of issue 11's labels, lifetime and listing (docs/api.md): labels on create
and in every sandbox object, GET /sandboxes?label=&state= filters, POST /sandboxes/{id}/timeout,
last_activity_at and idle_timeout_s, and emberctl's create --label/--idle-timeout-s, ls --label/
--state and timeout. Under QEMU (the default driver here) and, for the round trip, the timeout
and a restart, under the fake Firecracker (tests/fakes/firecracker).

- LabelsTest: one daemon; round trip and filters, every bad label and bad query, timeout moves
  and a short one destroys, idle timeout destroys an unused sandbox but not one in an exec,
  emberctl.
- LabelsPoolTest: a pooled handout carries the create's labels and idle timeout.
- LabelsRestartTest: labels, idle timeout and a changed lifetime survive a daemon restart
  (--keep-sandboxes, then a daemon on the same run directory).
- FirecrackerLabelsTest: labels, filter, timeout and restart with --vmm firecracker.
"""

import datetime
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CTL = os.path.join(harness.ASAN_BIN, "emberctl")
MAX_TIMEOUT_S = 3600
FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
FC_ARGS = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC, "--no-jail", "--no-snapshots")


def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def listed(d, query=""):
    status, body, raw = d.request("GET", "/sandboxes" + query)
    if status != 200:
        raise AssertionError(f"GET /sandboxes{query}: {status} {raw!r}")
    return {sb["id"]: sb for sb in body["sandboxes"]}


def wait_gone(d, sandbox_id, timeout):
    """Polls until GET says 404; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status, body, _ = d.request("GET", f"/sandboxes/{sandbox_id}")
        if status == 404:
            return time.monotonic() - t0
        time.sleep(0.25)
    raise AssertionError(f"{sandbox_id} still exists after {timeout} s: {body}")


class LabelsTest(unittest.TestCase):
    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--max-timeout-s", str(MAX_TIMEOUT_S), *cls.daemon_args)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def create(self, **fields):
        fields.setdefault("language_pack", "shell")
        sb = self.d.create(**fields)
        self.addCleanup(self.d.delete, sb["id"])
        return sb

    def test_labels_round_trip_and_filter(self):
        red = self.create(labels={"team": "red", "tier": "web", "owner": "Jörg Müller/ci #7"})
        blue = self.create(labels={"team": "blue"})
        plain = self.create()
        self.assertEqual(red["labels"], {"team": "red", "tier": "web",
                                         "owner": "Jörg Müller/ci #7"})
        self.assertEqual(plain["labels"], {})
        self.assertIsNone(plain["idle_timeout_s"])
        self.assertEqual(self.d.request("GET", f"/sandboxes/{blue['id']}")[1]["labels"],
                         {"team": "blue"})
        ours = {red["id"], blue["id"], plain["id"]}

        def ids(query):
            return set(listed(self.d, query)) & ours

        self.assertEqual(ids(""), ours)
        self.assertEqual(ids("?label=team=red"), {red["id"]})
        self.assertEqual(ids("?label=team"), {red["id"], blue["id"]})
        self.assertEqual(ids("?label=team=red&label=tier=web"), {red["id"]})
        self.assertEqual(ids("?label=team=red&label=tier=db"), set())
        self.assertEqual(ids("?label=team=blue&label=tier"), set())
        self.assertEqual(ids("?label=" + urllib.parse.quote("owner=Jörg Müller/ci #7")),
                         {red["id"]})
        self.assertEqual(ids("?state=ready"), ours)
        self.assertEqual(ids("?state=booting"), set())
        self.assertEqual(ids("?state=ready&label=team=blue"), {blue["id"]})

    def test_bad_labels_are_refused_naming_the_label(self):
        cases = [
            ({"": "x"}, "1 to 63 bytes"),
            ({"k" * 64: "x"}, "1 to 63 bytes"),
            ({"-team": "x"}, "start with a letter or digit"),
            ({"te am": "x"}, "`te am`"),
            ({"team=x": "x"}, "`team=x`"),
            ({"team": "v" * 257}, "`team`: value must be at most 256 bytes"),
            ({"team": "a\nb"}, "`team`: value must be UTF-8 text without control"),
            ({"team": "a\u0085b"}, "`team`: value must be UTF-8 text without control"),
            ({"team": 7}, "label `team` must be a string"),
            ({f"k{i}": "v" for i in range(33)}, "more than 32 labels"),
            (["team"], "must be an object of strings"),
        ]
        for labels, words in cases:
            with self.subTest(labels=str(labels)[:60]):
                status, body, _ = self.d.request("POST", "/sandboxes",
                                                 {"language_pack": "shell", "labels": labels})
                self.assertEqual(status, 400, body)
                self.assertEqual(body["error"]["code"], "invalid_argument")
                self.assertIn(words, body["error"]["message"])
                self.assertIn("labels", body["error"]["message"])
        # 32 labels with the longest key and value are fine (and the record holds them).
        most = {f"k{i:02d}" + "x" * 60: "\"" * 256 for i in range(32)}
        sb = self.create(labels=most)
        self.assertEqual(sb["labels"], most)

    def test_bad_list_queries_are_refused(self):
        cases = [
            ("?foo=1", "unknown query parameter `foo`"),
            ("?state=sleeping", "must be one of booting, ready, destroying, failed"),
            ("?state=ready&state=failed", "`state` is given twice"),
            ("?state", "`state` needs a value"),
            ("?label", "`label` needs a value"),
            ("?label=", "KEY or KEY=VALUE"),
            ("?label==red", "KEY or KEY=VALUE"),
            ("?label=-team", "start with a letter or digit"),
            ("?label=team=a%0Ab", "without control characters"),
            ("?label=team=a%FFb", "UTF-8"),
            ("?label=team=a%00b", "contains NUL"),
            ("?" + "&".join(f"label=k{i}" for i in range(33)), "at most 32"),
            ("?" + "&".join(["state=ready"] * 41), "more than 40 query parameters"),
        ]
        for query, words in cases:
            with self.subTest(query=query[:60]):
                status, body, _ = self.d.request("GET", "/sandboxes" + query)
                self.assertEqual(status, 400, body)
                self.assertEqual(body["error"]["code"], "invalid_argument")
                self.assertIn(words, body["error"]["message"])

    def test_timeout_moves_expires_at_and_a_short_one_destroys(self):
        sb = self.create(timeout_s=120)
        path = f"/sandboxes/{sb['id']}/timeout"
        status, longer, _ = self.d.request("POST", path, {"timeout_s": 1800})
        self.assertEqual(status, 200, longer)
        self.assertEqual(longer["id"], sb["id"])
        self.assertEqual(longer["timeout_s"], 1800)
        self.assertGreater(when(longer["expires_at"]), when(sb["expires_at"]))
        self.assertGreaterEqual(when(longer["expires_at"]),
                                when(sb["created_at"]) + datetime.timedelta(seconds=1800))
        status, shorter, _ = self.d.request("POST", path, {"timeout_s": 60})
        self.assertEqual(status, 200, shorter)
        self.assertLess(when(shorter["expires_at"]), when(longer["expires_at"]))
        self.assertEqual(self.d.request("GET", f"/sandboxes/{sb['id']}")[1]["expires_at"],
                         shorter["expires_at"])
        for body, words in (({"timeout_s": 0}, "between 1 and"),
                            ({"timeout_s": MAX_TIMEOUT_S + 1}, f"between 1 and {MAX_TIMEOUT_S}"),
                            ({}, "`timeout_s` is required"),
                            ({"timeout_s": "60"}, "must be an integer"),
                            ({"timeout_s": 60, "extra": 1}, "`extra`")):
            with self.subTest(body=body):
                status, err, _ = self.d.request("POST", path, body)
                self.assertEqual(status, 400, err)
                self.assertIn(words, err["error"]["message"])
        status, err, _ = self.d.request("POST", "/sandboxes/sb_" + "0" * 32 + "/timeout",
                                        {"timeout_s": 60})
        self.assertEqual(status, 404, err)
        # A short lifetime ends the sandbox like any expiry: VM and files gone.
        status, body, _ = self.d.request("POST", path, {"timeout_s": 2})
        self.assertEqual(status, 200, body)
        wait_gone(self.d, sb["id"], 120)
        self.assertNotIn(sb["id"], self.d.runtime_entries())
        self.assertIn(f"event=sandbox.expired sandbox={sb['id']}", self.d.read_log())

    def test_idle_timeout_destroys_an_unused_sandbox_but_not_one_in_use(self):
        for bad in (0, MAX_TIMEOUT_S + 1, "5"):
            status, err, _ = self.d.request("POST", "/sandboxes",
                                            {"language_pack": "shell", "idle_timeout_s": bad})
            self.assertEqual(status, 400, err)
            self.assertIn("idle_timeout_s", err["error"]["message"])
        idle = self.create(idle_timeout_s=4)
        busy = self.create(idle_timeout_s=4)
        self.assertEqual(idle["idle_timeout_s"], 4)
        self.assertIsNotNone(idle["last_activity_at"])
        # The exec runs for twice the idle timeout: it keeps its sandbox alive throughout.
        status, res, _ = self.d.exec(busy["id"], "sleep 8; echo done")
        self.assertEqual((status, res.get("stdout")), (200, "done\n"), res)
        status, after, _ = self.d.request("GET", f"/sandboxes/{busy['id']}")
        self.assertEqual((status, after["state"]), (200, "ready"), after)
        self.assertGreater(when(after["last_activity_at"]), when(busy["last_activity_at"]))
        # Nobody used the other one: it is gone, through the expiry path, files and all.
        wait_gone(self.d, idle["id"], 120)
        self.assertNotIn(idle["id"], self.d.runtime_entries())
        self.assertIn(f"event=sandbox.idle sandbox={idle['id']}", self.d.read_log())
        # And once unused, the busy one goes too.
        wait_gone(self.d, busy["id"], 120)

    def ctl(self, *args):
        return subprocess.run([CTL, "--addr", self.d.addr, *args], capture_output=True,
                              text=True, timeout=300)

    def test_emberctl_label_ls_and_timeout(self):
        proc = self.ctl("create", "--pack", "shell", "--label", "job=ctl-test",
                        "--label", "stage=1", "--idle-timeout-s", "900")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        sandbox_id = proc.stdout.strip()
        self.addCleanup(self.d.delete, sandbox_id)
        info = self.d.request("GET", f"/sandboxes/{sandbox_id}")[1]
        self.assertEqual(info["labels"], {"job": "ctl-test", "stage": "1"})
        self.assertEqual(info["idle_timeout_s"], 900)

        proc = self.ctl("ls", "--label", "job=ctl-test", "--state", "ready")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(sandbox_id, proc.stdout)
        self.assertIn("job=ctl-test", proc.stdout)
        proc = self.ctl("--json", "ls", "--label", "job=ctl-test", "--label", "stage=2")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["sandboxes"], [])
        proc = self.ctl("--json", "ls", "--label", "job")
        self.assertIn(sandbox_id, [s["id"] for s in json.loads(proc.stdout)["sandboxes"]])
        proc = self.ctl("ls", "--state", "asleep")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("must be one of", proc.stderr)

        proc = self.ctl("--json", "timeout", sandbox_id, "1200")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        moved = json.loads(proc.stdout)
        self.assertEqual(moved["timeout_s"], 1200)
        self.assertGreater(when(moved["expires_at"]), when(info["expires_at"]))
        proc = self.ctl("timeout", sandbox_id, "0")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("timeout_s", proc.stderr)
        proc = self.ctl("timeout", sandbox_id, "soon")
        self.assertNotEqual(proc.returncode, 0)
        proc = self.ctl("create", "--label", "novalue")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("--label needs KEY=VALUE", proc.stderr)


class LabelsPoolTest(unittest.TestCase):
    def test_pooled_handout_carries_labels_and_idle_timeout(self):
        d = harness.Daemon("--pool-size", "1", "--prewarm")
        try:
            d.wait_health(lambda h: h["pool"]["ready_by_pack"].get("shell", 0) >= 1, 300,
                          "a pooled shell sandbox")
            sb = d.create(language_pack="shell", labels={"from": "pool"}, idle_timeout_s=600)
            self.assertEqual(sb["boot_mode"], "pool")
            self.assertEqual(sb["labels"], {"from": "pool"})
            self.assertEqual(sb["idle_timeout_s"], 600)
            self.assertEqual(set(listed(d, "?label=from=pool")), {sb["id"]})
            # The record the pool's thread writes for it has them too (what a restart reads).
            record = os.path.join(d.run_dir, sb["id"], "sandbox.json")
            deadline = time.monotonic() + 60
            while not os.path.exists(record) and time.monotonic() < deadline:
                time.sleep(0.1)
            with open(record) as f:
                saved = json.load(f)
            self.assertEqual((saved["labels"], saved["idle_timeout_s"]), ({"from": "pool"}, 600))
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()


class LabelsRestartTest(unittest.TestCase):
    daemon_args = ()

    def test_labels_idle_timeout_and_lifetime_survive_a_restart(self):
        d1 = harness.Daemon("--keep-sandboxes", *self.daemon_args)
        try:
            sb = d1.create(language_pack="shell", labels={"keep": "me", "n": "1"},
                           idle_timeout_s=900, timeout_s=300)
            status, moved, _ = d1.request("POST", f"/sandboxes/{sb['id']}/timeout",
                                          {"timeout_s": 1500})
            self.assertEqual(status, 200, moved)
        except Exception:
            d1.stop(check=False)
            raise
        self.assertEqual(d1.sigterm(), 0)
        d2 = harness.Daemon(*self.daemon_args, reuse=d1)
        try:
            again = listed(d2, "?label=keep=me&label=n=1")
            self.assertEqual(list(again), [sb["id"]])
            info = again[sb["id"]]
            self.assertEqual(info["labels"], {"keep": "me", "n": "1"})
            self.assertEqual(info["idle_timeout_s"], 900)
            self.assertEqual(info["timeout_s"], 1500)
            # Wall times survive to the second (the record keeps nanoseconds; the clock moved
            # between daemons only by what the conversion rounds).
            self.assertLess(abs((when(info["expires_at"]) -
                                 when(moved["expires_at"])).total_seconds()), 1.0)
            self.assertGreaterEqual(when(info["last_activity_at"]),
                                    when(moved["last_activity_at"]))
        finally:
            d2.stop()


class FirecrackerLabelsTest(LabelsRestartTest):
    """The restart test, plus round trip and timeout, under the fake Firecracker."""
    daemon_args = FC_ARGS

    def test_labels_filter_and_timeout(self):
        d = harness.Daemon(*FC_ARGS)
        try:
            a = d.create(language_pack="shell", labels={"vmm": "fc"})
            b = d.create(language_pack="shell")
            self.assertEqual(set(listed(d, "?label=vmm=fc&state=ready")), {a["id"]})
            status, moved, _ = d.request("POST", f"/sandboxes/{b['id']}/timeout",
                                         {"timeout_s": 2})
            self.assertEqual(status, 200, moved)
            self.assertLess(when(moved["expires_at"]), when(b["expires_at"]))
            wait_gone(d, b["id"], 120)
            self.assertEqual(d.delete(a["id"]), 204)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
