"""End-to-end tests of emberd's HTTP API against real microVMs (QEMU; TCG on machines without
hardware virtualization). One ASan-built daemon serves the whole class; its shutdown at the end
is itself checked (exit 0, no VM process, no runtime file, no sanitizer report).
"""

import base64
import concurrent.futures
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ApiTest(unittest.TestCase):
    # Subclasses run the same suite against another driver by overriding this.
    daemon_args = ("--vmm", "qemu")
    expected_driver = "qemu"

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--max-sandboxes", "8", "--max-body-bytes", "2097152",
                               *cls.daemon_args)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def assert_error(self, status, body, expected_status, code=None, mentions=None):
        self.assertEqual(status, expected_status, body)
        self.assertIn("error", body)
        self.assertIsInstance(body["error"].get("message"), str)
        if code:
            self.assertEqual(body["error"]["code"], code)
        if mentions:
            self.assertIn(mentions, body["error"]["message"])

    def assert_gone(self, sandbox):
        self.assertFalse(harness.pid_alive(sandbox["vmm_pid"]), "VMM process still alive")
        self.assertNotIn(sandbox["id"], self.d.runtime_entries())

    def test_python_create_exec_delete(self):
        sb = self.d.create(language_pack="python")
        self.assertTrue(sb["id"].startswith("sb_"))
        self.assertEqual(len(sb["id"]), 35)
        self.assertEqual(sb["state"], "ready")
        self.assertEqual(sb["language_pack"], "python")
        self.assertGreater(sb["vmm_pid"], 0)
        self.assertTrue(harness.pid_alive(sb["vmm_pid"]))
        self.assertIn(sb["id"], self.d.runtime_entries())
        # exec right after create: the agent already answered, nothing races the boot
        status, res, _ = self.d.exec(sb["id"], "print(6*7)")
        self.assertEqual(status, 200, res)
        self.assertEqual(res["stdout"], "42\n")
        self.assertEqual(res["stderr"], "")
        self.assertEqual(res["exit_code"], 0)
        self.assertFalse(res["timed_out"])
        self.assertFalse(res["truncated"])
        self.assertGreaterEqual(res["duration_ms"], 0)
        status, info, _ = self.d.request("GET", f"/sandboxes/{sb['id']}")
        self.assertEqual(status, 200)
        self.assertEqual(info["execs_run"], 1)
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assert_gone(sb)
        status, body, _ = self.d.request("GET", f"/sandboxes/{sb['id']}")
        self.assert_error(status, body, 404, "not_found")

    def test_shell_exit_code_stderr_stdin_env(self):
        sb = self.d.create(language_pack="shell")
        try:
            status, res, _ = self.d.exec(sb["id"], "echo hi; echo oops >&2; exit 3")
            self.assertEqual(status, 200, res)
            self.assertEqual(res["stdout"], "hi\n")
            self.assertEqual(res["stderr"], "oops\n")
            self.assertEqual(res["exit_code"], 3)
            status, res, _ = self.d.exec(sb["id"], "tr a-z A-Z", stdin="piped through\n")
            self.assertEqual(res["stdout"], "PIPED THROUGH\n")
            status, res, _ = self.d.exec(sb["id"], 'echo "$GREETING $(id -u)"',
                                         env={"GREETING": "hello"})
            self.assertEqual(res["stdout"], "hello 1000\n")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_timeout_kills_and_sandbox_stays_usable(self):
        sb = self.d.create()
        try:
            status, res, _ = self.d.exec(sb["id"], "while True: pass", timeout_ms=1500)
            self.assertEqual(status, 200, res)
            self.assertTrue(res["timed_out"])
            self.assertEqual(res["signal"], 9)
            # The guest's own clock from spawn to reap: the 1.5 s timer and the kill, not the
            # host's load on the request's way (a wrong timer, 30 s or 1500 s, is far above).
            self.assertLess(res["duration_ms"], 15000, res)
            status, res, _ = self.d.exec(sb["id"], "print('alive')")
            self.assertEqual(res["stdout"], "alive\n")
        finally:
            self.d.delete(sb["id"])

    def test_binary_output_is_base64(self):
        sb = self.d.create()
        try:
            status, res, _ = self.d.exec(
                sb["id"], "import sys; sys.stdout.buffer.write(bytes([0, 255, 10]))")
            self.assertEqual(status, 200)
            self.assertEqual(res["stdout_encoding"], "base64")
            self.assertEqual(base64.b64decode(res["stdout"]), b"\x00\xff\n")
            self.assertEqual(res["stderr_encoding"], "utf-8")
        finally:
            self.d.delete(sb["id"])

    def test_unknown_pack_is_400_listing_packs(self):
        status, body, _ = self.d.request("POST", "/sandboxes", {"language_pack": "cobol"})
        self.assert_error(status, body, 400, "invalid_argument", "cobol")
        self.assertIn("python", body["error"]["message"])
        self.assertIn("shell", body["error"]["message"])

    def test_bad_create_fields(self):
        for fields, mention in [({"vcpus": 0}, "vcpus"), ({"vcpus": "2"}, "vcpus"),
                                ({"memory_mib": 10**12}, "memory_mib"),
                                ({"timeout_s": -5}, "timeout_s"), ({"colour": 1}, "colour"),
                                ({"vcpus": 64}, "vcpus")]:
            status, body, _ = self.d.request("POST", "/sandboxes", fields)
            self.assert_error(status, body, 400, "invalid_argument", mention)

    def test_unknown_id_is_404_on_exec_and_delete(self):
        missing = "sb_" + "0" * 32
        status, body, _ = self.d.exec(missing, "print(1)")
        self.assert_error(status, body, 404, "not_found")
        status, body, _ = self.d.request("DELETE", f"/sandboxes/{missing}")
        self.assert_error(status, body, 404, "not_found")
        for path in ["/sandboxes/..%2F..%2Fetc", "/sandboxes/sb_../exec", "/sandboxes/x/exec"]:
            status, body, _ = self.d.request("POST", path, {"code": "1"})
            self.assertEqual(status, 404, path)

    def test_malformed_json_and_wrong_types_are_400(self):
        status, body, _ = self.d.request("POST", "/sandboxes", raw=b'{"language_pack":')
        self.assert_error(status, body, 400, "invalid_argument", "malformed JSON")
        status, body, _ = self.d.request("POST", "/sandboxes", raw=b"[1,2]")
        self.assert_error(status, body, 400)
        sid = "sb_" + "1" * 32
        status, body, _ = self.d.request("POST", f"/sandboxes/{sid}/exec", {"code": 5})
        self.assert_error(status, body, 400, "invalid_argument", "code")

    def test_exec_field_errors(self):
        sb = self.d.create(language_pack="shell")
        try:
            for fields, mention in [({"code": "true", "timeout_ms": 0}, "timeout_ms"),
                                    ({"code": "true", "env": {"1BAD": "x"}}, "1BAD"),
                                    ({"code": "true", "env": ["A=b"]}, "env"),
                                    ({"code": "true", "extra": True}, "extra"),
                                    ({}, "code")]:
                status, body, _ = self.d.request("POST", f"/sandboxes/{sb['id']}/exec",
                                                 fields)
                self.assert_error(status, body, 400, "invalid_argument", mention)
            status, body, _ = self.d.request("POST", f"/sandboxes/{sb['id']}/exec",
                                             {"code": "x" * (300 * 1024)})
            self.assert_error(status, body, 413, "too_large")
        finally:
            self.d.delete(sb["id"])

    def test_oversized_body_is_413(self):
        # A declared body more than 64 MiB past the cap (src/api/server.h,
        # API_BODY_DISCARD_MAX) is refused before it is sent (the daemon then closes); one
        # within that is read and dropped first (tests/e2e/test_startup_checks.py).
        sock = socket.create_connection(("127.0.0.1", self.d.port), timeout=30)
        try:
            sock.sendall(b"POST /sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
                         b"\r\n" % (2097152 + (64 << 20) + 1))
            reply = b""
            while b'"too_large"' not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            self.assertIn(b" 413 ", reply.split(b"\r\n")[0])
            self.assertIn(b'"too_large"', reply)
        finally:
            sock.close()
        # chunked upload without a Content-Length is capped too
        sock = socket.create_connection(("127.0.0.1", self.d.port), timeout=30)
        try:
            sock.sendall(b"POST /sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\n")
            chunk = b" " * 65536
            for _ in range(40):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
            reply = sock.recv(4096)
            self.assertIn(b" 413 ", reply.split(b"\r\n")[0])
        finally:
            sock.close()

    def test_routes_and_methods(self):
        status, body, _ = self.d.request("GET", "/nope")
        self.assert_error(status, body, 404)
        status, body, _ = self.d.request("PUT", "/sandboxes")
        self.assert_error(status, body, 405, "method_not_allowed")
        status, body, _ = self.d.request("DELETE", "/healthz")
        self.assert_error(status, body, 405)
        status, body, _ = self.d.request("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["vmm"]["driver"], self.expected_driver)
        self.assertIn(body["vmm"]["accel"], ("kvm", "tcg"))
        status, body, _ = self.d.request("GET", "/packs")
        self.assertEqual(status, 200)
        names = sorted(p["name"] for p in body["packs"])
        self.assertEqual(names, sorted(harness.CORE_PACKS))  # test_packs covers them all

    def test_five_concurrent_creates_and_execs(self):
        def cycle(i):
            sb = self.d.create(language_pack="python" if i % 2 == 0 else "shell")
            try:
                code = f"print({i}*{i})" if i % 2 == 0 else f"echo $(({i}*{i}))"
                status, res, _ = self.d.exec(sb["id"], code)
                return status, res["stdout"], sb
            finally:
                self.d.delete(sb["id"])

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            results = list(pool.map(cycle, range(5)))
        ids = set()
        for i, (status, out, sb) in enumerate(results):
            self.assertEqual(status, 200)
            self.assertEqual(out, f"{i * i}\n")
            ids.add(sb["id"])
            self.assert_gone(sb)
        self.assertEqual(len(ids), 5)

    def test_two_deletes_one_wins(self):
        sb = self.d.create(language_pack="shell")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(lambda _: self.d.delete(sb["id"]), range(2)))
        self.assertEqual(statuses[0], 204)
        self.assertIn(statuses[1], (404, 409))
        self.assert_gone(sb)

    def test_exec_during_delete_fails_cleanly(self):
        sb = self.d.create(language_pack="shell")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(self.d.exec, sb["id"], "sleep 1000")
            self.d.wait_guest_process(sb["id"], "sleep")  # the exec runs: the delete is mid-exec
            self.assertEqual(self.d.delete(sb["id"]), 204)
            status, body, _ = fut.result(timeout=120)
        self.assert_error(status, body, 409, "conflict")
        self.assert_gone(sb)

    def test_list_and_console(self):
        sb = self.d.create(language_pack="shell")
        try:
            status, body, _ = self.d.request("GET", "/sandboxes")
            self.assertEqual(status, 200)
            self.assertIn(sb["id"], [s["id"] for s in body["sandboxes"]])
            # A clone's console starts empty at the restore; the agent logs its session right
            # after answering READY, so the line may land a moment after the create returned.
            deadline = time.monotonic() + 60
            while True:
                status, body, _ = self.d.request("GET", f"/sandboxes/{sb['id']}/console")
                self.assertEqual(status, 200)
                if "emberd-init" in body["console"] or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn("emberd-init", body["console"])
        finally:
            self.d.delete(sb["id"])

    def test_emberctl_test_passes(self):
        ctl = os.path.join(harness.ASAN_BIN, "emberctl")
        for pack in ("python", "shell"):
            proc = subprocess.run([ctl, "--addr", self.d.addr, "test", "--pack", pack],
                                  capture_output=True, text=True, timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertIn("PASS", proc.stdout)
            self.assertEqual(harness.sanitizer_problems(proc.stderr), [])

    def test_emberctl_sends_the_network_policy(self):
        """create --network-mode/--allow/--deny carry the `network` object and `network ID` the
        PATCH. This daemon enables no networked mode and has no --egress-uplink, so both end in
        the daemon's refusal, which emberctl prints (docs/network.md)."""
        ctl = os.path.join(harness.ASAN_BIN, "emberctl")
        proc = subprocess.run([ctl, "--addr", self.d.addr, "create", "--pack", "shell",
                               "--network-mode", "allowlist", "--allow", "pypi.org",
                               "--deny", "203.0.113.0/24"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertTrue("network.mode" in proc.stderr or "--egress-uplink" in proc.stderr,
                        proc.stderr)
        proc = subprocess.run([ctl, "--addr", self.d.addr, "network", "sb_" + "0" * 32,
                               "--allow", "pypi.org"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("not_found", proc.stderr)
        proc = subprocess.run([ctl, "--addr", self.d.addr, "network", "sb_" + "0" * 32],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--allow", proc.stderr)
        self.assertEqual(harness.sanitizer_problems(proc.stderr), [])

    def test_emberctl_exec_propagates_exit_code(self):
        ctl = os.path.join(harness.ASAN_BIN, "emberctl")
        sid = subprocess.run([ctl, "--addr", self.d.addr, "create", "--pack", "shell"],
                             capture_output=True, text=True, timeout=300).stdout.strip()
        try:
            proc = subprocess.run([ctl, "--addr", self.d.addr, "exec", sid,
                                   "echo out; echo err >&2; exit 7"],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 7)
            self.assertEqual(proc.stdout, "out\n")
            self.assertEqual(proc.stderr, "err\n")
            proc = subprocess.run([ctl, "--addr", self.d.addr, "exec", sid],
                                  input="cat /etc/hostname", capture_output=True, text=True,
                                  timeout=60)
            self.assertEqual(proc.stdout, "emberd\n")
            proc = subprocess.run([ctl, "--addr", self.d.addr, "--json", "ls"],
                                  capture_output=True, text=True, timeout=60)
            self.assertIn(sid, proc.stdout)
        finally:
            proc = subprocess.run([ctl, "--addr", self.d.addr, "rm", sid],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = subprocess.run([ctl, "--addr", self.d.addr, "rm", sid], capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("404", proc.stderr)


class StartupTest(unittest.TestCase):
    def test_missing_images_fail_startup_with_a_clear_message(self):
        proc = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--images",
                               "/nonexistent/images", "--addr", "127.0.0.1:0"],
                              capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("make images", proc.stderr)
        self.assertIn("/nonexistent/images", proc.stderr)

    def test_help_and_version(self):
        for binary in ("emberd", "emberctl", "ember-vm"):
            path = os.path.join(harness.ASAN_BIN, binary)
            out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, binary)
            self.assertIn("usage:", out.stdout)
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 0)
            self.assertIn("0.1", out.stdout)

    def test_bad_flag_values_are_rejected(self):
        emberd = os.path.join(harness.ASAN_BIN, "emberd")
        for args in (["--max-sandboxes", "0"], ["--vmm", "xen"], ["--addr", "nohost"],
                     ["--max-sandboxes", "-1"], ["--kernel-args", "init=/bin/sh"],
                     ["--kernel-args", "emberd.overlay_mib=1"], ["--kernel-args", "a\"b"],
                     ["--kernel-args", "x" * 513]):
            proc = subprocess.run([emberd, "--images", harness.IMAGES_DIR, *args],
                                  capture_output=True, text=True, timeout=60)
            self.assertNotEqual(proc.returncode, 0, args)
            self.assertIn("emberd:", proc.stderr)


if __name__ == "__main__":
    unittest.main()
