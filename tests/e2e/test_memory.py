"""Admission that protects the host (issue 18 item 3, docs/operations.md "Host memory"): without
--max-sandboxes the daemon derives the limit from host memory; a create that would eat into the
reserve gets 429 with Retry-After; under memory pressure the warm pool gives its clones back and
refills once memory is back. The host's memory is simulated with --meminfo FILE, a meminfo the
test rewrites; nothing here measures speed."""
import http.client
import json
import os
import shutil
import tempfile
import unittest

import harness

TOTAL_MIB = 8192


def write_meminfo(path, available_mib, total_mib=TOTAL_MIB):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(f"MemTotal:       {total_mib * 1024} kB\n"
                f"MemFree:        {available_mib * 1024} kB\n"
                f"MemAvailable:   {available_mib * 1024} kB\n")
    os.rename(tmp, path)  # the daemon never reads half a file


def post_create(d):
    """POST /sandboxes on a raw connection, for the headers: (status, body, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
    try:
        data = json.dumps({"language_pack": "python"}).encode()
        conn.request("POST", "/sandboxes", body=data,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        headers = dict(resp.getheaders())
        d.check_contract("POST", "/sandboxes", data, resp.status, headers, payload)
        return resp.status, json.loads(payload), headers
    finally:
        conn.close()


class MemoryAdmissionTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="emt-mem.")
        self.meminfo = os.path.join(self.tmp, "meminfo")
        write_meminfo(self.meminfo, 6144)
        self.d = None

    def tearDown(self):
        if self.d is not None:
            self.d.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_max_sandboxes_is_derived_from_host_memory_unless_given(self):
        self.d = harness.Daemon("--no-snapshots", "--meminfo", self.meminfo)
        _, h, _ = self.d.request("GET", "/healthz")
        mem = h["memory"]
        self.assertEqual(mem["total_mib"], TOTAL_MIB)
        self.assertEqual(mem["available_mib"], 6144)
        self.assertEqual(mem["reserve_mib"], TOTAL_MIB // 10)
        self.assertEqual(mem["max_sandboxes_from"], "memory")
        # A python sandbox may take its guest RAM plus its VMM: more than the RAM alone.
        self.assertGreater(mem["sandbox_cost_mib"], 256)
        want = (6144 - TOTAL_MIB // 10) // mem["sandbox_cost_mib"]
        self.assertEqual(mem["max_sandboxes"], want)
        self.assertEqual(mem["headroom_sandboxes"], want)
        self.assertIn(f"max_sandboxes={want} from host memory", self.d.read_log())
        self.d.stop()
        self.d = harness.Daemon("--no-snapshots", "--meminfo", self.meminfo,
                                "--max-sandboxes", "3", "--memory-reserve-mib", "100")
        _, h, _ = self.d.request("GET", "/healthz")
        self.assertEqual(h["memory"]["max_sandboxes"], 3)
        self.assertEqual(h["memory"]["max_sandboxes_from"], "setting")
        self.assertEqual(h["memory"]["reserve_mib"], 100)

    def test_the_derived_limit_refuses_with_429_and_retry_after(self):
        # Room for one default sandbox and a half beyond the reserve: the derived limit is 1.
        self.d = harness.Daemon("--no-snapshots", "--meminfo", self.meminfo)
        _, h, _ = self.d.request("GET", "/healthz")
        reserve, cost = h["memory"]["reserve_mib"], h["memory"]["sandbox_cost_mib"]
        self.d.stop()
        write_meminfo(self.meminfo, reserve + cost * 3 // 2)
        self.d = harness.Daemon("--no-snapshots", "--meminfo", self.meminfo)
        _, h, _ = self.d.request("GET", "/healthz")
        self.assertEqual((h["memory"]["max_sandboxes"], h["memory"]["max_sandboxes_from"]),
                         (1, "memory"))
        sb = self.d.create(language_pack="python")
        try:
            status, body, headers = post_create(self.d)
            self.assertEqual(status, 429, body)
            self.assertIn("maximum of 1 sandboxes (what fits in host memory",
                          body["error"]["message"])
            self.assertEqual(headers.get("Retry-After"), "1")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_a_create_beyond_the_reserve_gets_429_with_retry_after(self):
        self.d = harness.Daemon("--no-snapshots", "--meminfo", self.meminfo,
                                "--max-sandboxes", "4")
        _, h, _ = self.d.request("GET", "/healthz")
        reserve, cost = h["memory"]["reserve_mib"], h["memory"]["sandbox_cost_mib"]
        write_meminfo(self.meminfo, reserve + cost - 1)
        status, body, headers = post_create(self.d)
        self.assertEqual(status, 429, body)
        self.assertEqual(body["error"]["code"], "capacity")
        self.assertIn("low on memory", body["error"]["message"])
        self.assertIn("--memory-reserve-mib", body["error"]["message"])
        self.assertEqual(headers.get("Retry-After"), "5")
        self.assertEqual(self.d.runtime_entries(), [], "a refused create leaves nothing")
        _, h, _ = self.d.request("GET", "/healthz")
        self.assertEqual(h["memory"]["rejections_total"], 1)
        self.assertEqual(h["memory"]["headroom_sandboxes"], 0)
        # Memory is back: the same create goes through.
        write_meminfo(self.meminfo, reserve + cost)
        sb = self.d.create(language_pack="python")
        self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_the_max_sandboxes_429_has_retry_after_too(self):
        self.d = harness.Daemon("--no-snapshots", "--meminfo", self.meminfo,
                                "--max-sandboxes", "1")
        sb = self.d.create(language_pack="python")
        try:
            status, body, headers = post_create(self.d)
            self.assertEqual(status, 429, body)
            self.assertIn("--max-sandboxes", body["error"]["message"])
            self.assertEqual(headers.get("Retry-After"), "1")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_the_pool_gives_clones_back_under_pressure_and_refills_after(self):
        self.d = harness.Daemon("--meminfo", self.meminfo, "--pool-size", "2", "--prewarm",
                                "--max-sandboxes", "8")
        full = self.d.wait_health(lambda h: h["pool"]["ready"] >= 4, 900, "full pools")
        self.assertFalse(full["pool"]["memory_low"])
        reserve = full["memory"]["reserve_mib"]
        write_meminfo(self.meminfo, reserve - 1)
        gone = self.d.wait_health(lambda h: h["pool"]["ready"] == 0, 120, "an empty pool")
        self.assertGreaterEqual(gone["pool"]["shed_total"], 4)
        self.assertTrue(gone["pool"]["memory_low"])
        # A clone leaves the count before its VMM is stopped, and one still booting when
        # memory went low is shed once it is ready: wait for the processes to be gone.
        harness.wait_for(lambda: not self.d.vmm_pids(), 120, "every pooled VMM to be gone")
        _, h, _ = self.d.request("GET", "/healthz")
        self.assertEqual(h["pool"]["ready"], 0, "nothing was refilled while memory is low")
        log = self.d.read_log()
        self.assertIn("event=pool.memory_low", log)
        self.assertIn("pooled clone given back", log)
        # Nor does a create get a new VM: it would take the host below its reserve.
        status, body, headers = post_create(self.d)
        self.assertEqual(status, 429, body)
        self.assertEqual(headers.get("Retry-After"), "5")
        write_meminfo(self.meminfo, 6144)
        back = self.d.wait_health(lambda h: h["pool"]["ready"] >= 4, 600, "refilled pools")
        self.assertFalse(back["pool"]["memory_low"])
        self.assertIn("event=pool.memory_ok", self.d.read_log())


if __name__ == "__main__":
    unittest.main()
