"""Code contexts (issue 12, docs/api.md "Contexts"): POST /sandboxes/{id}/contexts starts a
long-lived interpreter in the guest; POST .../exec with context_id runs code in it, so globals,
imports, cwd and environment persist; the result adds the final expression's repr, rich results
and the exception; a timeout interrupts (state kept) and then kills and restarts; OOM restarts;
one exec at a time per context; at most --max-contexts.

- ContextsBase: persistence, result, exception, shell contexts. Run under QEMU (ContextsTest)
  and the fake Firecracker (FirecrackerContextsTest).
- ContextsTest adds: timeouts, OOM, 409/429, rich results, streamed mode, bad input, delete and
  restart.
- PooledContextsTest: contexts in a sandbox taken from the warm pool.
"""

import base64
import http.client
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
import harness  # noqa: E402
from test_hostile import HOG  # noqa: E402

FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
NDJSON = "application/x-ndjson"


wait_until = harness.wait_for


class ContextsBase(unittest.TestCase):
    daemon_args = ("--max-contexts", "3")

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(*cls.daemon_args)
        try:
            cls.sb = cls.d.create(language_pack="python")
        except Exception:
            cls.d.stop(check=False)
            raise
        cls.base = f"/sandboxes/{cls.sb['id']}/contexts"

    @classmethod
    def tearDownClass(cls):
        cls.d.delete(cls.sb["id"])
        cls.d.stop()

    def open(self, expect=201, **body):
        status, reply, _ = self.d.request("POST", self.base, body)
        self.assertEqual(status, expect, reply)
        if expect == 201:
            self.addCleanup(self.d.request, "DELETE", f"{self.base}/{reply['id']}")
        return reply

    def run_in(self, ctx, code, expect=200, **fields):
        status, reply, _ = self.d.exec(self.sb["id"], code, context_id=ctx["id"], **fields)
        self.assertEqual(status, expect, reply)
        return reply

    def test_state_persists_and_final_expression_is_the_result(self):
        ctx = self.open(env={"GREETING": "hello"}, cwd="/tmp")
        self.assertEqual(ctx["language"], "python")
        self.assertEqual((ctx["execs"], ctx["restarts"], ctx["busy"]), (0, 0, False))
        first = self.run_in(ctx, "x = 2\nimport os\nos.chdir('/home/sandbox')")
        self.assertEqual((first["exit_code"], first["result"], first["error"]), (0, None, None))
        self.assertFalse(first["context_restarted"])
        second = self.run_in(ctx, "print('seen', x, os.getcwd(), os.environ['GREETING'])\nx * 21")
        self.assertEqual(second["stdout"], "seen 2 /home/sandbox hello\n")
        self.assertEqual(second["result"], "42")
        self.assertEqual(self.run_in(ctx, "'a' + 'b'")["result"], "'ab'")
        self.assertIsNone(self.run_in(ctx, "None")["result"])
        # the uid of the sandbox user, like a plain exec
        self.assertEqual(self.run_in(ctx, "os.getuid()")["result"], "1000")
        status, got, _ = self.d.request("GET", f"{self.base}/{ctx['id']}")
        self.assertEqual((status, got["execs"], got["busy"]), (200, 5, False))
        status, listing, _ = self.d.request("GET", self.base)
        self.assertIn(ctx["id"], [c["id"] for c in listing["contexts"]])

    def test_exception_is_reported_and_the_context_survives(self):
        ctx = self.open()
        self.run_in(ctx, "def boom(n):\n    return 10 / n\nkept = 'yes'")
        res = self.run_in(ctx, "boom(0)")
        self.assertEqual(res["exit_code"], 1)
        self.assertEqual(res["error"]["name"], "ZeroDivisionError")
        self.assertEqual(res["error"]["value"], "division by zero")
        tb = res["error"]["traceback"]
        self.assertIn("return 10 / n", tb)  # the line of the function an earlier cell defined
        self.assertIn("ZeroDivisionError: division by zero", tb)
        self.assertNotIn("context.py", tb)
        self.assertIn("ZeroDivisionError", res["stderr"])
        self.assertFalse(res["context_restarted"])
        self.assertEqual(self.run_in(ctx, "kept")["result"], "'yes'")
        syntax = self.run_in(ctx, "def (:")
        self.assertEqual(syntax["error"]["name"], "SyntaxError")
        self.assertEqual(self.run_in(ctx, "kept")["result"], "'yes'")
        # an exception whose str() raises as well is still an error, not the context's end
        odd = self.run_in(ctx, "class Odd(Exception):\n    __str__ = lambda self: 1 / 0\n"
                               "raise Odd()")
        self.assertEqual((odd["error"]["name"], odd["error"]["value"]), ("Odd", "<str() failed>"))
        self.assertFalse(odd["context_restarted"])
        self.assertEqual(self.run_in(ctx, "kept")["result"], "'yes'")

    def test_shell_context_keeps_cwd_variables_and_functions(self):
        ctx = self.open(language="shell")
        self.assertEqual(ctx["language"], "shell")
        res = self.run_in(ctx, "cd /tmp\nexport COUNT=1\ngreet() { echo \"hi $1\"; }\nfalse")
        self.assertEqual(res["exit_code"], 1)
        self.assertIsNone(res["result"])
        res = self.run_in(ctx, "COUNT=$((COUNT + 1))\ngreet there\npwd\necho $COUNT\nid -u")
        self.assertEqual(res["stdout"], "hi there\n/tmp\n2\n1000\n")
        self.assertEqual(res["exit_code"], 0)
        # a syntax error is the run's failure, not the shell's end
        res = self.run_in(ctx, "if then fi")
        self.assertNotEqual(res["exit_code"], 0)
        self.assertFalse(res["context_restarted"])
        self.assertEqual(self.run_in(ctx, "echo $COUNT")["stdout"], "2\n")


class ContextsTest(ContextsBase):

    def test_timeout_interrupts_and_keeps_state(self):
        ctx = self.open()
        self.run_in(ctx, "state = [1, 2, 3]")
        res = self.run_in(ctx, "import time\nprint('before', flush=True)\ntime.sleep(120)",
                          timeout_ms=1500)
        self.assertTrue(res["timed_out"])
        self.assertFalse(res["context_restarted"])
        self.assertEqual(res["error"]["name"], "KeyboardInterrupt")
        self.assertEqual(res["stdout"], "before\n")
        self.assertEqual(self.run_in(ctx, "state")["result"], "[1, 2, 3]")

    def test_timeout_kills_and_restarts_when_the_code_ignores_the_interrupt(self):
        ctx = self.open()
        self.run_in(ctx, "state = 1")
        res = self.run_in(ctx, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                               "while True:\n    pass", timeout_ms=1000)
        self.assertTrue(res["timed_out"])
        self.assertTrue(res["context_restarted"])
        self.assertEqual((res["exit_code"], res["signal"]), (-1, 9))
        # a fresh interpreter: the state is gone, the context works
        after = self.run_in(ctx, "state")
        self.assertEqual(after["error"]["name"], "NameError")
        self.assertEqual(self.run_in(ctx, "1 + 1")["result"], "2")
        status, got, _ = self.d.request("GET", f"{self.base}/{ctx['id']}")
        self.assertEqual(got["restarts"], 1)

    def test_out_of_memory_restarts_the_context(self):
        ctx = self.open()
        self.run_in(ctx, "before = 'set'")
        # All pages touched in one system call (test_hostile.HOG: a Python loop that touches
        # them thrashes for minutes under emulation before the kernel gives up).
        res = self.run_in(ctx, HOG, timeout_ms=240000)
        self.assertTrue(res["oom_killed"], res)
        self.assertTrue(res["context_restarted"])
        self.assertEqual(res["signal"], 9)
        self.assertEqual(self.run_in(ctx, "before")["error"]["name"], "NameError")
        self.assertEqual(self.run_in(ctx, "'alive'")["result"], "'alive'")

    def test_one_exec_at_a_time_and_restart(self):
        ctx = self.open()
        self.run_in(ctx, "x = 1")
        slow = {}

        def long_exec():
            slow["reply"] = self.run_in(ctx, "import time\ntime.sleep(120)", timeout_ms=300000)

        t = threading.Thread(target=long_exec)
        t.start()
        try:
            wait_until(lambda: self.d.request("GET", f"{self.base}/{ctx['id']}")[1]["busy"], 120,
                       "the context to be busy")
            status, reply, _ = self.d.exec(self.sb["id"], "x", context_id=ctx["id"])
            self.assertEqual(status, 409, reply)
            self.assertEqual(reply["error"]["code"], "conflict")
            status, reply, _ = self.d.request("POST", f"{self.base}/{ctx['id']}/restart")
            self.assertEqual(status, 409, reply)
            # another context runs meanwhile
            other = self.open(language="shell")
            self.assertEqual(self.run_in(other, "echo free")["stdout"], "free\n")
        finally:
            # deleting a busy context ends its exec as killed
            status, _, _ = self.d.request("DELETE", f"{self.base}/{ctx['id']}")
            t.join(120)
        self.assertEqual(status, 204)
        self.assertFalse(t.is_alive())
        self.assertEqual(slow["reply"]["signal"], 9)
        self.assertTrue(slow["reply"]["context_restarted"])
        status, reply, _ = self.d.request("GET", f"{self.base}/{ctx['id']}")
        self.assertEqual(status, 404, reply)

    def test_restart_gives_a_fresh_interpreter(self):
        ctx = self.open()
        self.run_in(ctx, "gone = True")
        status, reply, _ = self.d.request("POST", f"{self.base}/{ctx['id']}/restart")
        self.assertEqual(status, 200, reply)
        self.assertEqual((reply["id"], reply["restarts"], reply["busy"]), (ctx["id"], 1, False))
        self.assertEqual(self.run_in(ctx, "gone")["error"]["name"], "NameError")

    def test_too_many_contexts(self):
        status, listing, _ = self.d.request("GET", self.base)
        self.assertEqual(listing["contexts"], [])
        opened = [self.open(language="shell") for _ in range(3)]
        status, reply, raw = self.d.request("POST", self.base, {"language": "shell"})
        self.assertEqual(status, 429, reply)
        self.assertEqual(reply["error"]["code"], "capacity")
        self.assertIn("--max-contexts", reply["error"]["message"])
        self.assertEqual(self.d.request("DELETE", f"{self.base}/{opened[0]['id']}")[0], 204)
        self.open(language="shell")

    def test_rich_results(self):
        ctx = self.open()
        png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
        res = self.run_in(ctx, (
            "class Chart:\n"
            "    def _repr_png_(self):\n"
            "        return b'\\x89PNG\\r\\n\\x1a\\nfake'\n"
            "    def _repr_html_(self):\n"
            "        return '<b>chart</b>'\n"
            "    def _repr_svg_(self):\n"
            "        return '<svg/>'\n"
            "    def _repr_json_(self):\n"
            "        return {'points': [1, 2]}\n"
            "    def __repr__(self):\n"
            "        return 'Chart()'\n"
            "Chart()"))
        self.assertEqual(res["result"], "Chart()")
        got = {r["mime"]: r["data"] for r in res["results"]}
        self.assertEqual(got, {"image/png": png, "text/html": "<b>chart</b>",
                               "image/svg+xml": "<svg/>",
                               "application/json": json.dumps({"points": [1, 2]})})
        # a broken _repr_*_ is no result, and a huge one is left out: the repr stays
        res = self.run_in(ctx, "class Big:\n    def _repr_html_(self):\n"
                               "        return 'x' * (2 << 20)\n"
                               "    def _repr_svg_(self):\n        raise ValueError()\nBig()")
        self.assertEqual(res["results"], [])
        self.assertTrue(res["result"].startswith("<__main__.Big object"))
        # long texts: a result beyond one frame's 4 KiB of old, one cut at 60 KiB, and rich data
        # that escaping (a quote takes 2 bytes) grows beyond a reply: dropped, the rest stays
        self.assertEqual(self.run_in(ctx, "'x' * 5000")["result"], "'" + "x" * 5000 + "'")
        res = self.run_in(ctx, "'\u00e9' * 100000")
        self.assertTrue(res["result"].endswith("[... cut]"), res["result"][-40:])
        self.assertLessEqual(len(res["result"].encode()), 64 * 1024)
        res = self.run_in(ctx, "class Quotes:\n    def _repr_html_(self):\n"
                               "        return '\"' * 600000\n"
                               "raise ValueError('\\x01' * 50000)")
        self.assertEqual(res["error"]["name"], "ValueError")
        self.assertEqual(len(res["error"]["value"]), 50000)
        res = self.run_in(ctx, "Quotes()")
        self.assertEqual(res["results"], [])
        self.assertTrue(res["result"].startswith("<__main__.Quotes object"))
        self.assertFalse(res["context_restarted"])

    def test_open_figures_become_png_results(self):
        # The python pack has no matplotlib: a stand-in pyplot (what figure_results in
        # context.py reads of it) shows the figures a run leaves open come back as PNGs, within
        # the results bounds, and are closed, even when one fails to render.
        ctx = self.open()
        self.assertEqual(self.run_in(ctx, "import sys\n'matplotlib' in sys.modules")["result"],
                         "False")
        self.run_in(ctx, (
            "import types\n"
            "class Fig:\n"
            "    def __init__(self, data):\n"
            "        self.data = data\n"
            "    def savefig(self, buf, format, dpi):\n"
            "        assert (format, dpi) == ('png', 'figure')\n"
            "        buf.write(self.data)\n"
            "class Broken:\n"
            "    def savefig(self, *args, **kwargs):\n"
            "        raise RuntimeError('cannot render')\n"
            "figs = []\n"
            "helpers = types.ModuleType('matplotlib._pylab_helpers')\n"
            "helpers.Gcf = types.SimpleNamespace(get_all_fig_managers=lambda: [\n"
            "    types.SimpleNamespace(canvas=types.SimpleNamespace(figure=f)) for f in figs])\n"
            "pyplot = types.ModuleType('matplotlib.pyplot')\n"
            "pyplot.close = figs.remove\n"
            "mpl = types.ModuleType('matplotlib')\n"
            "sys.modules.update({'matplotlib': mpl, 'matplotlib._pylab_helpers': helpers,\n"
            "                    'matplotlib.pyplot': pyplot})"))
        res = self.run_in(ctx, "figs.extend([Fig(b'one'), Broken(), Fig(b'two')])\nlen(figs)")
        self.assertEqual(res["result"], "3")
        self.assertEqual(res["results"], [
            {"mime": "image/png", "data": base64.b64encode(b"one").decode()},
            {"mime": "image/png", "data": base64.b64encode(b"two").decode()}])
        res = self.run_in(ctx, "len(figs)")
        self.assertEqual((res["result"], res["results"]), ("0", []))
        # at most RESULTS_MAX results, the value's own first; every figure is closed anyway
        res = self.run_in(ctx, (
            "class Chart:\n"
            "    def _repr_png_(self):\n"
            "        return b'chart'\n"
            "figs.extend(Fig(b'%d' % i) for i in range(10))\n"
            "Chart()"))
        self.assertEqual([r["data"] for r in res["results"]],
                         [base64.b64encode(d).decode()
                          for d in (b"chart", b"0", b"1", b"2", b"3", b"4", b"5", b"6")])
        self.assertEqual(self.run_in(ctx, "len(figs)")["result"], "0")
        # figures larger than the results' byte bound are left out, and closed
        res = self.run_in(ctx, "figs.append(Fig(b'x' * (700 << 10)))\nfigs.append(Fig(b'ok'))")
        self.assertEqual(res["results"], [{"mime": "image/png",
                                           "data": base64.b64encode(b"ok").decode()}])
        self.assertEqual(self.run_in(ctx, "len(figs)")["result"], "0")
        self.assertFalse(res["context_restarted"])

    def test_streamed_exec_in_a_context(self):
        ctx = self.open()
        path = f"/sandboxes/{self.sb['id']}/exec"
        body = json.dumps({"code": "print('one', flush=True)\n6 * 7", "context_id": ctx["id"],
                           "stream": True}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=300)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            self.d.check_contract("POST", path, body, resp.status, dict(resp.getheaders()), raw)
        finally:
            conn.close()
        self.assertEqual(resp.status, 200)
        events = contract.parse_events(NDJSON, raw)
        self.assertEqual("".join(e["data"] for e in events if e["type"] == "stdout"), "one\n")
        last = events[-1]
        self.assertEqual((last["type"], last["result"], last["context_restarted"]),
                         ("exit", "42", False))

    def test_bad_requests(self):
        sid = self.sb["id"]
        ctx = self.open()
        cases = [
            ("POST", self.base, {"language": "ruby"}, 400),
            ("POST", self.base, {"cwd": ""}, 400),
            ("POST", self.base, {"nope": 1}, 400),
            ("GET", f"{self.base}/ctx_0123", None, 404),
            ("GET", f"{self.base}/not-a-context", None, 404),
            ("DELETE", f"{self.base}/ctx_0123", None, 404),
            ("POST", f"{self.base}/ctx_0123/restart", None, 404),
            ("POST", f"/sandboxes/{sid}/exec", {"code": "1", "context_id": "ctx_0123"}, 404),
            ("POST", f"/sandboxes/{sid}/exec", {"code": "1", "context_id": "nope"}, 400),
            ("POST", f"/sandboxes/{sid}/exec",
             {"code": "1", "context_id": ctx["id"], "stdin": "x"}, 400),
            ("POST", f"/sandboxes/{sid}/exec",
             {"code": "1", "context_id": ctx["id"], "fresh_interpreter": True}, 400),
            ("POST", f"/sandboxes/{sid}/exec",
             {"code": "1", "context_id": ctx["id"], "env": {"A": "1"}}, 400),
            ("POST", "/sandboxes/sb_00000000000000000000000000000000/contexts", {}, 404),
        ]
        for method, path, body, expect in cases:
            with self.subTest(method=method, path=path, body=body):
                status, reply, _ = self.d.request(method, path, body)
                self.assertEqual(status, expect, reply)
        # a context in the shell pack: python is not there
        shell_sb = self.d.create(language_pack="shell")
        try:
            status, reply, _ = self.d.request("POST", f"/sandboxes/{shell_sb['id']}/contexts",
                                              {"language": "python"})
            self.assertEqual(status, 400, reply)
            self.assertIn("has no python", reply["error"]["message"])
            status, reply, _ = self.d.request("POST", f"/sandboxes/{shell_sb['id']}/contexts",
                                              {"language": "shell"})
            self.assertEqual(status, 201, reply)
        finally:
            self.assertEqual(self.d.delete(shell_sb["id"]), 204)


class FirecrackerContextsTest(ContextsBase):
    """The same agent behind vsock (the fake Firecracker runs the guest under QEMU)."""
    daemon_args = ("--max-contexts", "3", "--vmm", "firecracker", "--firecracker-bin", FAKE_FC,
                   "--no-jail", "--no-snapshots")


class PooledContextsTest(unittest.TestCase):
    """A context in a clone from the warm pool: its agent was snapshotted mid-life."""

    def test_context_in_a_pooled_clone(self):
        d = harness.Daemon("--pool-size", "1")
        try:
            d.wait_health(lambda h: h["pool"]["ready_by_pack"].get("python", 0) >= 1, 900,
                          "a pooled python clone")
            sb = d.create(language_pack="python")
            self.assertEqual(sb["boot_mode"], "pool")
            status, ctx, _ = d.request("POST", f"/sandboxes/{sb['id']}/contexts", {})
            self.assertEqual(status, 201, ctx)
            for code, want in (("n = 20", None), ("n + 22", "42")):
                status, res, _ = d.exec(sb["id"], code, context_id=ctx["id"])
                self.assertEqual((status, res["result"]), (200, want), res)
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
