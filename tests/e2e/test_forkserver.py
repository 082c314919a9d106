"""The guest's fork server (docs/guest.md "Fork server"): a plain python exec forks from a warm,
pre-imported interpreter instead of starting python3, with the same isolation as before.

- ForkServerTest (QEMU, python pack, one sandbox): a plain exec runs through it (json is
  already imported, which a fresh python3 does not do) and `"fresh_interpreter": true` does not;
  module-level changes stay in their exec; exit codes, SystemExit("msg"), uncaught exceptions
  (no fork-server frames); stdin, env, cwd, uid 1000 and the exec's cgroup; the timeout; random
  differs between execs; code of uid 1000 can neither kill nor ptrace the server.
- PooledForkServerTest: a pooled clone's first exec runs through the server its template started.

- AgentOnlyForkServerTest (emberd-init --agent-only on this host, execs as uid 65534): the
  guest side of `"fresh_interpreter": true`, and the fallback, which has no hook a guest user
  could reach: here the server is a host process the test can stop and kill. A stopped server
  (no reply) and a dead one make the exec start python3 the old way; the next exec restarts the
  server, three starts at most.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emberproto as ep  # noqa: E402
import harness  # noqa: E402

AGENT = os.path.join(harness.REPO, "build", "asan", "bin", "emberd-init")
NOBODY = 65534

WARM = "import sys\nprint('json' in sys.modules)\n"


def raw_exec(d, sandbox_id, body):
    """POST .../exec without the contract check: `fresh_interpreter` is not in
    docs/openapi.yaml yet (the lead's file)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=300)
    try:
        conn.request("POST", f"/sandboxes/{sandbox_id}/exec", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


# Run as uid 1000 in an exec: the server is the root process whose command line names
# forkserver.py (the exec's own process has that command line too, but runs as uid 1000).
ATTACK = r"""
import ctypes, errno, os, signal
server = None
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()
        uid = [l for l in open(f'/proc/{pid}/status') if l.startswith('Uid:')][0].split()[1]
    except OSError:
        continue
    if b'forkserver.py' in cmdline and uid == '0':
        server = int(pid)
assert server is not None, 'no fork server found'
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
    try:
        os.kill(server, sig)
        print('killed')
    except PermissionError:
        print('kill EPERM')
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
r = libc.ptrace(16, server, None, None)
print('ptrace', r, errno.errorcode.get(ctypes.get_errno()))
"""


class ForkServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon()
        try:
            cls.sb = cls.d.create(language_pack="python")
        except Exception:
            cls.d.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.delete(cls.sb["id"])
        cls.d.stop()

    def run_code(self, code, **fields):
        status, res, _ = self.d.exec(self.sb["id"], code, **fields)
        self.assertEqual(status, 200, res)
        return res

    def test_plain_exec_uses_it_an_ineligible_one_does_not(self):
        self.assertEqual(self.run_code(WARM)["stdout"], "True\n")
        # An environment python3 reads at start-up: a fresh python3, which has no json.
        res = self.run_code(WARM, env={"PYTHONDONTWRITEBYTECODE": "1"})
        self.assertEqual(res["stdout"], "False\n")
        self.assertEqual(self.run_code(WARM)["stdout"], "True\n")

    def test_fresh_interpreter_does_not_use_it(self):
        status, res = raw_exec(self.d, self.sb["id"], {"code": WARM, "fresh_interpreter": True})
        self.assertEqual(status, 200, res)
        self.assertEqual(res["stdout"], "False\n")

    def test_module_changes_stay_in_their_exec(self):
        self.run_code("import json\njson.marker = 1\nimport os\nos.environ['X_LEAK'] = '1'\n"
                      "LEFT = 1\n")
        res = self.run_code("import json, os\nprint(hasattr(json, 'marker'), 'X_LEAK' in "
                            "os.environ, 'LEFT' in dir())\n")
        self.assertEqual(res["stdout"], "False False False\n")

    def test_exit_codes_and_tracebacks(self):
        res = self.run_code("import sys\nprint('out')\nsys.exit(7)\n")
        self.assertEqual((res["exit_code"], res["stdout"]), (7, "out\n"))
        res = self.run_code("raise SystemExit('msg')\n")
        self.assertEqual((res["exit_code"], res["stderr"]), (1, "msg\n"))
        res = self.run_code("def f():\n    raise ValueError('boom')\nf()\n")
        self.assertEqual(res["exit_code"], 1)
        lines = res["stderr"].splitlines()
        self.assertEqual(lines[0], "Traceback (most recent call last):")
        self.assertEqual(lines[-1], "ValueError: boom")
        self.assertNotIn("forkserver", res["stderr"])
        # Two user frames (<module> and f), nothing else.
        self.assertEqual(len([l for l in lines if l.startswith("  File ")]), 2, res["stderr"])
        res = self.run_code("print(__name__, __file__ == __import__('sys').argv[0])\n")
        self.assertEqual(res["stdout"], "__main__ True\n")

    def test_stdin_env_cwd_user_and_cgroup(self):
        res = self.run_code(
            "import os\nprint(input())\nprint(os.environ['FOO'], os.getuid(), os.getgid())\n"
            "print(os.getcwd() == os.environ['HOME'], sorted(os.environ) == sorted("
            "['FOO', 'HOME', 'LANG', 'PATH', 'USER']))\n"
            "print(open('/proc/self/cgroup').read().strip())\n"
            "print(os.getpgid(0) == os.getpid(), os.getsid(0) == os.getpid())\n"
            "print(open('/proc/self/oom_score_adj').read().strip(), os.nice(0))\n",
            stdin="hello", env={"FOO": "bar"})
        lines = res["stdout"].splitlines()
        self.assertEqual(lines[0:3], ["hello", "bar 1000 1000", "True True"], res)
        self.assertIn("/execs/", lines[3])
        self.assertEqual(lines[4:6], ["True True", "1000 19"])

    def test_timeout_kills_it(self):
        res = self.run_code("import time\nprint('x', flush=True)\ntime.sleep(600)\n",
                            timeout_ms=3000)
        self.assertTrue(res["timed_out"], res)
        self.assertEqual(res["signal"], 9)
        self.assertEqual(res["stdout"], "x\n")
        self.assertEqual(self.run_code(WARM)["stdout"], "True\n")

    def test_random_differs_between_execs(self):
        code = "import random\nprint(random.random())\n"
        self.assertNotEqual(self.run_code(code)["stdout"], self.run_code(code)["stdout"])

    def test_uid_1000_cannot_kill_or_ptrace_the_server(self):
        res = self.run_code(ATTACK)
        self.assertEqual(res["exit_code"], 0, res)
        self.assertEqual(res["stdout"], "kill EPERM\nkill EPERM\nkill EPERM\nptrace -1 EPERM\n")
        self.assertEqual(self.run_code(WARM)["stdout"], "True\n")


class PooledForkServerTest(unittest.TestCase):
    def test_a_pooled_clones_first_exec_uses_it(self):
        d = harness.Daemon("--pool-size", "1", "--prewarm")
        try:
            d.wait_health(lambda h: h["pool"]["ready_by_pack"].get("python", 0) >= 1, 600,
                          "a pooled python sandbox")
            sb = d.create(language_pack="python")
            self.assertEqual(sb["boot_mode"], "pool")
            status, res, _ = d.exec(sb["id"], WARM)
            self.assertEqual(status, 200, res)
            self.assertEqual(res["stdout"], "True\n")
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()


class AgentOnlyForkServerTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("execs run as uid 65534: needs root")
        self.tmp = tempfile.mkdtemp(prefix="emberd-fs-test.")
        os.chmod(self.tmp, 0o755)
        sock_path = os.path.join(self.tmp, "agent.sock")
        self.stderr = open(os.path.join(self.tmp, "agent.stderr"), "wb")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
        self.agent = subprocess.Popen(
            [AGENT, "--agent-only", "--listen-unix", sock_path, "--exec-uid", str(NOBODY),
             "--exec-gid", str(NOBODY), "--work-dir", self.tmp],
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr, env=env)
        self.addCleanup(self.stop_agent)
        deadline = time.monotonic() + 60
        while not os.path.exists(sock_path):
            self.assertIsNone(self.agent.poll(), self.log())
            self.assertLess(time.monotonic(), deadline, "agent did not start")
            time.sleep(0.02)
        self.c = ep.Client.connect_unix(sock_path, timeout=60)
        self.c.hello(version=4)

    def log(self):
        with open(os.path.join(self.tmp, "agent.stderr"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop_agent(self):
        self.c.close()
        self.agent.send_signal(signal.SIGTERM)
        rc = self.agent.wait(timeout=60)
        self.stderr.close()
        log = self.log()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.assertEqual(rc, 0, log[-4000:])
        self.assertNotIn("Sanitizer", log)

    def warm(self, **fields):
        """Whether the exec ran in a fork of the server (json pre-imported)."""
        frame_id = self.c.alloc_id()
        msg = {"argv": ["/usr/bin/python3"], "env": [], "code": WARM, "timeout_ms": 60000,
               "output_limit": 1 << 20, "max_processes": 256, "stdin_follows": False, **fields}
        self.c.send(ep.EXEC, frame_id, json.dumps(msg))
        res = self.c.wait_exec(frame_id)
        self.assertIsNone(res.error, res)
        self.assertEqual(res.exit["exit_code"], 0, res)
        return {b"True\n": True, b"False\n": False}[bytes(res.stdout)]

    def server_pid(self):
        script = os.path.join(self.tmp, ".emberd-exec", "forkserver.py").encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(f"/proc/{pid}/status") as f:
                    uid = [l for l in f if l.startswith("Uid:")][0].split()[1]
            except (OSError, IndexError):
                continue
            if script in argv and uid == "0":  # the children run as 65534
                return int(pid)
        return None

    def wait_gone(self, pid):
        """Until the agent reaped it."""
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{pid}"):
            self.assertLess(time.monotonic(), deadline, f"server {pid} not reaped")
            time.sleep(0.05)

    def test_fresh_interpreter_and_the_fallback(self):
        self.assertTrue(self.warm())
        self.assertFalse(self.warm(fresh_interpreter=True))
        first = self.server_pid()
        self.assertIsNotNone(first)
        # A server that does not answer: this exec starts the old way, the server is killed.
        os.kill(first, signal.SIGSTOP)
        self.assertFalse(self.warm())
        self.wait_gone(first)
        self.assertIn("no reply within", self.log())
        # A new one (the second start); killed from outside, the agent's reaper notices.
        self.assertTrue(self.warm())
        second = self.server_pid()
        self.assertNotIn(second, (None, first))
        os.kill(second, signal.SIGKILL)
        self.wait_gone(second)
        self.assertTrue(self.warm())  # the third start
        third = self.server_pid()
        os.kill(third, signal.SIGKILL)
        self.wait_gone(third)
        # No fourth start: the old way from now on, and execs still work.
        self.assertFalse(self.warm())
        self.assertIsNone(self.server_pid())
        self.assertIn("starts used up", self.log())


if __name__ == "__main__":
    unittest.main()
