"""The node pack (issue 14, rootfs/packs/node): plain execs, background processes and files with
node code, and node code contexts (src/guest/scripts/context.js): top-level declarations persist
across runs, the completion value is the result, a thrown error is the run's error, top-level
await works, and a timeout interrupts the run without losing the state.

Node starts slowly under TCG (seconds on a loaded host): every exec here gets a generous timeout,
and only the context tests that mean to time out use a short one, on an interpreter that is
already running.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOW_MS = 240000  # node's start under TCG on a busy host; what is asserted never depends on it


class NodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(all_packs=True)
        try:
            cls.sb = cls.d.create(language_pack="node")
        except Exception:
            cls.d.stop(check=False)
            raise
        cls.sid = cls.sb["id"]
        cls.contexts = f"/sandboxes/{cls.sid}/contexts"

    @classmethod
    def tearDownClass(cls):
        cls.d.delete(cls.sid)
        cls.d.stop()

    def run_code(self, code, **fields):
        fields.setdefault("timeout_ms", SLOW_MS)
        status, res, _ = self.d.exec(self.sid, code, **fields)
        self.assertEqual(status, 200, res)
        return res

    def open_context(self, expect=201, sandbox=None, **body):
        base = f"/sandboxes/{sandbox}/contexts" if sandbox else self.contexts
        status, reply, _ = self.d.request("POST", base, body)
        self.assertEqual(status, expect, reply)
        if expect == 201:
            self.addCleanup(self.d.request, "DELETE", f"{base}/{reply['id']}")
        return reply

    def run_in(self, ctx, code, **fields):
        fields.setdefault("timeout_ms", SLOW_MS)
        status, res, _ = self.d.exec(self.sid, code, context_id=ctx["id"], **fields)
        self.assertEqual(status, 200, res)
        return res

    # --- the pack and plain execs ---

    def test_pack_is_listed_with_node_as_its_interpreter(self):
        status, reply, _ = self.d.request("GET", "/packs")
        self.assertEqual(status, 200)
        packs = {p["name"]: p for p in reply["packs"]}
        self.assertIn("node", packs)
        self.assertEqual(packs["node"]["interpreter"], ["/usr/bin/node"])
        self.assertEqual(self.sb["language_pack"], "node")

    def test_smoke_prints_42(self):
        res = self.run_code("console.log(6*7)")
        self.assertEqual((res["stdout"], res["stderr"], res["exit_code"]), ("42\n", "", 0))

    def test_exit_codes_stderr_and_a_thrown_error(self):
        res = self.run_code("console.error('to stderr'); process.exitCode = 3")
        self.assertEqual((res["stdout"], res["stderr"], res["exit_code"]), ("", "to stderr\n", 3))
        res = self.run_code("process.stdout.write('partial'); process.exit(7)")
        self.assertEqual((res["stdout"], res["exit_code"]), ("partial", 7))
        res = self.run_code("function boom() { throw new TypeError('bad input') }\nboom()")
        self.assertEqual(res["exit_code"], 1)
        self.assertIn("TypeError: bad input", res["stderr"])
        self.assertIn("at boom (", res["stderr"])  # node's own stack trace
        res = self.run_code("let = = 1")
        self.assertEqual(res["exit_code"], 1)
        self.assertIn("SyntaxError", res["stderr"])

    def test_code_reads_standard_library_intl_and_its_stdin(self):
        res = self.run_code(
            "const zlib = require('zlib'), crypto = require('crypto');\n"
            "const back = zlib.gunzipSync(zlib.gzipSync('abc')).toString();\n"
            "console.log(back, crypto.createHash('sha256').update('').digest('hex').slice(0, 8),\n"
            "  new Intl.NumberFormat('de-DE').format(1234.5), process.getuid(), process.cwd());\n"
            "console.log(require('fs').readFileSync(0, 'utf8').toUpperCase())",
            stdin="from stdin")
        self.assertEqual(res["stdout"], "abc e3b0c442 1.234,5 1000 /home/sandbox\nFROM STDIN\n",
                         res)

    def test_uploaded_module_is_required_by_code(self):
        status, reply, _ = self.d.request(
            "PUT", f"/sandboxes/{self.sid}/files?path=lib/answer.js&mkdir=1",
            raw=b"module.exports = () => 6 * 7;\n",
            headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 201, reply)
        self.assertEqual(reply["path"], "/home/sandbox/lib/answer.js")
        res = self.run_code("const answer = require('/home/sandbox/lib/answer.js');\n"
                            "require('fs').writeFileSync('out.txt', String(answer()))")
        self.assertEqual(res["exit_code"], 0, res)
        status, _, raw = self.d.request("GET", f"/sandboxes/{self.sid}/files?path=out.txt")
        self.assertEqual((status, raw), (200, b"42"))

    def test_background_process_runs_node_code(self):
        base = f"/sandboxes/{self.sid}/processes"
        status, proc, _ = self.d.request("POST", base, {
            "code": "console.log('started'); setTimeout(() => { console.error('done'); "
                    "process.exit(4) }, 100)", "tag": "node-bg"})
        self.assertEqual(status, 201, proc)
        pid = proc["pid"]

        def exited():
            status, info, _ = self.d.request("GET", f"{base}/{pid}")
            self.assertEqual(status, 200, info)
            return info if info["state"] == "exited" else None

        info = harness.wait_for(exited, 300, "the node background process to exit")
        self.assertEqual((info["exit_code"], info["stdout"], info["stderr"], info["tag"]),
                         (4, "started\n", "done\n", "node-bg"))

    # --- contexts ---

    def test_context_keeps_state_across_runs_and_reports_the_last_value(self):
        ctx = self.open_context(env={"GREETING": "hello"}, cwd="/tmp")
        self.assertEqual(ctx["language"], "node")  # the pack's language is the default
        first = self.run_in(ctx, "let x = 6\nconst times = (n) => n * 7\nvar seen = []\n"
                                 "function note(v) { seen.push(v); return seen.length }\n"
                                 "console.log('first run', process.cwd())")
        self.assertEqual((first["exit_code"], first["result"], first["error"], first["results"]),
                         (0, None, None, []))
        self.assertEqual(first["stdout"], "first run /tmp\n")
        self.assertFalse(first["context_restarted"])
        second = self.run_in(ctx, "note(x); console.error(process.env.GREETING)\n"
                                  "process.chdir('/home/sandbox'); times(x)")
        self.assertEqual((second["result"], second["stderr"]), ("42", "hello\n"))
        third = self.run_in(ctx, "note('b'); ({ x, seen, cwd: process.cwd() })")
        self.assertEqual(third["result"], "{ x: 6, seen: [ 6, 'b' ], cwd: '/home/sandbox' }")
        self.assertEqual(self.run_in(ctx, "'a' + 'b'")["result"], "'ab'")
        self.assertIsNone(self.run_in(ctx, "undefined")["result"])
        self.assertEqual(self.run_in(ctx, "process.getuid()")["result"], "1000")
        status, got, _ = self.d.request("GET", f"{self.contexts}/{ctx['id']}")
        self.assertEqual((status, got["execs"], got["restarts"], got["busy"]), (200, 6, 0, False))

    def test_context_top_level_await(self):
        ctx = self.open_context(language="node")
        res = self.run_in(ctx, "const v = await new Promise((r) => setTimeout(() => r(6), 10))\n"
                               "v * 7")
        self.assertEqual((res["exit_code"], res["result"], res["error"]), (0, "42", None))
        self.assertEqual(self.run_in(ctx, "v")["result"], "6")

    def test_context_error_is_reported_and_the_context_survives(self):
        ctx = self.open_context()
        self.run_in(ctx, "function boom(n) { if (n === 0) throw new RangeError('n is 0') }\n"
                         "var kept = 'yes'")
        res = self.run_in(ctx, "boom(0)")
        self.assertEqual(res["exit_code"], 1)
        self.assertEqual((res["error"]["name"], res["error"]["value"]), ("RangeError", "n is 0"))
        tb = res["error"]["traceback"]
        self.assertIn("RangeError: n is 0", tb)
        self.assertIn("at boom (<cell-", tb)  # the function an earlier run defined
        self.assertNotIn("context.js", tb)
        self.assertNotIn("node:vm", tb)
        self.assertIn("RangeError: n is 0", res["stderr"])
        self.assertFalse(res["context_restarted"])
        self.assertEqual(self.run_in(ctx, "kept")["result"], "'yes'")
        syntax = self.run_in(ctx, "let = = 1")
        self.assertEqual((syntax["exit_code"], syntax["error"]["name"]), (1, "SyntaxError"))
        thrown = self.run_in(ctx, "throw 5")
        self.assertEqual((thrown["error"]["name"], thrown["error"]["value"]), ("number", "5"))
        # process.exit() ends the run with its code, not the interpreter
        exited = self.run_in(ctx, "process.exit(3)")
        self.assertEqual((exited["exit_code"], exited["error"], exited["context_restarted"]),
                         (3, None, False))
        # so does process.exitCode, for this run only
        coded = self.run_in(ctx, "process.exitCode = 5; 'set'")
        self.assertEqual((coded["exit_code"], coded["result"]), (5, "'set'"))
        # node's own frames under a cell's stay on the traceback
        parsed = self.run_in(ctx, "JSON.parse('{')")
        self.assertIn("at JSON.parse (<anonymous>)", parsed["error"]["traceback"])
        self.assertEqual(self.run_in(ctx, "kept")["result"], "'yes'")

    def test_context_timeout_interrupts_the_run_and_keeps_the_state(self):
        ctx = self.open_context()
        self.run_in(ctx, "var kept = 41")
        for code in ("console.log('spinning'); while (true) {}",
                     "console.log('waiting'); await new Promise((r) => setTimeout(r, 600000))"):
            with self.subTest(code=code):
                res = self.run_in(ctx, code, timeout_ms=3000)
                self.assertTrue(res["timed_out"], res)
                self.assertFalse(res["context_restarted"], res)
                self.assertEqual(res["exit_code"], 1, res)
                self.assertIn("interrupted by `SIGINT`", res["error"]["value"])
                self.assertIn(res["stdout"], ("spinning\n", "waiting\n"))
                self.assertEqual(self.run_in(ctx, "++kept")["result"],
                                 "42" if "spinning" in code else "43")

    def test_context_languages_follow_the_pack(self):
        reply = self.open_context(expect=400, language="python")
        self.assertIn("pack `node` has no python", reply["error"]["message"])
        reply = self.open_context(expect=400, language="ruby")
        self.assertIn('"node"', reply["error"]["message"])
        shell = self.open_context(language="shell")  # /bin/sh is in every pack
        self.assertEqual(shell["language"], "shell")
        res = self.run_in(shell, "echo from sh; node -e 'console.log(6*7)'")
        self.assertEqual((res["stdout"], res["exit_code"]), ("from sh\n42\n", 0))
        py = self.d.create(language_pack="python")
        try:
            reply = self.open_context(expect=400, sandbox=py["id"], language="node")
            self.assertIn("pack `python` has no node", reply["error"]["message"])
        finally:
            self.assertEqual(self.d.delete(py["id"]), 204)


if __name__ == "__main__":
    unittest.main()
