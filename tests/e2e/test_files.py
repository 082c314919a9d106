"""Files (issue 11, docs/api.md "Files"): PUT/GET /sandboxes/{id}/files stream a file's raw bytes
in and out, GET /fs stats or lists, POST /fs/mkdir|move|remove. Everything runs as the sandbox
user in the guest; the daemon only bounds the path. Large files are paced by the protocol's
credit both ways, so a 200 MiB round trip keeps the daemon's memory (and the guest agent's) flat;
a full overlay is 507 with nothing left behind, and so is a client that hangs up mid-upload.

Runs under QEMU (the images in IMAGES_DIR) and, the core of it, under the fake Firecracker.
"""

import hashlib
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
OCTET = "application/octet-stream"
BIG = 200 * 1024 * 1024
PIECE = 1024 * 1024
# Freed memory goes back to the daemon's heap, not into ASan's quarantine, so RSS measures what
# the daemon holds (as in test_stream).
ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"}


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def q(path):
    return urllib.parse.quote(path, safe="")


def random_source(seed, total):
    """Pseudo-random bytes (cheap: a 1 MiB block re-keyed per piece) and their sha256."""
    block = bytearray(os.urandom(PIECE))
    digest = hashlib.sha256()
    pieces = []
    for i in range(total // PIECE):
        block[0:8] = (seed * 1000003 + i).to_bytes(8, "little")
        piece = bytes(block)
        digest.update(piece)
        pieces.append(piece)
    return pieces, digest.hexdigest()


class Files:
    """Raw-body requests (the harness's request() speaks JSON), contract-checked."""

    def __init__(self, d, sandbox_id):
        self.d = d
        self.sb = sandbox_id

    def put(self, path, data, query="", chunks=None, content_length=None, check=True):
        url = f"/sandboxes/{self.sb}/files?path={q(path)}{query}"
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=600)
        try:
            length = content_length if content_length is not None else (
                len(data) if chunks is None else sum(len(c) for c in chunks))
            conn.putrequest("PUT", url)
            conn.putheader("Content-Type", OCTET)
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            for piece in (chunks if chunks is not None else [data]):
                conn.send(piece)
            resp = conn.getresponse()
            payload = resp.read()
            if check:
                self.d.check_contract("PUT", url, data if chunks is None else None, resp.status,
                                      dict(resp.getheaders()), payload)
            import json
            return resp.status, json.loads(payload) if payload else None
        finally:
            conn.close()

    def get(self, path, sink=None):
        """(status, body bytes or None when sink took them, headers)."""
        url = f"/sandboxes/{self.sb}/files?path={q(path)}"
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=600)
        try:
            conn.request("GET", url)
            resp = conn.getresponse()
            headers = dict(resp.getheaders())
            if sink is not None and resp.status == 200:
                while True:
                    piece = resp.read(PIECE)
                    if not piece:
                        break
                    sink(piece)
                return resp.status, None, headers
            payload = resp.read()
            self.d.check_contract("GET", url, None, resp.status, headers, payload)
            return resp.status, payload, headers
        finally:
            conn.close()

    def fs(self, path):
        return self.d.request("GET", f"/sandboxes/{self.sb}/fs?path={q(path)}")[:2]

    def op(self, name, body):
        return self.d.request("POST", f"/sandboxes/{self.sb}/fs/{name}", body)[:2]

    def names(self, path):
        status, body = self.fs(path)
        assert status == 200, (status, body)
        return sorted(e["name"] for e in body["entries"])


class FilesTest(unittest.TestCase):
    daemon_args = ()
    sandbox = {"language_pack": "python"}
    binary = None  # the ASan build; a subclass may run another
    env = ASAN_ENV

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(*cls.daemon_args, binary=cls.binary, env=cls.env)
        try:
            cls.sb = cls.d.create(**cls.sandbox)["id"]
        except Exception:
            cls.d.stop(check=False)
            raise
        cls.f = Files(cls.d, cls.sb)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.delete(cls.sb)
        finally:
            cls.d.stop()

    def assert_error(self, got, status, code, fragment=None):
        self.assertEqual(got[0], status, got)
        body = got[1]
        if isinstance(body, (bytes, bytearray)):
            import json
            body = json.loads(body)
        self.assertEqual(body["error"]["code"], code, body)
        if fragment is not None:
            self.assertIn(fragment, body["error"]["message"])

    def test_small_round_trip_with_mode_and_parents(self):
        data = b"hello \x00\xff world\n" * 100
        status, body = self.f.put("t1/a/b/c.bin", data, "&mkdir=1&mode=0750")
        self.assertEqual(status, 201, body)
        self.assertEqual(body, {"path": "/home/sandbox/t1/a/b/c.bin", "size": len(data),
                                "sha256": hashlib.sha256(data).hexdigest()})
        status, payload, headers = self.f.get("t1/a/b/c.bin")
        self.assertEqual(status, 200)
        self.assertEqual(payload, data)
        self.assertEqual(headers["Content-Type"], OCTET)
        self.assertEqual(int(headers["Content-Length"]), len(data))
        status, entry = self.f.fs("/home/sandbox/t1/a/b/c.bin")
        self.assertEqual(status, 200)
        self.assertEqual((entry["name"], entry["type"], entry["size"], entry["mode"]),
                         ("c.bin", "file", len(data), "0750"))
        self.assertRegex(entry["mtime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        # the guest's view agrees: owned by the sandbox user
        out = self.d.exec(self.sb, "import os; s = os.stat('/home/sandbox/t1/a/b/c.bin'); "
                                   "print(s.st_uid, oct(s.st_mode & 0o7777))")
        self.assertEqual(out[1]["stdout"], "1000 0o750\n")
        # empty file; overwrite replaces
        self.assertEqual(self.f.put("t1/empty", b"")[0], 201)
        self.assertEqual(self.f.get("t1/empty")[:2], (200, b""))
        self.assertEqual(self.f.put("t1/empty", b"now full")[0], 201)
        self.assertEqual(self.f.get("t1/empty")[:2], (200, b"now full"))
        # without mkdir=1 a missing parent is 404
        self.assert_error(self.f.put("t1/nope/x", b"x"), 404, "not_found")

    def test_stat_list_mkdir_move_remove(self):
        self.assertEqual(self.f.op("mkdir", {"path": "t2/d/e", "parents": True}), (204, None))
        self.assertEqual(self.f.put("t2/d/f.txt", b"f")[0], 201)
        self.assertEqual(self.f.names("t2/d"), ["e", "f.txt"])
        status, listing = self.f.fs("t2/d")
        self.assertFalse(listing["truncated"])
        kinds = {e["name"]: e["type"] for e in listing["entries"]}
        self.assertEqual(kinds, {"e": "dir", "f.txt": "file"})
        self.assert_error(self.f.op("mkdir", {"path": "t2/d"}), 409, "conflict", "exists")
        self.assertEqual(self.f.op("move", {"from": "t2/d/f.txt", "to": "t2/d/e/g.txt"}),
                         (204, None))
        self.assertEqual(self.f.names("t2/d/e"), ["g.txt"])
        self.assert_error(self.f.op("move", {"from": "t2/none", "to": "t2/x"}), 404,
                          "not_found")
        self.assert_error(self.f.op("remove", {"path": "t2/d"}), 409, "conflict", "not_empty")
        self.assertEqual(self.f.op("remove", {"path": "t2/d", "recursive": True}), (204, None))
        self.assert_error(self.f.fs("t2/d"), 404, "not_found")
        # a symlink is reported as one (lstat); `..` is the guest's business
        self.d.exec(self.sb, "import os; os.symlink('/etc', '/home/sandbox/t2/link')")
        self.assertEqual(self.f.fs("t2/link")[1]["type"], "symlink")
        self.assertEqual(self.f.fs("t2/../t2/link")[1]["type"], "symlink")
        self.assertIn("hostname", [e["name"] for e in self.f.fs("t2/link/")[1]["entries"]])
        self.assertEqual(self.f.fs("/")[0], 200)

    def test_bad_input_and_refusals(self):
        base = f"/sandboxes/{self.sb}"
        self.assert_error(self.d.request("GET", f"{base}/files")[:2], 400, "invalid_argument",
                          "`path` is required")
        self.assert_error(self.d.request("GET", f"{base}/files?path=")[:2], 400,
                          "invalid_argument", "must not be empty")
        self.assert_error(self.d.request("GET", f"{base}/fs?path=a%00b")[:2], 400,
                          "invalid_argument", "NUL")
        self.assert_error(self.d.request("GET", f"{base}/fs?path={'a' * 4097}")[:2], 400,
                          "invalid_argument", "longer than 4096")
        self.assert_error(self.f.put("", b"x"), 400, "invalid_argument", "must not be empty")
        self.assert_error(self.f.put("a\x00b", b"x"), 400, "invalid_argument", "NUL")
        self.assert_error(self.f.put("x", b"x", "&mode=999"), 400, "invalid_argument", "octal")
        self.assert_error(self.d.request("POST", f"{base}/fs/remove", {"path": "a\u0000b"})[:2],
                          400, "invalid_argument")
        self.assert_error(self.d.request("POST", f"{base}/fs/move", {"from": "a"})[:2], 400,
                          "invalid_argument", "`to`")
        # the guest's refusals
        self.assert_error(self.f.get("/no/such/file")[:2], 404, "not_found")
        self.assert_error(self.f.get("/home/sandbox")[:2], 409, "conflict", "is_directory")
        self.assert_error(self.f.get("/proc/1/environ")[:2], 403, "forbidden", "permission_denied")
        self.assert_error(self.f.put("/etc/evil", b"x"), 403, "forbidden")
        self.assert_error(self.f.put("/home/sandbox", b"x"), 409, "conflict")
        self.assert_error(self.f.op("remove", {"path": "/etc/hostname"}), 403, "forbidden")
        # unknown sandbox, as for exec
        other = "/sandboxes/sb_" + "0" * 32
        self.assert_error(self.d.request("GET", f"{other}/fs?path=x")[:2], 404, "not_found")
        self.assert_error(Files(self.d, "sb_" + "0" * 32).put("x", b"x"), 404, "not_found")
        # a path of 4096 bytes is the guest's to refuse (too long once under the home), not ours
        status, body = self.f.fs("a" * 4096)
        self.assertNotIn("longer than", str(body))

    def test_client_disconnect_during_upload_leaves_nothing(self):
        self.assertEqual(self.f.op("mkdir", {"path": "t4"}), (204, None))
        sock = socket.create_connection(("127.0.0.1", self.d.port))
        total = 64 * 1024 * 1024
        sock.sendall((f"PUT /sandboxes/{self.sb}/files?path=t4/cut HTTP/1.1\r\n"
                      f"Host: 127.0.0.1\r\nContent-Type: {OCTET}\r\n"
                      f"Content-Length: {total}\r\n\r\n").encode())
        piece = os.urandom(PIECE)
        for _ in range(8):
            sock.sendall(piece)
        # the temporary file exists while the upload runs
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not self.f.names("t4"):
            time.sleep(0.1)
        self.assertTrue(any(".ember-upload-" in n for n in self.f.names("t4")),
                        self.f.names("t4"))
        sock.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.f.names("t4"):
            time.sleep(0.2)
        self.assertEqual(self.f.names("t4"), [])

    def test_download_cut_short_by_the_client_frees_the_transfer(self):
        data = os.urandom(8 * PIECE)
        self.assertEqual(self.f.put("t5", data)[0], 201)
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=120)
            conn.request("GET", f"/sandboxes/{self.sb}/files?path=t5")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            resp.read(1000)
            conn.close()
        # no transfer is left behind: 16 more in a row all work
        for _ in range(17):
            self.assertEqual(self.f.get("t5")[:2], (200, data))

    def test_a_stalled_download_does_not_hold_up_a_delete(self):
        sb = self.d.create(**self.sandbox)["id"]
        f = Files(self.d, sb)
        self.assertEqual(f.put("big", os.urandom(16 * PIECE))[0], 201)
        sock = socket.create_connection(("127.0.0.1", self.d.port), timeout=120)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET /sandboxes/{sb}/files?path=big HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{self.d.port}\r\n\r\n".encode())
            self.assertIn(b" 200 ", sock.recv(4096))
            # The client stops reading: the daemon's sends block once the buffers are full.
            # Destroying the sandbox does not wait for this client (nor would its expiry).
            time.sleep(2)
            self.assertEqual(self.d.delete(sb), 204)
            got = 0
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
            self.assertLess(got, 16 * PIECE, "the download was cut short")
        finally:
            sock.close()

    def test_emberctl_cp_and_ls(self):
        ctl = [os.path.join(harness.ASAN_BIN, "emberctl"), "--addr", self.d.addr]
        data = os.urandom(3 * PIECE + 17)
        tmp = tempfile.mkdtemp(prefix="emf.")
        try:
            src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
            with open(src, "wb") as f:
                f.write(data)
            run = subprocess.run(ctl + ["cp", src, f"{self.sb}:t6/in.bin"], capture_output=True,
                                 timeout=300)
            self.assertEqual(run.returncode, 1, run.stderr)  # no parent directory
            self.assertIn(b"not_found", run.stderr)
            self.assertEqual(self.f.op("mkdir", {"path": "t6"}), (204, None))
            run = subprocess.run(ctl + ["cp", src, f"{self.sb}:t6/in.bin"], capture_output=True,
                                 timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(run.stderr, b"")  # not a terminal: no progress
            run = subprocess.run(ctl + ["cp", f"{self.sb}:t6/in.bin", dst], capture_output=True,
                                 timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr)
            with open(dst, "rb") as f:
                self.assertEqual(f.read(), data)
            run = subprocess.run(ctl + ["cp", "-", f"{self.sb}:t6/stdin.txt"], input=b"piped\n",
                                 capture_output=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr)
            run = subprocess.run(ctl + ["cp", f"{self.sb}:t6/stdin.txt", "-"],
                                 capture_output=True, timeout=300)
            self.assertEqual((run.returncode, run.stdout), (0, b"piped\n"), run.stderr)
            run = subprocess.run(ctl + ["cp", f"{self.sb}:/proc/1/environ", dst],
                                 capture_output=True, timeout=300)
            self.assertEqual(run.returncode, 1)
            self.assertIn(b"forbidden", run.stderr)
            self.assertFalse(os.path.exists(dst))  # a failed download leaves no file
            run = subprocess.run(ctl + ["ls", self.sb, "t6"], capture_output=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr)
            lines = run.stdout.decode().splitlines()
            self.assertEqual(sorted(line.split()[-1] for line in lines),
                             ["in.bin", "stdin.txt"])
            self.assertIn(f"0644 file    {len(data):12d}", run.stdout.decode())
            run = subprocess.run(ctl + ["ls"], capture_output=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stderr)  # still the sandbox list
            self.assertIn(self.sb.encode(), run.stdout)
        finally:
            shutil.rmtree(tmp)


class FilesBigTest(unittest.TestCase):
    """The 200 MiB round trip with memory bounds, and a full overlay (QEMU only: slow)."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(env=ASAN_ENV)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def agent_rss_kib(self, sb):
        out = self.d.exec(sb, "print(open('/proc/1/status').read())")[1]["stdout"]
        m = re.search(r"^VmRSS:\s+(\d+) kB", out, re.M)
        self.assertIsNotNone(m, out)
        return int(m.group(1))

    def test_200_mib_round_trip_keeps_memory_flat(self):
        sb = self.d.create(language_pack="python", memory_mib=640, overlay_mib=480)["id"]
        try:
            f = Files(self.d, sb)
            pid = self.d.proc.pid
            self.assertEqual(f.put("warm", os.urandom(4 * PIECE))[0], 201)  # one-off allocations
            self.assertEqual(f.get("warm")[0], 200)
            agent0 = self.agent_rss_kib(sb)
            rss0 = status_kib(pid, "VmRSS")
            peak = [rss0]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], status_kib(pid, "VmRSS"))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            pieces, digest = random_source(7, BIG)
            try:
                t0 = time.monotonic()
                status, body = f.put("big.bin", None, chunks=pieces)
                up_s = time.monotonic() - t0
                self.assertEqual(status, 201, body)
                self.assertEqual((body["size"], body["sha256"]), (BIG, digest))
                agent_up = self.agent_rss_kib(sb)
                got = hashlib.sha256()
                count = [0]

                def sink(piece):
                    got.update(piece)
                    count[0] += len(piece)

                t0 = time.monotonic()
                status, _, headers = f.get("big.bin", sink)
                down_s = time.monotonic() - t0
                self.assertEqual(status, 200)
                self.assertEqual(int(headers["Content-Length"]), BIG)
                self.assertEqual(count[0], BIG)
                self.assertEqual(got.hexdigest(), digest)
            finally:
                stop.set()
                sampler.join()
            agent_down = self.agent_rss_kib(sb)
            print(f"\ntest_files: 200 MiB upload {BIG / up_s / PIECE:.1f} MiB/s ({up_s:.1f} s), "
                  f"download {BIG / down_s / PIECE:.1f} MiB/s ({down_s:.1f} s); daemon RSS "
                  f"{rss0} -> peak {peak[0]} KiB, VmHWM {status_kib(pid, 'VmHWM')} KiB; agent "
                  f"RSS {agent0} -> {agent_up} (after upload) -> {agent_down} KiB",
                  file=sys.stderr)
            self.assertLess(peak[0] - rss0, 16 * 1024, "daemon RSS growth")
            self.assertLess(max(agent_up, agent_down) - agent0, 8 * 1024, "agent RSS growth")
        finally:
            self.d.delete(sb)

    def test_full_overlay_is_507_and_leaves_nothing(self):
        sb = self.d.create(language_pack="python", overlay_mib=16)["id"]
        try:
            f = Files(self.d, sb)
            self.assertEqual(f.op("mkdir", {"path": "full"}), (204, None))
            self.assertEqual(f.put("full/keep", b"old content")[0], 201)
            pieces = [os.urandom(PIECE) for _ in range(32)]
            status, body = f.put("full/big", None, chunks=pieces)
            self.assertEqual(status, 507, body)
            self.assertEqual(body["error"]["code"], "insufficient_storage")
            # the same over an existing file: the old one stays whole
            status, body = f.put("full/keep", None, chunks=pieces)
            self.assertEqual(status, 507, body)
            self.assertEqual(f.names("full"), ["keep"])
            self.assertEqual(f.get("full/keep")[:2], (200, b"old content"))
            # and the space is back
            self.assertEqual(f.put("full/small", os.urandom(4 * PIECE))[0], 201)
        finally:
            self.d.delete(sb)


class FilesFirecrackerTest(FilesTest):
    """The same guest agent behind the fake Firecracker's transport."""
    daemon_args = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC)


if __name__ == "__main__":
    unittest.main()
