"""Streamed exec (issue 11): POST /sandboxes/{id}/exec with Accept: application/x-ndjson or
text/event-stream (or "stream": true) answers 200 at once and sends stdout/stderr events as the
program writes, then one exit event. Output is paced end to end by the protocol's per-exec credit:
a slow client stalls its own program (not the sandbox's other execs) and the daemon's memory
stays flat; a client that hangs up cancels the exec.

Runs under QEMU (the images in IMAGES_DIR) and, for the same guest agent behind another
transport, under the fake Firecracker.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
import harness  # noqa: E402

FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
BIG = 64 * 1024 * 1024
# The daemon's freed memory goes back to its heap, not into ASan's 256 MiB quarantine, so RSS
# measures what the daemon holds.
ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Stream:
    """One streamed exec on its own connection, read event by event."""

    def __init__(self, d, sandbox_id, body, accept=NDJSON, rcvbuf=None):
        self.d = d
        self.path = f"/sandboxes/{sandbox_id}/exec"
        self.body = json.dumps(body).encode()
        self.conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
        self.conn.connect()
        if rcvbuf:
            self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        headers = {"Content-Type": "application/json"}
        if accept:
            headers["Accept"] = accept
        self.conn.request("POST", self.path, body=self.body, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        self.ctype = self.headers.get("Content-Type", "")
        self.raw = bytearray()

    def next_event(self):
        """The next event (its object), or None at the end of the body."""
        if self.ctype == SSE:
            block = b""
            while not block.endswith(b"\n\n"):
                line = self.resp.readline()
                if not line:
                    return None
                block += line
        else:
            block = self.resp.readline()
            if not block:
                return None
        self.raw += block
        return contract.parse_events(self.ctype, bytes(block))[0]

    def rest(self):
        events = []
        while (ev := self.next_event()) is not None:
            events.append(ev)
        return events

    def check_contract(self):
        self.d.check_contract("POST", self.path, self.body, self.status, self.headers,
                              bytes(self.raw))

    def close(self):
        self.conn.close()


def output_of(events, stream="stdout"):
    out = b""
    for ev in events:
        if ev["type"] == stream:
            if ev.get("encoding") == "base64":
                import base64
                out += base64.b64decode(ev["data"])
            else:
                out += ev["data"].encode()
    return out


class StreamTest(unittest.TestCase):
    daemon_args = ()
    binary = None  # the ASan build; a subclass may run another (the TSan one)
    env = ASAN_ENV

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--max-output-bytes", str(BIG), *cls.daemon_args,
                               binary=cls.binary, env=cls.env)
        try:
            cls.sb = cls.d.create(language_pack="python")
        except Exception:
            cls.d.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.delete(cls.sb["id"])
        cls.d.stop()

    def stream(self, code, accept=NDJSON, **fields):
        fields["code"] = code
        s = Stream(self.d, self.sb["id"], fields, accept=accept,
                   rcvbuf=fields.pop("rcvbuf", None))
        self.addCleanup(s.close)
        return s

    def wait_idle(self, timeout=120):
        """Until the sandbox runs no exec and no process of the sandbox user is left."""
        deadline = time.monotonic() + timeout
        info = procs = None
        while time.monotonic() < deadline:
            _, info, _ = self.d.request("GET", f"/sandboxes/{self.sb['id']}")
            _, body, _ = self.d.request("GET", f"/sandboxes/{self.sb['id']}/processes?all=1")
            procs = [p for p in body["processes"] if p["uid"] == 1000]
            if info["execs_running"] == 0 and not procs:
                return
            time.sleep(0.2)
        self.fail(f"still busy after {timeout} s: execs_running={info['execs_running']}, "
                  f"sandbox processes {procs}")

    def test_first_output_arrives_while_the_program_runs(self):
        s = self.stream("import time\nprint(1, flush=True)\ntime.sleep(2)\nprint(2)")
        self.assertEqual(s.status, 200)
        self.assertEqual(s.ctype, NDJSON)
        first = s.next_event()
        t_first = time.monotonic()
        self.assertEqual(first, {"type": "stdout", "data": "1\n"})
        events = s.rest()
        t_exit = time.monotonic()
        s.check_contract()
        self.assertEqual(events[-1]["type"], "exit")
        self.assertEqual(events[-1]["exit_code"], 0)
        self.assertEqual(output_of(events), b"2\n")
        # The program sleeps 2 s between the lines: the first came while it ran, not at its end.
        self.assertGreaterEqual(t_exit - t_first, 1.0)

    def test_sse_and_stream_field_give_the_same_events(self):
        code = ("import sys\nsys.stdout.write('out\\n')\nsys.stdout.flush()\n"
                "sys.stderr.write('err\\n')\nsys.exit(3)")
        sse = self.stream(code, accept=SSE)
        self.assertEqual((sse.status, sse.ctype), (200, SSE))
        a = sse.rest()
        sse.check_contract()
        nd = self.stream(code, accept=None, stream=True)
        self.assertEqual((nd.status, nd.ctype), (200, NDJSON))
        b = nd.rest()
        nd.check_contract()
        for events in (a, b):
            self.assertEqual(output_of(events, "stdout"), b"out\n")
            self.assertEqual(output_of(events, "stderr"), b"err\n")
            self.assertEqual(events[-1]["type"], "exit")
            self.assertEqual(events[-1]["exit_code"], 3)
            self.assertNotIn("stdout", events[-1])

    def test_utf8_is_never_split_and_binary_is_base64(self):
        code = ("import sys, time\nout = sys.stdout.buffer\n"
                "out.write(b'a\\xc3'); out.flush(); time.sleep(0.5)\n"
                "out.write(b'\\xa9b'); out.flush(); time.sleep(0.5)\n"
                "out.write(b'\\x00\\xff'); out.flush()")
        events = self.stream(code).rest()
        outs = [e for e in events if e["type"] == "stdout"]
        self.assertEqual(output_of(events), b"a\xc3\xa9b\x00\xff")
        text = [e for e in outs if "encoding" not in e]
        self.assertTrue(text, events)
        for e in text:
            e["data"].encode("utf-8")  # whole characters only
        self.assertIn("é", "".join(e["data"] for e in text))
        self.assertEqual(outs[-1].get("encoding"), "base64")

    def test_errors_before_the_start_are_plain_json(self):
        status, body, _ = self.d.request("POST", "/sandboxes/sb_" + "0" * 32 + "/exec",
                                         {"code": "print(1)"}, headers={"Accept": NDJSON})
        self.assertEqual((status, body["error"]["code"]), (404, "not_found"))
        status, body, _ = self.d.request("POST", f"/sandboxes/{self.sb['id']}/exec",
                                         {"code": "print(1)", "stream": "yes"})
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_argument"))

    def test_emberctl_exec_streams_and_exits_with_the_code(self):
        code = ("import sys, time\nprint('one', flush=True)\ntime.sleep(2)\n"
                "sys.stderr.write('two\\n')\nsys.exit(7)")
        ctl = [os.path.join(harness.ASAN_BIN, "emberctl"), "--addr", self.d.addr, "exec",
               self.sb["id"], code]
        p = subprocess.Popen(ctl, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.readline()
        t_first = time.monotonic()
        out, err = p.communicate(timeout=300)
        t_end = time.monotonic()
        self.assertEqual((first, out, err, p.returncode), (b"one\n", b"", b"two\n", 7))
        self.assertGreaterEqual(t_end - t_first, 1.0, "the first line came only at the end")
        done = subprocess.run(ctl[:-1] + ["--no-stream", code], capture_output=True, timeout=300)
        self.assertEqual((done.stdout, done.stderr, done.returncode), (b"one\n", b"two\n", 7))

    def test_buffered_exec_is_unchanged_past_the_credit_window(self):
        # The guest spends credit for a buffered exec too: the daemon grants all its output
        # may need up front.
        code = "import sys\nsys.stdout.write('x' * (3 << 20))\nsys.stderr.write('y' * (3 << 20))"
        status, res, _ = self.d.exec(self.sb["id"], code, max_output_bytes=4 << 20)
        self.assertEqual(status, 200)
        self.assertEqual((len(res["stdout"]), len(res["stderr"]), res["truncated"]),
                         (3 << 20, 3 << 20, False))
        status, res, _ = self.d.exec(self.sb["id"], code, max_output_bytes=1 << 20)
        self.assertEqual((len(res["stdout"]), len(res["stderr"]), res["truncated"]),
                         (1 << 20, 1 << 20, True))

    def test_client_that_hangs_up_cancels_the_exec(self):
        s = self.stream("while True:\n    print('x' * 1000)")
        self.assertEqual(s.status, 200)
        for _ in range(5):
            self.assertEqual(s.next_event()["type"], "stdout")
        s.close()
        self.wait_idle()

    def test_slow_reader_stalls_only_its_program_and_memory_stays_flat(self):
        code = ("import sys\nb = b'x' * 65536\nout = sys.stdout.buffer\n"
                f"for i in range({BIG // 65536}):\n"
                "    out.write(b); out.flush()\n"
                "    with open('/tmp/progress', 'w') as f: f.write(str((i + 1) * 65536))\n")
        pid = self.d.proc.pid
        self.stream("print('warm-up')").rest()  # a streamed exec's one-off allocations
        rss0 = rss_kib(pid)
        # A slow machine may take minutes to move 64 MiB: the exec's timeout is not the test.
        s = self.stream(code, max_output_bytes=BIG, timeout_ms=600000, rcvbuf=64 * 1024)
        self.assertEqual(s.status, 200)
        got, rss_max = 0, rss0
        t_end = time.monotonic() + 4
        while time.monotonic() < t_end:  # about 1 MiB/s
            chunk = 0
            while chunk < 100 * 1024:
                ev = s.next_event()
                self.assertEqual(ev["type"], "stdout", ev)
                chunk += len(ev["data"])
            got += chunk
            rss_max = max(rss_max, rss_kib(pid))
            time.sleep(0.1)
        # Meanwhile another exec of the same sandbox runs normally: the slow client holds back
        # its own program only.
        status, res, _ = self.d.exec(self.sb["id"], "print(open('/tmp/progress').read())")
        self.assertEqual(status, 200, res)
        written = int(res["stdout"])
        self.assertLess(written, BIG, "the program was not held back by the slow reader")
        self.assertLess(written - got, 16 * 1024 * 1024,
                        f"the program wrote {written} bytes while the client read {got}")
        self.assertLess(rss_max - rss0, 16 * 1024, f"daemon RSS grew from {rss0} to {rss_max} KiB")
        events = s.rest()
        s.close()
        self.assertEqual(events[-1]["type"], "exit")
        self.assertEqual(events[-1]["exit_code"], 0, events[-1])
        self.assertFalse(events[-1]["truncated"])
        self.assertEqual(got + sum(len(e["data"]) for e in events[:-1]), BIG)
        self.assertEqual([e["type"] for e in events[:-1]], ["stdout"] * (len(events) - 1))


class StreamSilenceTest(unittest.TestCase):
    """A program silent for longer than --connection-timeout-s keeps its stream: the idle
    timeout is for clients, and this one is waiting, not idle."""

    def test_a_silence_longer_than_the_connection_timeout_keeps_the_stream(self):
        d = harness.Daemon("--connection-timeout-s", "2", env=ASAN_ENV)
        self.addCleanup(d.stop)
        sb = d.create(language_pack="python")
        self.addCleanup(d.delete, sb["id"])
        s = Stream(d, sb["id"], {"code": "import time\nprint(1, flush=True)\ntime.sleep(5)\n"
                                         "print(2)"})
        self.addCleanup(s.close)
        events = s.rest()
        s.check_contract()
        self.assertEqual(output_of(events), b"1\n2\n")
        self.assertEqual(events[-1]["type"], "exit")


class StreamFirecrackerTest(StreamTest):
    """The same agent behind vsock (the fake Firecracker runs the guest under QEMU)."""
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC)


if __name__ == "__main__":
    unittest.main()
