"""Background processes (issue 11, docs/api.md "Background processes"): POST
/sandboxes/{id}/processes starts a program that outlives the request; GET lists it and shows its
state and the output its rings hold; .../output streams that output (follow=1: live) as the
streamed exec's events; .../stdin feeds it; .../signal signals its process group; it dies with the
sandbox; emberctl run/logs/kill drive the same.

- ProcessesBase: the python HTTP server reachable from an exec, followed live and ended by
  SIGTERM; a stdin round trip through `cat`. Run under QEMU (ProcessesTest) and the fake
  Firecracker (FirecrackerProcessesTest).
- ProcessesTest adds: the ring overflow (dropped_bytes, bounded daemon memory), the limits, bad
  input, the end with the sandbox (no thread or fd left in the daemon), emberctl.
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
import harness  # noqa: E402

CTL = os.path.join(harness.ASAN_BIN, "emberctl")
FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
NDJSON = "application/x-ndjson"
# As test_stream: freed memory goes back to the heap, so RSS measures what the daemon holds.
ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"}
MIB = 1024 * 1024
START_LATENCIES = []


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Follower:
    """GET .../processes/{pid}/output on its own connection, read event by event."""

    def __init__(self, d, path, accept=NDJSON):
        self.d = d
        self.path = path
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
        self.conn.request("GET", path, headers={"Accept": accept})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        self.raw = bytearray()

    def next_event(self):
        line = self.resp.readline()
        if not line:
            return None
        self.raw += line
        return contract.parse_events(NDJSON, bytes(line))[0]

    def until(self, predicate, what):
        """Events up to and including the first that satisfies predicate."""
        events = []
        while True:
            ev = self.next_event()
            if ev is None:
                raise AssertionError(f"the stream ended before {what}: {events[-5:]}")
            events.append(ev)
            if predicate(ev):
                return events

    def rest(self):
        events = []
        while (ev := self.next_event()) is not None:
            events.append(ev)
        return events

    def check_contract(self):
        self.d.check_contract("GET", self.path, None, self.status, self.headers,
                              bytes(self.raw))

    def close(self):
        self.conn.close()


def output_of(events, stream="stdout"):
    import base64
    out = b""
    for ev in events:
        if ev["type"] == stream:
            out += (base64.b64decode(ev["data"]) if ev.get("encoding") == "base64"
                    else ev["data"].encode())
    return out


class ProcessesBase(unittest.TestCase):
    daemon_args = ()
    env = ASAN_ENV

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(*cls.daemon_args, env=cls.env)
        try:
            cls.sb = cls.d.create(language_pack="python")
        except Exception:
            cls.d.stop(check=False)
            raise
        cls.base = f"/sandboxes/{cls.sb['id']}/processes"

    @classmethod
    def tearDownClass(cls):
        cls.d.delete(cls.sb["id"])
        cls.d.stop()
        if START_LATENCIES:
            print(f"\nbackground start latency (POST -> 201) over {len(START_LATENCIES)} "
                  f"starts: median {statistics.median(START_LATENCIES) * 1000:.1f} ms, max "
                  f"{max(START_LATENCIES) * 1000:.1f} ms", file=sys.stderr)
            START_LATENCIES.clear()

    def start(self, expect=201, base=None, **body):
        t0 = time.monotonic()
        status, reply, raw = self.d.request("POST", base or self.base, body)
        if status == 201:
            START_LATENCIES.append(time.monotonic() - t0)
        self.assertEqual(status, expect, raw)
        return reply

    def get(self, pid):
        status, reply, raw = self.d.request("GET", f"{self.base}/{pid}")
        self.assertEqual(status, 200, raw)
        return reply

    def wait_exited(self, pid, timeout=120):
        return wait_until(lambda: (p := self.get(pid))["state"] == "exited" and p, timeout,
                          f"process {pid} to exit")

    def signal(self, pid, sig, expect=204):
        status, reply, raw = self.d.request("POST", f"{self.base}/{pid}/signal",
                                            {"signal": sig})
        self.assertEqual(status, expect, raw)
        return reply

    def follow(self, pid, query="?follow=1"):
        f = Follower(self.d, f"{self.base}/{pid}/output{query}")
        self.addCleanup(f.close)
        self.assertEqual(f.status, 200)
        return f

    def test_http_server_is_reachable_followed_live_and_ended_by_sigterm(self):
        proc = self.start(cmd=["python3", "-u", "-m", "http.server", "8000"], cwd="/etc",
                          tag="web")
        pid = proc["pid"]
        self.assertEqual((proc["state"], proc["tag"], proc["ended_at"]), ("running", "web", None))
        follower = self.follow(pid)
        # The server needs a moment to listen: the fetch retries (bounded by its exec timeout).
        status, res, _ = self.d.exec(self.sb["id"], (
            "import time, urllib.request\n"
            "for i in range(600):\n"
            "    try:\n"
            "        r = urllib.request.urlopen('http://127.0.0.1:8000/', timeout=5)\n"
            "        break\n"
            "    except OSError:\n"
            "        time.sleep(0.05)\n"
            "print(r.status)\nprint(r.read().decode())"), timeout_ms=60000)
        self.assertEqual(status, 200, res)
        self.assertEqual(res["exit_code"], 0, res)
        self.assertTrue(res["stdout"].startswith("200\n"), res["stdout"][:300])
        self.assertIn("Directory listing for /", res["stdout"])
        self.assertIn("passwd", res["stdout"])  # it serves its cwd, /etc
        # The request line comes through the follower while the server still runs.
        events = follower.until(lambda ev: b'"GET / HTTP/1.1" 200' in output_of([ev], "stderr"),
                                "the server's log line")
        self.assertTrue(all(ev["type"] in ("stdout", "stderr") for ev in events))
        status, listed, _ = self.d.request("GET", self.base)
        self.assertEqual(status, 200)
        self.assertIn(pid, [p["pid"] for p in listed["processes"] if p["state"] == "running"])
        self.signal(pid, "TERM")
        last = follower.rest()[-1]
        follower.check_contract()
        self.assertEqual(last["type"], "exit", last)
        self.assertEqual((last["signal"], last["exit_code"], last["pid"]), (15, -1, pid))
        info = self.wait_exited(pid)
        self.assertEqual((info["signal"], info["exit_code"]), (15, -1))
        self.assertIsNotNone(info["ended_at"])
        self.assertIn(b'"GET / HTTP/1.1" 200', info["stderr"].encode())
        # It is gone: signals and stdin to it are a conflict; it stays listed.
        self.signal(pid, "KILL", expect=409)
        status, listed, _ = self.d.request("GET", self.base)
        self.assertIn(pid, [p["pid"] for p in listed["processes"]])

    def test_stdin_round_trip_through_cat(self):
        proc = self.start(cmd=["cat"], stdin=True)
        pid = proc["pid"]
        self.assertTrue(proc["stdin_open"])
        data = b"hello \xe2\x82\xac\n" + bytes(range(256)) * 300
        for chunk, query in ((data[:1000], ""), (data[1000:], "?close=1")):
            status, _, raw = self.d.request("POST", f"{self.base}/{pid}/stdin{query}", raw=chunk,
                                            headers={"Content-Type": "application/octet-stream"})
            self.assertEqual(status, 204, raw)
        info = self.wait_exited(pid)
        self.assertEqual((info["exit_code"], info["signal"]), (0, 0), info)
        self.assertFalse(info["stdin_open"])
        self.assertEqual(info["stdout_bytes"], len(data))
        self.assertEqual(output_of(self.follow(pid, "").rest()), data)
        status, body, _ = self.d.request("POST", f"{self.base}/{pid}/stdin", raw=b"more",
                                         headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((status, body["error"]["code"]), (409, "conflict"))


class ProcessesTest(ProcessesBase):

    def test_ring_keeps_the_newest_mib_counts_the_rest_and_memory_stays_bounded(self):
        before = rss_kib(self.d.proc.pid)
        proc = self.start(code=(
            "import sys\nout = sys.stdout.buffer\nline = b'x' * 1023 + b'\\n'\n"
            "for i in range(48 * 1024):\n    out.write(line)\n"
            "out.write(b'END\\n')\nsys.stderr.write('err\\n')"))
        info = self.wait_exited(proc["pid"], timeout=300)
        after = rss_kib(self.d.proc.pid)
        total = 48 * MIB + 4
        self.assertEqual((info["exit_code"], info["stdout_bytes"]), (0, total), info)
        self.assertEqual(info["stdout_dropped_bytes"], total - MIB)
        self.assertEqual((info["stderr"], info["stderr_dropped_bytes"]), ("err\n", 0))
        self.assertEqual(len(info["stdout"]), MIB)
        self.assertTrue(info["stdout"].endswith("x\nEND\n"))
        # 48 MiB went through; the daemon holds 1 MiB of it (plus allocator slack).
        self.assertLess(after - before, 24 * 1024, f"RSS grew {before} -> {after} KiB")
        events = self.follow(proc["pid"], "").rest()
        self.assertEqual(len(output_of(events)), MIB)
        self.assertEqual(events[-1]["stdout_dropped_bytes"], total - MIB)

    def test_bad_input_gets_its_status(self):
        cases = [
            ("GET", f"{self.base}/999999", None, 404),
            ("GET", f"{self.base}/abc", None, 404),
            ("GET", f"{self.base}/0/output", None, 404),
            ("POST", f"{self.base}/999999/signal", {"signal": "TERM"}, 404),
            ("POST", f"{self.base}/999999/stdin", None, 404),
            ("POST", self.base, {"code": "1", "cmd": ["true"]}, 400),
            ("POST", self.base, {}, 400),
            ("POST", self.base, {"cmd": []}, 400),
            ("POST", self.base, {"cmd": ["true"], "tag": "t" * 65}, 400),
            ("POST", "/sandboxes/sb_" + "0" * 32 + "/processes", {"cmd": ["true"]}, 404),
            ("GET", f"{self.base}?all=2", None, 400),
            ("GET", f"{self.base}/1/output?follow=maybe", None, 400),
        ]
        for method, path, body, expect in cases:
            status, reply, raw = self.d.request(method, path, body)
            self.assertEqual(status, expect, (method, path, body, raw))
            self.assertIn("error", reply)
        pid = self.start(cmd=["sleep", "600"])["pid"]
        for sig in ("TERMINATE", 0, 65, "", None):
            status, reply, _ = self.d.request("POST", f"{self.base}/{pid}/signal",
                                              {"signal": sig})
            self.assertEqual((status, reply["error"]["code"]), (400, "invalid_argument"), sig)
        status, reply, _ = self.d.request("POST", f"{self.base}/{pid}/stdin", raw=b"x",
                                          headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 409, reply)  # started without stdin
        self.signal(pid, 9)
        self.assertEqual(self.wait_exited(pid)["signal"], 9)
        # a command that does not exist is refused when it is started
        status, reply, _ = self.d.request("POST", self.base, {"cmd": ["/no/such/program"]})
        self.assertEqual(status, 502, reply)

    def test_too_many_running_is_429_and_a_slot_frees_when_one_ends(self):
        _, listed, _ = self.d.request("GET", self.base)
        running = len([p for p in listed["processes"] if p["state"] == "running"])
        pids = [self.start(cmd=["sleep", "600"], tag=str(i))["pid"]
                for i in range(32 - running)]
        try:
            status, reply, _ = self.d.request("POST", self.base, {"cmd": ["sleep", "600"]})
            self.assertEqual((status, reply["error"]["code"]), (429, "capacity"), reply)
            self.signal(pids[0], "KILL")
            self.wait_exited(pids[0])
            pids.append(self.start(cmd=["sleep", "600"])["pid"])
        finally:
            for pid in pids:
                self.d.request("POST", f"{self.base}/{pid}/signal", {"signal": "KILL"})
            for pid in pids:
                self.wait_exited(pid)

    def test_processes_die_with_the_sandbox_and_leave_nothing_in_the_daemon(self):
        daemon = self.d.proc.pid
        threads0 = len(os.listdir(f"/proc/{daemon}/task"))
        fds0 = len(os.listdir(f"/proc/{daemon}/fd"))
        sb = self.d.create(language_pack="python")
        base = f"/sandboxes/{sb['id']}/processes"
        pids = [self.start(base=base, cmd=["sleep", "600"])["pid"] for _ in range(3)]
        pids.append(self.start(base=base, code="import time\nwhile True:\n"
                                                "    print('tick', flush=True)\n"
                                                "    time.sleep(0.1)\n", stdin=True)["pid"])
        f = Follower(self.d, f"{base}/{pids[-1]}/output?follow=1")
        self.addCleanup(f.close)
        f.until(lambda ev: ev["type"] == "stdout", "the first tick")
        self.assertEqual(self.d.delete(sb["id"]), 204)
        last = f.rest()[-1]
        self.assertEqual(last["type"], "exit", last)
        self.assertIn("error", last)  # it had no exit report: the sandbox went
        f.close()
        status, _, _ = self.d.request("GET", base)
        self.assertEqual(status, 404)
        wait_until(lambda: len(os.listdir(f"/proc/{daemon}/task")) <= threads0, 30,
                   f"the daemon's threads back to {threads0}")
        wait_until(lambda: len(os.listdir(f"/proc/{daemon}/fd")) <= fds0, 30,
                   f"the daemon's fds back to {fds0}")

    def test_emberctl_run_logs_and_kill(self):
        ctl = [CTL, "--addr", self.d.addr]
        out = subprocess.run(ctl + ["run", self.sb["id"], "sh", "-c",
                                    "echo started; echo oops >&2; exec sleep 600"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        pid = out.stdout.strip()
        self.assertTrue(pid.isdigit(), out.stdout)
        # both lines: they come on two pipes, read in no fixed order
        wait_until(lambda: (lambda p: p["stdout_bytes"] > 0 and p["stderr_bytes"] > 0)(
            self.get(pid)), 60, "its first lines")
        out = subprocess.run(ctl + ["logs", self.sb["id"], pid], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, "started\n", "oops\n"))
        follow = subprocess.Popen(ctl + ["logs", self.sb["id"], pid, "-f"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(follow.kill)
        out = subprocess.run(ctl + ["kill", self.sb["id"], pid, "KILL"], capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        stdout, stderr = follow.communicate(timeout=120)
        self.assertEqual((follow.returncode, stdout), (0, "started\n"), stderr)
        self.assertEqual(self.wait_exited(pid)["signal"], 9)
        out = subprocess.run(ctl + ["kill", self.sb["id"], pid], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(out.returncode, 1)
        self.assertIn("409", out.stderr)


class FirecrackerProcessesTest(ProcessesBase):
    """The same agent behind vsock (the fake Firecracker runs the guest under QEMU)."""
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC, "--no-jail",
                   "--no-snapshots")


if __name__ == "__main__":
    unittest.main()
