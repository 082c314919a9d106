"""End-to-end tests of the guest agent (emberd-init --agent-only) on this host, under ASan.

Run from the repository root: python3 -m unittest discover -s tests/e2e -p 'test_*.py'
Needs build/asan/bin/emberd-init (make build/asan/bin/emberd-init) and root (execs drop to uid
65534), and uses the host's /usr/bin/python3 and /bin/sh as interpreters.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emberproto as ep  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT = os.path.join(REPO, "build", "asan", "bin", "emberd-init")
NOBODY = 65534
SH = ["/bin/sh"]
PY = ["/usr/bin/python3"]


def sanitizer_problems(text):
    return [line for line in text.splitlines()
            if "ERROR: AddressSanitizer" in line or "runtime error" in line
            or "ERROR: LeakSanitizer" in line]


class AgentTest(unittest.TestCase):
    """One agent for the whole class: every test also proves it survived the previous ones."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(AGENT):
            raise RuntimeError(f"{AGENT} is missing: run `make build/asan/bin/emberd-init`")
        if os.geteuid() != 0:
            raise RuntimeError("these tests run execs as uid 65534 and need root")
        cls.tmp = tempfile.mkdtemp(prefix="emberd-agent-test.")
        os.chmod(cls.tmp, 0o755)  # the exec user must reach its cwd and the code files
        cls.sock_path = os.path.join(cls.tmp, "agent.sock")
        cls.stderr_path = os.path.join(cls.tmp, "agent.stderr")
        cls.stderr_file = open(cls.stderr_path, "wb")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        cls.agent = subprocess.Popen(
            [AGENT, "--agent-only", "--listen-unix", cls.sock_path, "--exec-uid", str(NOBODY),
             "--exec-gid", str(NOBODY), "--work-dir", cls.tmp],
            stdin=subprocess.DEVNULL, stdout=cls.stderr_file, stderr=cls.stderr_file, env=env)
        deadline = time.monotonic() + 60  # an ASan start on a loaded host with cold caches
        while not os.path.exists(cls.sock_path):
            if cls.agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("agent did not start: " + cls.agent_stderr())
            time.sleep(0.02)

    @classmethod
    def agent_stderr(cls):
        with open(cls.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    @classmethod
    def tearDownClass(cls):
        alive = cls.agent.poll() is None
        if alive:
            cls.agent.send_signal(signal.SIGTERM)
            try:
                cls.agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                cls.agent.kill()
                cls.agent.wait()
        cls.stderr_file.close()
        log = cls.agent_stderr()
        rc = cls.agent.returncode
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if not alive:
            raise AssertionError(f"the agent died during the tests (rc {rc}):\n{log[-4000:]}")
        problems = sanitizer_problems(log)
        if problems:
            raise AssertionError("sanitizer reports from the agent:\n" + log[-8000:])
        if rc != 0:
            raise AssertionError(f"agent exited with {rc} after SIGTERM:\n{log[-4000:]}")

    def setUp(self):
        self.assertIsNone(self.agent.poll(), "agent is not running")
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.assertIsNone(self.agent.poll(), "agent died:\n" + self.agent_stderr()[-4000:])
        self.assertEqual(sanitizer_problems(self.agent_stderr()), [])

    def connect(self, hello=True):
        # Every wait on a reply is bounded by this: room for a cold interpreter on a loaded host.
        c = ep.Client.connect_unix(self.sock_path, timeout=60)
        self.clients.append(c)
        if hello:
            c.hello()
        return c

    def assertExit(self, result, code=0, **fields):
        self.assertIsNone(result.error, result)
        self.assertIsNotNone(result.exit, result)
        self.assertEqual(result.exit["exit_code"], code, result)
        for key, value in fields.items():
            self.assertEqual(result.exit[key], value, result)

    # --- handshake ---

    def test_hello_answers_ready_with_agreed_version_and_identity(self):
        c = self.connect(hello=False)
        ready = c.hello(sandbox_id="sb_0123456789abcdef", version=1)
        self.assertEqual(ready["version"], 1)
        self.assertEqual(ready["sandbox_id"], "sb_0123456789abcdef")
        self.assertTrue(ready["agent"].startswith("emberd-init "), ready)
        self.assertGreater(ready["uptime_ms"], 0)

    def test_newer_host_version_is_answered_with_version_8(self):
        c = self.connect(hello=False)
        self.assertEqual(c.hello(version=9)["version"], 8)

    # A Firecracker snapshot resets every vsock connection, so a suspended socket session
    # outlives its connection: the next connection on the listener gets it, and its first frame
    # decides (docs/protocol.md "Suspend and resume", point 3).

    def suspend_with_exec_in_flight(self, sandbox_id):
        """A version-8 session with an exec that finishes while suspended; returns its id after
        SUSPENDED arrived and the connection is closed (the session is parked)."""
        c = self.connect(hello=False)
        self.assertEqual(c.hello(sandbox_id=sandbox_id, version=8)["version"], 8)
        frame_id = c.start_exec("sleep 0.5; echo held; exit 3", argv=SH)
        c.send(ep.SUSPEND, 0)
        f = c.recv(lambda f: f.id == 0)
        self.assertEqual((f.type, f.payload), (ep.SUSPENDED, b""))
        c.close()
        return frame_id

    def test_a_suspended_socket_session_resumes_on_the_next_connection(self):
        frame_id = self.suspend_with_exec_in_flight("sb_parked")
        time.sleep(1)  # the exec ends while parked: its output and EXIT are held
        c = self.connect(hello=False)
        c.next_id = frame_id + 1
        c.send(ep.RESUME, 0, json.dumps({"version": 8, "sandbox_id": "sb_parked",
                                         "time_unix_ns": time.time_ns(),
                                         "entropy": os.urandom(32).hex()}))
        ready = c.recv(lambda f: f.id == 0)
        self.assertEqual(ready.type, ep.READY, ready)
        self.assertEqual((ready.json()["version"], ready.json()["sandbox_id"]), (8, "sb_parked"))
        result = c.wait_exec(frame_id)
        self.assertExit(result, 3)
        self.assertEqual(result.stdout, b"held\n")
        self.assertEqual(c.ping(b"resumed"), b"resumed")
        self.assertEqual(self.connect().ping(b"another"), b"another")  # nothing parked now

    def test_a_hello_on_the_next_connection_starts_a_parked_session_over(self):
        frame_id = self.suspend_with_exec_in_flight("sb_parked")
        c = self.connect(hello=False)
        c.next_id = frame_id + 1
        self.assertEqual(c.hello(sandbox_id="sb_fork", version=8)["sandbox_id"], "sb_fork")
        # the old session's exec was killed with it: nothing of it arrives here
        self.assertEqual(c.ping(b"fresh"), b"fresh")
        time.sleep(1)
        self.assertEqual(c.ping(b"still"), b"still")
        self.assertEqual([f for f in c.pending if f.id == frame_id], [])
        self.assertEqual(self.connect().ping(b"another"), b"another")

    def test_exec_before_hello_is_not_ready_and_session_continues(self):
        c = self.connect(hello=False)
        frame_id = c.start_exec("print(1)", argv=PY)
        f = c.recv(lambda f: f.id == frame_id)
        self.assertEqual(f.type, ep.ERROR)
        self.assertEqual(f.json()["code"], "not_ready")
        c.hello()
        self.assertExit(c.exec("print(1)", argv=PY))

    def test_second_hello_ends_session(self):
        c = self.connect()
        c.send(ep.HELLO, 0, json.dumps({"version": 1, "sandbox_id": "sb_x", "time_unix_ns": 0,
                                         "entropy": ""}))
        frames = c.wait_closed()
        self.assertEqual([(f.type, f.id, f.json()["code"]) for f in frames],
                         [(ep.ERROR, 0, "protocol")])

    def test_bad_hello_json_is_bad_request_and_ends_session(self):
        c = self.connect(hello=False)
        c.send(ep.HELLO, 0, b'{"version":1}')
        frames = c.wait_closed()
        self.assertEqual([(f.type, f.json()["code"]) for f in frames], [(ep.ERROR, "bad_request")])

    NET = {"mac": "02:00:0a:e7:00:02", "address": "10.231.0.2/30", "gateway": "10.231.0.1",
           "dns": "10.231.0.1"}

    def test_hello_net_is_accepted_and_left_alone_in_agent_only_mode(self):
        # Agent-only mode never touches the host's interfaces: READY, nothing configured.
        c = self.connect(hello=False)
        self.assertEqual(c.hello(version=5, net=self.NET)["version"], 5)
        self.assertExit(c.exec("print(1)", argv=PY))

    def test_bad_hello_net_is_bad_request_naming_the_field(self):
        for field, value, name in (("gateway", "10.231.0.5", "net.gateway"),
                                   ("mac", "01:00:5e:00:00:01", "net.mac"),
                                   ("address", "10.231.0.2/31", "net.address"),
                                   ("dns", "010.0.0.1", "net.dns")):
            c = self.connect(hello=False)
            with self.assertRaises(ep.GuestError) as cm:
                c.hello(version=5, net=dict(self.NET, **{field: value}))
            self.assertEqual(cm.exception.code, "bad_request")
            self.assertIn(name, cm.exception.message)
            c.wait_closed()

    # --- exec basics ---

    def test_python_print_returns_stdout_and_exit_0(self):
        r = self.connect().exec("print(6*7)", argv=PY)
        self.assertExit(r, 0, signal=0, timed_out=False, stdout_truncated=False,
                        stderr_truncated=False)
        self.assertEqual(bytes(r.stdout), b"42\n")
        self.assertEqual(bytes(r.stderr), b"")
        self.assertGreaterEqual(r.exit["duration_ms"], 0)

    def test_shell_exit_code_is_reported(self):
        r = self.connect().exec("echo hi; exit 3", argv=SH)
        self.assertExit(r, 3)
        self.assertEqual(bytes(r.stdout), b"hi\n")

    def test_stderr_is_separate_from_stdout(self):
        r = self.connect().exec("import sys\nprint('out')\nprint('err', file=sys.stderr)",
                                argv=PY)
        self.assertExit(r, 0)
        self.assertEqual(bytes(r.stdout), b"out\n")
        self.assertEqual(bytes(r.stderr), b"err\n")

    def test_stdin_is_piped_through(self):
        data = os.urandom(100 * 1024)
        r = self.connect().exec("cat", argv=SH, stdin=data)
        self.assertExit(r, 0)
        self.assertEqual(bytes(r.stdout), data)

    def test_stdin_is_dev_null_without_stdin_follows(self):
        r = self.connect().exec("cat; echo done", argv=SH)
        self.assertExit(r, 0)
        self.assertEqual(bytes(r.stdout), b"done\n")

    def test_exec_runs_as_exec_uid_in_own_session_with_base_env(self):
        code = "id -u; id -g; id -G; echo \"$HOME|$LANG|$USER|$PATH|$FOO\"; pwd"
        r = self.connect().exec(code, argv=SH, env=["FOO=bar", "LANG=C"])
        self.assertExit(r, 0)
        lines = bytes(r.stdout).decode().splitlines()
        self.assertEqual(lines[0], str(NOBODY))
        self.assertEqual(lines[1], str(NOBODY))
        self.assertEqual(lines[2], str(NOBODY))  # no supplementary groups left from root
        self.assertEqual(lines[3], f"{self.tmp}|C|sandbox|/usr/local/bin:/usr/bin:/bin|bar")
        self.assertEqual(lines[4], self.tmp)

    def test_exec_leads_its_own_session_and_cannot_regain_root(self):
        code = ("import os\n"
                "print(os.getpid() == os.getpgid(0) == os.getsid(0))\n"
                "print(os.getresuid(), os.getresgid())\n"
                "try:\n    os.setuid(0)\n    print('root!')\nexcept PermissionError:\n"
                "    print('denied')\n"
                "print(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])\n")
        r = self.connect().exec(code, argv=PY)
        self.assertExit(r, 0)
        self.assertEqual(bytes(r.stdout).decode().splitlines(), [
            "True", f"({NOBODY}, {NOBODY}, {NOBODY}) ({NOBODY}, {NOBODY}, {NOBODY})", "denied",
            "1"])

    def test_exec_gets_rlimits_and_no_inherited_fds(self):
        code = ("import os, resource\n"
                "print(resource.getrlimit(resource.RLIMIT_NOFILE))\n"
                "print(resource.getrlimit(resource.RLIMIT_CORE))\n"
                "print(resource.getrlimit(resource.RLIMIT_NPROC))\n"
                "print(sorted(int(x) for x in os.listdir('/proc/self/fd')))\n"
                "print(open('/proc/self/oom_score_adj').read().strip())\n")
        r = self.connect().exec(code, argv=PY, max_processes=377)
        self.assertExit(r, 0)
        lines = bytes(r.stdout).decode().splitlines()
        self.assertEqual(lines[0], "(1024, 1024)")
        self.assertEqual(lines[1], "(0, 0)")
        self.assertEqual(lines[2], "(377, 377)")  # the host's max_processes
        self.assertEqual(lines[3], "[0, 1, 2, 3]")  # 3: listdir's own fd
        self.assertEqual(lines[4], "1000")

    def test_code_file_is_removed_after_exec(self):
        r = self.connect().exec("import sys; print(sys.argv[-1])", argv=PY)
        self.assertExit(r, 0)
        path = bytes(r.stdout).decode().strip()
        self.assertTrue(path.startswith(os.path.join(self.tmp, ".emberd-exec") + "/"), path)
        self.assertFalse(os.path.exists(path))
        self.assertFalse(os.path.exists(os.path.dirname(path)))

    def test_missing_interpreter_is_spawn_failed(self):
        r = self.connect().exec("x", argv=["/nonexistent/interpreter"])
        self.assertIsNone(r.exit)
        self.assertEqual(r.error[0], "spawn_failed")
        self.assertIn("/nonexistent/interpreter", r.error[1])

    # --- limits and killing ---

    def test_timeout_kills_and_reports_timed_out_then_next_exec_works(self):
        c = self.connect()
        r = c.exec("while True: pass", argv=PY, timeout_ms=500)
        self.assertExit(r, -1, signal=signal.SIGKILL, timed_out=True)
        # The agent's own clock, spawn to reap: the 500 ms timer and the kill, not the
        # interpreter's start or the host's load on the way back. Far below the next
        # plausible wrong timer (a unit or default mix-up: 30 s, 500 s).
        self.assertGreaterEqual(r.exit["duration_ms"], 450)
        self.assertLess(r.exit["duration_ms"], 15000, r)
        self.assertExit(c.exec("print('next')", argv=PY), 0)

    def test_timeout_kills_whole_process_group(self):
        c = self.connect()
        r = c.exec("sleep 1000 & echo $!; wait", argv=SH, timeout_ms=3000)
        self.assertExit(r, -1, timed_out=True)
        if not bytes(r.stdout).split():
            self.skipTest(f"sh had not started its child within the 3 s exec timeout "
                          f"(exec ran {r.exit['duration_ms']} ms): machine too slow to test it")
        child = int(bytes(r.stdout).split()[0])
        # Killed at the timeout; gone (reaped) once the kernel has delivered the SIGKILL, on
        # whatever schedule the host allows. A child the kill missed lives 1000 s.
        deadline = time.monotonic() + 60
        while child in [p["pid"] for p in c.ps()]:
            self.assertLess(time.monotonic(), deadline, "the timeout left the group's child")
            time.sleep(0.05)

    def test_cancel_kills_without_timed_out(self):
        c = self.connect()
        frame_id = c.start_exec("import time\nprint('started', flush=True)\ntime.sleep(30)",
                                argv=PY)
        f = c.recv(lambda f: f.id == frame_id)
        self.assertEqual((f.type, f.payload), (ep.STDOUT, b"started\n"))
        c.cancel(frame_id)
        r = c.wait_exec(frame_id, timeout=60)
        self.assertExit(r, -1, signal=signal.SIGKILL, timed_out=False)

    def test_cancel_unknown_id_is_unknown_id(self):
        c = self.connect()
        c.cancel(999)
        f = c.recv(lambda f: f.id == 999)
        self.assertEqual((f.type, f.json()["code"]), (ep.ERROR, "unknown_id"))

    def test_output_beyond_limit_is_dropped_and_flagged(self):
        code = ("import sys\nb = b'x' * (1 << 20)\n"
                "for _ in range(100): sys.stdout.buffer.write(b)\n"
                "sys.stderr.write('small')\n")
        r = self.connect().exec(code, argv=PY, output_limit=1 << 20, wait_timeout=120)
        self.assertExit(r, 0, stdout_truncated=True, stderr_truncated=False)
        self.assertEqual(len(r.stdout), 1 << 20)
        self.assertEqual(bytes(r.stderr), b"small")

    def test_output_limit_zero_keeps_nothing(self):
        r = self.connect().exec("echo hi", argv=SH, output_limit=0)
        self.assertExit(r, 0, stdout_truncated=True)
        self.assertEqual(bytes(r.stdout), b"")

    def test_slow_reader_gets_all_output_through_backpressure(self):
        c = self.connect()
        size = 24 << 20
        frame_id = c.start_exec(f"import sys\nsys.stdout.buffer.write(b'y' * {size})", argv=PY,
                                output_limit=size)
        time.sleep(1.5)  # not reading: the agent must hold back, not buffer 24 MiB or drop it
        r = c.wait_exec(frame_id, timeout=60)
        self.assertExit(r, 0, stdout_truncated=False)
        self.assertEqual(len(r.stdout), size)
        self.assertEqual(bytes(r.stdout).count(b"y"), size)

    def test_stdin_overflow_fails_the_exec_with_error(self):
        c = self.connect()
        frame_id = c.start_exec("sleep 20", argv=SH)
        # stdin_follows was false: STDIN frames for it are dropped, the exec goes on.
        c.send_stdin(frame_id, b"ignored", fin=True)
        c.cancel(frame_id)
        self.assertExit(c.wait_exec(frame_id), -1, timed_out=False)
        frame_id = c.alloc_id()
        c.send(ep.EXEC, frame_id, json.dumps({
            "argv": SH, "env": [], "code": "sleep 20", "timeout_ms": 30000,
            "output_limit": 1024, "max_processes": 64, "stdin_follows": True}))
        c.send_stdin(frame_id, b"z" * (3 << 20))  # never read by sleep
        r = c.wait_exec(frame_id, timeout=60)
        self.assertIsNone(r.exit)
        self.assertEqual(r.error[0], "bad_request")
        self.assertEqual(c.ping(b"alive"), b"alive")

    # --- background execs (protocol version 3) ---

    def test_background_command_reports_its_pid_outlives_its_timeout_and_takes_signals(self):
        c = self.connect(hello=False)
        c.hello(version=3)
        frame_id = c.alloc_id()
        c.send(ep.EXEC, frame_id, json.dumps({
            "argv": ["/bin/sh", "-c", "echo up; read line; echo \"got $line\"; exec sleep 600"],
            "env": [], "code": "", "timeout_ms": 1, "output_limit": 0, "max_processes": 64,
            "stdin_follows": True, "background": True, "command": True, "cwd": "/"}))
        f = c.recv(lambda f: f.id == frame_id)
        self.assertEqual(f.type, ep.STARTED, f)
        pid = f.json()["pid"]
        self.assertGreater(pid, 0)
        # Past its 1 ms "timeout" and with no output limit, it still reads stdin later.
        time.sleep(0.5)
        c.send_stdin(frame_id, b"hello\n")
        out = b""
        while b"got hello\n" not in out:
            f = c.recv(lambda f: f.id == frame_id)
            self.assertEqual(f.type, ep.STDOUT, f)
            out += f.payload
        self.assertEqual(out, b"up\ngot hello\n")
        for bad in (0, 65):
            c.send(ep.SIGNAL, frame_id, struct.pack(">I", bad))
            f = c.recv(lambda f: f.id == frame_id)
            self.assertEqual((f.type, f.json()["code"]), (ep.ERROR, "bad_request"))
        c.send(ep.SIGNAL, frame_id + 1000, struct.pack(">I", 15))
        f = c.recv(lambda f: f.id == frame_id + 1000)
        self.assertEqual((f.type, f.json()["code"]), (ep.ERROR, "unknown_id"))
        c.send(ep.SIGNAL, frame_id, struct.pack(">I", 15))
        r = c.wait_exec(frame_id, timeout=30)
        self.assertExit(r, -1, signal=15, timed_out=False)

    def test_background_and_signal_need_version_3(self):
        c = self.connect()  # version 1
        frame_id = c.alloc_id()
        c.send(ep.EXEC, frame_id, json.dumps({
            "argv": SH, "env": [], "code": "sleep 1", "timeout_ms": 1000, "output_limit": 0,
            "max_processes": 64, "stdin_follows": False, "background": True}))
        f = c.recv(lambda f: f.id == frame_id)
        self.assertEqual((f.type, f.json()["code"]), (ep.ERROR, "bad_request"))
        c.send(ep.SIGNAL, frame_id, struct.pack(">I", 15))
        frames = c.wait_closed()
        self.assertIn("protocol", [f.json()["code"] for f in frames if f.type == ep.ERROR])

    # --- concurrency and ids ---

    def test_ten_concurrent_execs_in_one_session(self):
        c = self.connect()
        ids = {}
        for i in range(10):
            code = f"import time\ntime.sleep(0.3)\nprint({i} * 11)\nexit({i})"
            ids[c.start_exec(code, argv=PY)] = i
        for frame_id, i in ids.items():
            r = c.wait_exec(frame_id, timeout=30)
            self.assertExit(r, i)
            self.assertEqual(bytes(r.stdout), f"{i * 11}\n".encode())

    def test_duplicate_running_id_is_rejected(self):
        c = self.connect()
        # Runs until its stdin ends, however long the second EXEC takes to arrive.
        frame_id = c.alloc_id()
        c.send(ep.EXEC, frame_id, json.dumps({
            "argv": SH, "env": [], "code": "cat > /dev/null", "timeout_ms": 60000,
            "output_limit": 1024, "max_processes": 64, "stdin_follows": True}))
        c.start_exec("echo second", argv=SH, frame_id=frame_id)
        f = c.recv(lambda f: f.id == frame_id and f.type == ep.ERROR)
        self.assertEqual(f.json()["code"], "duplicate_id")
        c.send_stdin(frame_id, b"", fin=True)
        r = c.wait_exec(frame_id)
        self.assertExit(r, 0)
        self.assertEqual(bytes(r.stdout), b"")

    def test_more_than_64_execs_is_too_many_execs(self):
        c = self.connect()
        # Cancelled below: they run until then, however slowly the 64 start.
        ids = [c.start_exec("sleep 1000", argv=SH, timeout_ms=600000) for _ in range(64)]
        extra = c.start_exec("echo no", argv=SH)
        f = c.recv(lambda f: f.id == extra)
        self.assertEqual((f.type, f.json()["code"]), (ep.ERROR, "too_many_execs"))
        for frame_id in ids:
            c.cancel(frame_id)
        for frame_id in ids:
            self.assertExit(c.wait_exec(frame_id), -1)
        self.assertExit(c.exec("echo yes", argv=SH), 0)

    # --- processes left behind ---

    def test_double_fork_leaves_no_zombie(self):
        c = self.connect()
        r = c.exec("( sleep 0.3 & echo $! ); exit 0", argv=SH)
        self.assertExit(r, 0)
        orphan = int(bytes(r.stdout).split()[0])
        # The orphan exits after 0.3 s of its own clock and the agent reaps it: wait for that
        # on whatever schedule the host allows (an orphan never reaped stays a zombie).
        deadline = time.monotonic() + 60
        while orphan in [p["pid"] for p in c.ps()] and time.monotonic() < deadline:
            time.sleep(0.05)
        procs = c.ps()
        zombies = [p for p in procs if p["state"] == "Z" and p["ppid"] == self.agent.pid]
        self.assertEqual(zombies, [])
        self.assertNotIn(orphan, [p["pid"] for p in procs])

    def test_background_process_does_not_hold_exec_open(self):
        c = self.connect()
        # The background sleep holds the stdout pipe for 1000 s: the exec ends (its grace after
        # the main process exited) long before, whatever the machine's speed.
        r = c.exec("sleep 1000 & echo $!; echo started", argv=SH, wait_timeout=120)
        lines = bytes(r.stdout).decode().splitlines()
        background = int(lines[0])
        try:
            self.assertExit(r, 0)
            self.assertEqual(lines[1:], ["started"], r)
            self.assertIn(background, [p["pid"] for p in c.ps()], "the background sleep ended")
        finally:
            os.kill(background, signal.SIGKILL)

    def test_session_end_kills_its_execs(self):
        c = self.connect()
        frame_id = c.start_exec("echo $$; exec sleep 30", argv=SH)
        f = c.recv(lambda f: f.id == frame_id and f.type == ep.STDOUT)
        pid = int(f.payload)
        c.close()
        c2 = self.connect()
        deadline = time.monotonic() + 60
        while pid in [p["pid"] for p in c2.ps()]:
            self.assertLess(time.monotonic(), deadline, "exec survived its session")
            time.sleep(0.05)

    def test_new_connection_replaces_old_session(self):
        old = self.connect()
        new = self.connect()
        self.assertEqual(new.ping(b"x"), b"x")
        self.assertEqual(old.wait_closed(), [])

    # --- misc requests ---

    def test_ping_echoes_payload(self):
        c = self.connect()
        self.assertEqual(c.ping(b"\x00\xff" * 32), b"\x00\xff" * 32)
        self.assertEqual(c.ping(b""), b"")

    def test_ps_lists_the_agent(self):
        procs = self.connect().ps()
        me = [p for p in procs if p["pid"] == self.agent.pid]
        self.assertEqual(len(me), 1)
        self.assertEqual(me[0]["uid"], 0)
        self.assertLessEqual(len(procs), 1024)

    def test_agent_does_not_leak_fds(self):
        def agent_fds():
            return len(os.listdir(f"/proc/{self.agent.pid}/fd"))

        c = self.connect()
        self.assertExit(c.exec("echo warm", argv=SH), 0)
        before = agent_fds()
        for _ in range(3):
            self.assertExit(c.exec("cat", argv=SH, stdin=b"abc"), 0)
            self.assertIsNotNone(c.exec("x", argv=["/nonexistent"]).error)
            self.assertExit(c.exec("sleep 5 & echo bg", argv=SH), 0)
            frame_id = c.start_exec("sleep 10", argv=SH)
            c.cancel(frame_id)
            self.assertExit(c.wait_exec(frame_id), -1)
            c.send(ep.EXEC, c.alloc_id(), b"{bad")
        c.ping()
        self.assertEqual(agent_fds(), before)
        # Sessions that end (EOF, protocol error) give their fds back too.
        for _ in range(3):
            self.connect(hello=False).close()
            bad = self.connect()
            bad.send_raw(bytes(12))
            bad.wait_closed()
        c = self.connect()
        deadline = time.monotonic() + 60
        while agent_fds() != before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(agent_fds(), before)

    def test_version_and_help(self):
        out = subprocess.run([AGENT, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^emberd-init \d+\.\d+\.\d+\n$")
        out = subprocess.run([AGENT, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        self.assertIn("--agent-only", out.stdout)
        out = subprocess.run([AGENT], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2)  # not PID 1 and no --agent-only: refuse
        self.assertIn("not PID 1", out.stderr)

    # --- hostile input ---

    def assert_session_error(self, raw, code="protocol"):
        c = self.connect()
        c.send_raw(raw)
        frames = c.wait_closed()
        self.assertEqual(len(frames), 1, frames)
        self.assertEqual((frames[0].type, frames[0].id, frames[0].json()["code"]),
                         (ep.ERROR, 0, code))
        # The agent keeps serving.
        self.assertEqual(self.connect().ping(b"after"), b"after")

    def test_malformed_header_ends_session_and_agent_keeps_serving(self):
        self.assert_session_error(struct.pack(">IIBBH", 0, 1, ep.PING, 0, 7))

    def test_oversized_length_ends_session(self):
        self.assert_session_error(struct.pack(">IIBBH", 2 << 20, 1, ep.EXEC, 0, 0))

    def test_unknown_type_ends_session(self):
        self.assert_session_error(struct.pack(">IIBBH", 0, 1, 99, 0, 0))

    def test_guest_to_host_type_from_host_ends_session(self):
        self.assert_session_error(ep.encode_frame(ep.EXIT, 1, b"{}"))

    def test_garbage_json_in_exec_is_bad_request_and_session_continues(self):
        c = self.connect()
        for payload in (b"{not json", b"[]", b'{"argv":[],"code":"x"}', b"\xff\xfe",
                        json.dumps({"argv": ["/bin/sh"], "env": [], "code": "x",
                                    "timeout_ms": 0, "output_limit": 1, "max_processes": 8,
                                    "stdin_follows": False}).encode(),
                        json.dumps({"argv": ["/bin/sh"], "env": [], "code": "x",
                                    "timeout_ms": 10, "output_limit": 1,
                                    "stdin_follows": False}).encode()):
            frame_id = c.alloc_id()
            c.send(ep.EXEC, frame_id, payload)
            f = c.recv(lambda f: f.id == frame_id)
            self.assertEqual((f.type, f.json()["code"]), (ep.ERROR, "bad_request"), payload)
        self.assertExit(c.exec("echo ok", argv=SH), 0)

    def test_code_argument_runs_the_code_as_the_last_argv_entry(self):
        c = self.connect(hello=False)
        c.hello(version=6)
        code = 'echo "$0:$#"; printf "%s\\n" "$(ls -A /proc/self/cwd | wc -l)"; exit 3'
        result = c.exec(code, argv=["/bin/sh", "-c"], code_argument=True)
        self.assertExit(result, 3)
        self.assertEqual(result.stdout.decode().splitlines()[0], "/bin/sh:0")
        # The largest code one argv string takes runs; one byte more is refused before any spawn.
        limit = 128 * 1024 - 1
        filler = "#" + "x" * (limit - len("echo big\n") - 1)
        result = c.exec("echo big\n" + filler, argv=["/bin/sh", "-c"], code_argument=True)
        self.assertExit(result, 0)
        self.assertEqual(result.stdout, b"big\n")
        result = c.exec("echo big\n" + filler + "x", argv=["/bin/sh", "-c"], code_argument=True)
        self.assertEqual(result.error[0], "bad_request", result)
        self.assertIn("code_argument", result.error[1])
        result = c.exec("", argv=["/bin/echo", "a"], code_argument=True, command=True)
        self.assertEqual(result.error[0], "bad_request", result)

    def test_code_argument_needs_version_6(self):
        c = self.connect(hello=False)
        self.assertEqual(c.hello(version=5)["version"], 5)
        result = c.exec("echo hi", argv=["/bin/sh", "-c"], code_argument=True)
        self.assertEqual(result.error, ("bad_request", "code_argument needs version 6"))
        self.assertExit(c.exec("echo ok", argv=SH), 0)

    def test_random_garbage_never_kills_agent(self):
        rnd = os.urandom(1 << 16)
        for i in range(20):
            c = self.connect(hello=i % 2 == 0)
            try:
                c.send_raw(rnd[i * 1000:(i + 1) * 1000 + i * 97])
                c.wait_closed(timeout=5)
            except (ep.ProtocolError, TimeoutError, BrokenPipeError, ConnectionResetError):
                pass
        self.assertEqual(self.connect().ping(b"ok"), b"ok")

    def test_partial_frame_then_disconnect(self):
        c = self.connect()
        c.send_raw(ep.encode_frame(ep.EXEC, 5, b"{" * 100)[:50])
        c.close()
        self.assertEqual(self.connect().ping(b"ok"), b"ok")


if __name__ == "__main__":
    unittest.main()


class ChannelFdTest(unittest.TestCase):
    """--channel-fd: the agent serves an inherited connected fd and exits cleanly when it closes."""

    def test_serves_inherited_fd_and_exits_when_it_closes(self):
        if not os.path.exists(AGENT):
            self.fail(f"{AGENT} is missing: run `make build/asan/bin/emberd-init`")
        tmp = tempfile.mkdtemp(prefix="emberd-agent-fd.")
        os.chmod(tmp, 0o755)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            agent = subprocess.Popen(
                [AGENT, "--agent-only", "--channel-fd", str(theirs.fileno()), "--work-dir", tmp],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            theirs.close()
            ours.settimeout(30)
            c = ep.Client(ours, timeout=30)
            c.hello()
            r = c.exec("echo via-fd; id -u", argv=SH)
            self.assertEqual(r.exit["exit_code"], 0, r)
            self.assertEqual(bytes(r.stdout), f"via-fd\n{os.getuid()}\n".encode())
            c.close()
            _, err = agent.communicate(timeout=30)
            self.assertEqual(agent.returncode, 0, err.decode(errors="replace"))
            self.assertEqual(sanitizer_problems(err.decode(errors="replace")), [])
        finally:
            ours.close()
            shutil.rmtree(tmp, ignore_errors=True)
