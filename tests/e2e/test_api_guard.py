"""The API against web pages and other local users: what a browser can send (DNS-rebound Host,
cross-origin POSTs, no-cors GETs) is refused and creates nothing, while the README's curl forms,
emberctl and the Unix socket keep working; a bearer token, when configured, is required over
TCP; slow clients trickling bytes cannot starve a normal one."""

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


def raw_request(daemon, lines, body=b"", source="127.0.0.1", timeout=60):
    """Sends exactly these request lines (no header added) to daemon (a harness.Daemon) and
    returns (status, headers, body), once the exchange passed the OpenAPI contract."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        head = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        s.sendall(head.encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    method, path = lines[0].split()[:2]
    daemon.check_contract(method, path, body, int(status_line.split()[1]), headers, payload)
    return int(status_line.split()[1]), headers, payload


class BrowserRequestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--vmm", "qemu", "--no-snapshots")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def sandbox_count(self):
        status, body, _ = self.d.request("GET", "/sandboxes")
        self.assertEqual(status, 200)
        return len(body["sandboxes"])

    def assert_refused(self, lines, body, status, code):
        before = self.sandbox_count()
        got, _, payload = raw_request(self.d, lines, body)
        self.assertEqual(got, status, payload)
        err = json.loads(payload)["error"]
        self.assertEqual(err["code"], code)
        self.assertIsInstance(err["message"], str)
        self.assertEqual(self.sandbox_count(), before, "a refused request created a sandbox")

    def test_readme_curl_forms_work(self):
        base = f"http://127.0.0.1:{self.d.port}"
        out = subprocess.run(["curl", "-sS", "-X", "POST", f"{base}/sandboxes"],
                             capture_output=True, text=True, timeout=300, check=True)
        sb = json.loads(out.stdout)
        self.assertEqual(sb["state"], "ready", out.stdout)
        try:
            # -d sends application/x-www-form-urlencoded: still accepted
            out = subprocess.run(["curl", "-sS", "-X", "POST", f"{base}/sandboxes/{sb['id']}/exec",
                                  "-d", '{"code":"print(6*7)"}'],
                                 capture_output=True, text=True, timeout=300, check=True)
            self.assertEqual(json.loads(out.stdout)["stdout"], "42\n", out.stdout)
            out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"http://localhost:{self.d.port}/sandboxes/{sb['id']}"],
                                 capture_output=True, text=True, timeout=60, check=True)
            self.assertEqual(out.stdout, "200")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_cross_origin_post_is_forbidden(self):
        # A page's fetch('http://127.0.0.1:PORT/sandboxes', {method:'POST', mode:'no-cors',
        # body:'{}'}): a "simple" request with text/plain that needs no preflight.
        self.assert_refused([
            "POST /sandboxes HTTP/1.1", f"Host: 127.0.0.1:{self.d.port}",
            "Origin: http://evil.example", "Content-Type: text/plain;charset=UTF-8",
            "Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors"], b'{}', 403, "forbidden")
        # older browsers: Origin without the Sec-Fetch-* headers
        self.assert_refused([
            "POST /sandboxes HTTP/1.1", f"Host: localhost:{self.d.port}",
            "Origin: http://evil.example", "Content-Type: application/x-www-form-urlencoded"],
            b'{"language_pack":"shell"}', 403, "forbidden")
        self.assert_refused([
            "POST /sandboxes HTTP/1.1", f"Host: localhost:{self.d.port}", "Origin: null"],
            b'{}', 403, "forbidden")

    def test_no_cors_get_from_another_site_is_forbidden(self):
        self.assert_refused(["GET /sandboxes HTTP/1.1", f"Host: 127.0.0.1:{self.d.port}",
                             "Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors",
                             "Sec-Fetch-Dest: image"], b"", 403, "forbidden")

    def test_dns_rebound_host_is_misdirected(self):
        # The page's own origin after its name was re-pointed at 127.0.0.1: same-origin to
        # the browser, so no Origin on a GET; only Host gives it away.
        self.assert_refused(["POST /sandboxes HTTP/1.1", f"Host: evil.example:{self.d.port}"],
                            b'{}', 421, "misdirected_request")
        self.assert_refused(["GET /sandboxes HTTP/1.1", f"Host: evil.example:{self.d.port}"],
                            b"", 421, "misdirected_request")

    def test_no_cors_headers_are_ever_sent(self):
        status, headers, _ = raw_request(self.d, [
            "OPTIONS /sandboxes HTTP/1.1", f"Host: 127.0.0.1:{self.d.port}",
            "Origin: http://evil.example", "Access-Control-Request-Method: POST"])
        self.assertEqual(status, 403)
        self.assertFalse([h for h in headers if h.startswith("access-control-")], headers)


class SlowClientTest(unittest.TestCase):
    """300 connections that trickle a header byte every 2 s (a slowloris) against a 5 s
    whole-request deadline and a cap of 32 connections per client address."""
    SLOW = 300
    TRICKLE_S = 2
    REQUEST_TIMEOUT_S = 5

    def setUp(self):
        self.d = harness.Daemon("--no-snapshots", "--request-timeout-s",
                                str(self.REQUEST_TIMEOUT_S), "--max-connections-per-ip", "32")
        self.addCleanup(self.d.stop)

    def open_slow(self):
        conns = []
        for _ in range(self.SLOW):
            try:
                s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                conns.append(s)
            except OSError:
                pass  # refused or reset at once: the per-address cap at work
        return conns

    def trickle(self, conns):
        """One byte on each; returns how many the server has closed."""
        closed = 0
        for s in conns:
            try:
                s.sendall(b"a")
                s.settimeout(0.01)
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        return closed

    def test_slow_clients_do_not_stop_a_normal_one(self):
        conns = self.open_slow()
        self.addCleanup(lambda: [c.close() for c in conns])
        self.assertGreater(len(conns), 0)
        # A normal client (another loopback address) is served while they hold their slots.
        for _ in range(5):
            status, _, payload = raw_request(self.d, ["GET /healthz HTTP/1.1",
                                                      "Host: 127.0.0.1"],
                                             source="127.0.0.2", timeout=30)
            self.assertEqual(status, 200, payload)
        def call(method, path, body=b""):
            return raw_request(self.d, [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"],
                               body, source="127.0.0.2", timeout=300)

        status, _, payload = call("POST", "/sandboxes", b'{"language_pack":"shell"}')
        self.assertEqual(status, 201, payload)
        sb = json.loads(payload)
        # Serving a request stops its clock: an exec longer than the deadline is fine.
        status, _, payload = call("POST", f"/sandboxes/{sb['id']}/exec", json.dumps(
            {"code": f"sleep {self.REQUEST_TIMEOUT_S + 3}; echo ok", "timeout_ms": 60000}
        ).encode())
        self.assertEqual(status, 200, payload)
        self.assertEqual(json.loads(payload)["stdout"], "ok\n")
        self.assertEqual(call("DELETE", f"/sandboxes/{sb['id']}")[0], 204)
        # Every slow connection is closed once its deadline passed, however often it sent.
        deadline = time.monotonic() + 120
        closed = 0
        while time.monotonic() < deadline:
            closed = self.trickle(conns)
            if closed == len(conns):
                break
            time.sleep(self.TRICKLE_S)
        self.assertEqual(closed, len(conns), "slow connections outlived the request deadline")
        self.assertIn("event=http.deadline", self.d.read_log())


class TokenTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="emberd-token-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp], check=False))
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token_file, 0o600)

    def test_token_required_over_tcp_and_not_on_the_unix_socket(self):
        sock = os.path.join(self.tmp, "api.sock")
        d = harness.Daemon("--no-snapshots", "--auth-token-file", self.token_file,
                           "--unix", sock)
        try:
            status, headers, payload = raw_request(
                d, ["GET /sandboxes HTTP/1.1", f"Host: 127.0.0.1:{d.port}"])
            self.assertEqual(status, 401, payload)
            self.assertEqual(json.loads(payload)["error"]["code"], "unauthorized")
            self.assertEqual(headers.get("www-authenticate"), 'Bearer realm="emberd"')
            status, _, _ = raw_request(d, ["GET /sandboxes HTTP/1.1",
                                           f"Host: 127.0.0.1:{d.port}",
                                           "Authorization: Bearer wrong-token-000000000"])
            self.assertEqual(status, 401)
            status, body, _ = d.request("GET", "/sandboxes",
                                        headers={"Authorization": f"Bearer {TOKEN}"})
            self.assertEqual(status, 200, body)
            out = subprocess.run(["curl", "-sS", "--unix-socket", sock,
                                  "http://localhost/sandboxes"],
                                 capture_output=True, text=True, timeout=60, check=True)
            self.assertEqual(json.loads(out.stdout), {"sandboxes": []})
            self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)
            ctl = [os.path.join(harness.ASAN_BIN, "emberctl"), "--addr", d.addr]
            out = subprocess.run(ctl + ["ls"], capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn("unauthorized", out.stderr)
            out = subprocess.run(ctl + ["--token-file", self.token_file, "ls"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            out = subprocess.run(ctl + ["ls"], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, EMBERD_TOKEN_FILE=self.token_file))
            self.assertEqual(out.returncode, 0, out.stderr)
            # A streamed exec (emberctl's default) sends the token too, and works over the
            # Unix socket.
            auth = {"Authorization": f"Bearer {TOKEN}"}
            status, sb, _ = d.request("POST", "/sandboxes", {}, headers=auth)
            self.assertEqual(status, 201, sb)
            for where in (["--token-file", self.token_file], ["--addr", "unix:" + sock]):
                out = subprocess.run(ctl + where + ["exec", sb["id"], "print(6 * 7)"],
                                     capture_output=True, text=True, timeout=300)
                self.assertEqual((out.returncode, out.stdout), (0, "42\n"), out.stderr)
            out = subprocess.run(ctl + ["exec", sb["id"], "print(1)"], capture_output=True,
                                 text=True, timeout=300)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertIn("unauthorized", out.stderr)
            status, _, _ = d.request("DELETE", f"/sandboxes/{sb['id']}", headers=auth)
            self.assertEqual(status, 204)
        finally:
            d.stop()

    def test_non_loopback_without_a_token_refuses_to_start(self):
        out = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--addr", "0.0.0.0:0",
                              "--images", harness.IMAGES_DIR, "--run-dir",
                              os.path.join(self.tmp, "run"), "--no-snapshots"],
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("--auth-token-file", out.stderr)

    def test_a_readable_token_file_refuses_to_start(self):
        os.chmod(self.token_file, 0o644)
        out = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"),
                              "--addr", "127.0.0.1:0", "--images", harness.IMAGES_DIR,
                              "--run-dir", os.path.join(self.tmp, "run"), "--no-snapshots",
                              "--auth-token-file", self.token_file],
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("chmod 600", out.stderr)


if __name__ == "__main__":
    unittest.main()
