"""The guest's fork server (docs/guest.md "Fork server"): a plain python exec forks from a warm,
pre-imported interpreter instead of starting python3, with the same isolation as before.

- ForkServerTest (QEMU, python pack, one sandbox): a plain exec runs through it (json is
  already imported, which a fresh python3 does not do) and `"fresh_interpreter": true` does not;
  module-level changes stay in their exec; exit codes, SystemExit("msg"), uncaught exceptions
  (no fork-server frames); stdin, env, cwd, uid 1000 and the exec's cgroup; the timeout; random
  differs between execs; code of uid 1000 can neither kill nor ptrace the server.
- PooledForkServerTest: a pooled clone's first exec runs through the server its template started.

The fallback (the server gone: the exec starts python3 the old way, the server restarts) has no
hook a guest user could reach: tests/unit/test_guest_forkserver.c kills the server and checks it.
"""

import http.client
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

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

    # src/api/routes.c exec_request_from_body does not copy `fresh_interpreter` into the
    # manager's request yet (the lead's file): until it does, the flag is dropped on the host.
    @unittest.expectedFailure
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


if __name__ == "__main__":
    unittest.main()
