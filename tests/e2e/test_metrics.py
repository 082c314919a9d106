"""GET /metrics (issue 16, docs/operations.md "Metrics"): the Prometheus text exposition, which
Prometheus's own `promtool check metrics` accepts without a lint problem, and whose values move as
they should across one sandbox's life: a create, an exec that exits 0, one that fails, and a
delete (counters +1, a histogram's _count +1, gauges up and back down). The route sits behind
the same guard as every other (Host, Origin, bearer token).

MetricsTest boots one VM (snapshots off: no template build in the background); PoolMetricsTest
fills a pool of one clone per core pack (two template builds, two clones).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN = "metrics-token-0123456789abcdef"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse(text):
    """{(name, frozenset of (label, value))}: value, for every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples, name, **labels):
    """A sample's value; 0 for a series that does not exist yet (a histogram before its first
    observation)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def promtool_check(test, payload):
    """promtool's verdict: exit 0 and no lint problem printed."""
    out = subprocess.run(["promtool", "check", "metrics"], input=payload, capture_output=True,
                         timeout=120)
    test.assertEqual(out.returncode, 0, out.stdout + out.stderr)
    test.assertEqual(out.stdout + out.stderr, b"", "promtool reported lint problems")


@unittest.skipUnless(shutil.which("promtool"), "promtool missing: scripts/install-deps.sh")
class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--no-snapshots")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def scrape(self):
        status, _, payload = self.d.request("GET", "/metrics")
        self.assertEqual(status, 200, payload)
        return payload

    def test_promtool_accepts_the_exposition_and_the_content_type_is_0_0_4(self):
        payload = self.scrape()
        promtool_check(self, payload)
        text = payload.decode()
        for name, kind in (("emberd_sandboxes_created_total", "counter"),
                           ("emberd_sandboxes_failed_total", "counter"),
                           ("emberd_execs_total", "counter"),
                           ("emberd_guest_failures_total", "counter"),
                           ("emberd_sandbox_create_seconds", "histogram"),
                           ("emberd_sandbox_boot_seconds", "histogram"),
                           ("emberd_sandbox_clone_seconds", "histogram"),
                           ("emberd_exec_seconds", "histogram"),
                           ("emberd_sandbox_delete_seconds", "histogram"),
                           ("emberd_sandboxes", "gauge"), ("emberd_pool_ready", "gauge"),
                           ("emberd_pool_target", "gauge"), ("emberd_templates", "gauge"),
                           ("emberd_vmm_resident_memory_bytes", "gauge")):
            self.assertIn(f"# TYPE {name} {kind}\n", text)
            self.assertIn(f"# HELP {name} ", text)
        samples = parse(text)
        # Seeded at 0, so rate() sees the first one.
        self.assertEqual(value(samples, "emberd_execs_total", outcome="timeout"), 0)
        self.assertEqual(value(samples, "emberd_guest_failures_total", kind="kernel_panic"), 0)
        self.assertEqual(value(samples, "emberd_pool_target", pack="python"), 0)
        # The header, as a raw client sees it.
        out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null",
                              f"http://{self.d.addr}/metrics"],
                             capture_output=True, text=True, timeout=60, check=True)
        self.assertIn(f"content-type: {CONTENT_TYPE}", out.stdout.lower())

    def test_values_move_with_a_create_an_exec_a_failing_exec_and_a_delete(self):
        before = parse(self.scrape().decode())
        sb = self.d.create(language_pack="python")
        try:
            created = parse(self.scrape().decode())
            status, ok, _ = self.d.exec(sb["id"], "print(6*7)")
            self.assertEqual(status, 200, ok)
            self.assertEqual(ok["exit_code"], 0)
            status, bad, _ = self.d.exec(sb["id"], "raise SystemExit(3)")
            self.assertEqual(status, 200, bad)
            self.assertEqual(bad["exit_code"], 3)
            executed = parse(self.scrape().decode())
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)
        payload = self.scrape()
        promtool_check(self, payload)
        after = parse(payload.decode())

        def moved(a, b, name, **labels):
            return value(b, name, **labels) - value(a, name, **labels)

        py_cold = {"pack": "python", "boot_mode": "cold"}
        self.assertEqual(moved(before, created, "emberd_sandboxes_created_total", **py_cold), 1)
        self.assertEqual(moved(before, created, "emberd_sandbox_create_seconds_count",
                               **py_cold), 1)
        self.assertEqual(moved(before, created, "emberd_sandbox_create_seconds_bucket",
                               le="+Inf", **py_cold), 1)
        self.assertGreater(value(created, "emberd_sandbox_create_seconds_sum", **py_cold), 0)
        self.assertEqual(moved(before, created, "emberd_sandbox_boot_seconds_count",
                               pack="python"), 1)
        self.assertEqual(moved(before, created, "emberd_sandboxes_failed_total", **py_cold), 0)
        self.assertEqual(moved(before, created, "emberd_sandboxes", state="ready"), 1)
        self.assertEqual(moved(before, created, "emberd_vmm_processes", owner="sandbox"), 1)
        self.assertGreater(moved(before, created, "emberd_vmm_resident_memory_bytes",
                                 owner="sandbox"), 0)
        self.assertGreater(moved(before, created, "emberd_vmm_proportional_memory_bytes",
                                 owner="sandbox"), 0)
        self.assertEqual(value(created, "emberd_vmm_processes", owner="pool"), 0)

        self.assertEqual(moved(created, executed, "emberd_execs_total", outcome="ok"), 1)
        self.assertEqual(moved(created, executed, "emberd_execs_total", outcome="nonzero_exit"),
                         1)
        self.assertEqual(moved(created, executed, "emberd_execs_total", outcome="error"), 0)
        self.assertEqual(moved(created, executed, "emberd_exec_seconds_count", pack="python"), 2)

        self.assertEqual(moved(executed, after, "emberd_sandbox_delete_seconds_count"), 1)
        self.assertEqual(moved(before, after, "emberd_sandboxes", state="ready"), 0)
        self.assertEqual(value(after, "emberd_vmm_processes", owner="sandbox"), 0)
        self.assertEqual(value(after, "emberd_vmm_resident_memory_bytes", owner="sandbox"), 0)
        # Nothing of the guest failed on the way.
        for (name, labels), v in after.items():
            if name == "emberd_guest_failures_total":
                self.assertEqual(v, 0, dict(labels))

    def test_the_route_is_behind_the_host_and_origin_checks(self):
        status, body, _ = self.d.request("GET", "/metrics",
                                         headers={"Host": "attacker.example:7777"})
        self.assertEqual(status, 421, body)
        status, body, _ = self.d.request("GET", "/metrics",
                                         headers={"Origin": "https://attacker.example"})
        self.assertEqual(status, 403, body)
        status, body, _ = self.d.request("POST", "/metrics")
        self.assertEqual(status, 405, body)


@unittest.skipUnless(shutil.which("promtool"), "promtool missing: scripts/install-deps.sh")
class PoolMetricsTest(unittest.TestCase):
    """With a warm pool: templates, clones and the pool's gauges, and a create from the pool.
    The pool fills python and shell (a template build and a clone each)."""

    def test_the_pool_templates_and_clones_show_and_a_pooled_create_counts(self):
        d = harness.Daemon("--pool-size", "1")
        try:
            def full(h):
                return h["pool"]["ready_by_pack"] == {"python": 1, "shell": 1}

            d.wait_health_or_stop(full, 600, "the pool to fill")
            status, _, payload = d.request("GET", "/metrics")
            self.assertEqual(status, 200)
            promtool_check(self, payload)
            before = parse(payload.decode())
            for pack in ("python", "shell"):
                self.assertEqual(value(before, "emberd_pool_ready", pack=pack), 1)
                self.assertEqual(value(before, "emberd_pool_target", pack=pack), 1)
                self.assertGreaterEqual(value(before, "emberd_sandbox_clone_seconds_count",
                                              pack=pack), 1)
            self.assertGreaterEqual(value(before, "emberd_templates", state="ready"), 2)
            self.assertEqual(value(before, "emberd_vmm_processes", owner="pool"), 2)
            self.assertGreater(value(before, "emberd_vmm_proportional_memory_bytes",
                                     owner="pool"), 0)
            sb = d.create(language_pack="python")
            self.assertEqual(sb["boot_mode"], "pool")
            status, _, payload = d.request("GET", "/metrics")
            after = parse(payload.decode())
            pooled = {"pack": "python", "boot_mode": "pool"}
            for name in ("emberd_sandboxes_created_total", "emberd_sandbox_create_seconds_count"):
                self.assertEqual(value(after, name, **pooled) - value(before, name, **pooled), 1,
                                 name)
            self.assertEqual(value(after, "emberd_vmm_processes", owner="sandbox"), 1)
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()


@unittest.skipUnless(shutil.which("promtool"), "promtool missing: scripts/install-deps.sh")
class MetricsTokenTest(unittest.TestCase):
    def test_a_configured_token_is_required(self):
        tmp = tempfile.mkdtemp(prefix="emberd-metrics-")
        self.addCleanup(shutil.rmtree, tmp, True)
        token_file = os.path.join(tmp, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        d = harness.Daemon("--no-snapshots", "--auth-token-file", token_file)
        try:
            status, body, _ = d.request("GET", "/metrics")
            self.assertEqual(status, 401, body)
            status, _, payload = d.request("GET", "/metrics",
                                           headers={"Authorization": f"Bearer {TOKEN}"})
            self.assertEqual(status, 200)
            promtool_check(self, payload)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
