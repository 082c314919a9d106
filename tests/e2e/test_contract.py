"""docs/openapi.yaml against the daemon's source and a running daemon: every route in
src/api/routes.c has an operation and every operation a route; every response has a schema;
the limits the spec states are the flag defaults `emberd --help` prints and the constants the
decoder enforces; and the checker every e2e request goes through (contract.py) refuses what it
should."""

import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
import harness  # noqa: E402

REPO = harness.REPO
ROUTES_C = os.path.join(REPO, "src", "api", "routes.c")
# Responses every operation lists: answered before routing (guard, body cap), for a method the
# path lacks, and for a host failure.
SHARED_STATUSES = ("401", "403", "405", "413", "421", "500")


def source(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def daemon_routes():
    """{(METHOD, pattern)} from the routes[] table of src/api/routes.c."""
    text = source("src", "api", "routes.c")
    m = re.search(r"static const struct route routes\[\] = \{(.*?)\n\};", text, re.S)
    if m is None:
        raise AssertionError("no `static const struct route routes[]` table in routes.c")
    rows = re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*\w+\s*\}', m.group(1))
    if not rows:
        raise AssertionError("the routes[] table of routes.c has no rows this test can read")
    return {(method, pattern) for method, pattern in rows}


def spec_operations(doc):
    return {(m.upper(), path) for path, item in doc["paths"].items()
            for m in contract.METHODS if m in item}


def c_value(expr):
    """An integer C constant expression of digits, suffixes, + - * << ( )."""
    expr = re.sub(r"(\d+)(?:ull|ul|u|ll|l)\b", r"\1", expr.strip(), flags=re.I)
    if not re.fullmatch(r"[\d\s+\-*()<>]+", expr):
        raise ValueError(f"not a constant expression: {expr}")
    return int(eval(expr))  # digits and operators only (checked above)


def c_define(name, *path):
    m = re.search(rf"#define {name}\s+(.+?)(?:\s*/\*.*)?$", source(*path), re.M)
    if m is None:
        raise AssertionError(f"no #define {name} in {'/'.join(path)}")
    return c_value(m.group(1))


def flag_range(flag):
    """(min, max) of an emberd flag, from its row in cmd/emberd/options.c."""
    text = source("cmd", "emberd", "options.c")
    m = re.search(rf'(?:UINT|NUMBER)\("{re.escape(flag[2:])}",\s*(?:\w+,\s*)?[\w.]+,\s*'
                  r'([^,]+),\s*([^,]+),', text)
    if m is None:
        raise AssertionError(f"no UINT/NUMBER row for {flag} in cmd/emberd/options.c")
    return c_value(m.group(1)), c_value(m.group(2))


def limit_nodes(node, at="#"):
    """(where, schema node) for every node with x-limit-flag."""
    if isinstance(node, dict):
        if "x-limit-flag" in node:
            yield at, node
        for k, v in node.items():
            yield from limit_nodes(v, f"{at}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from limit_nodes(v, f"{at}/{i}")


class SpecMatchesSourceTest(unittest.TestCase):
    """No daemon: the spec against the source tree and `emberd --help`."""

    @classmethod
    def setUpClass(cls):
        cls.doc = contract.load_spec()
        cls.contract = contract.Contract(())

    def test_every_route_has_an_operation_and_back(self):
        routes, ops = daemon_routes(), spec_operations(self.doc)
        self.assertEqual(sorted(routes - ops), [],
                         "routes in src/api/routes.c without an operation in docs/openapi.yaml")
        self.assertEqual(sorted(ops - routes), [],
                         "operations in docs/openapi.yaml the daemon does not route")

    def test_every_response_has_a_schema(self):
        missing = []
        for method, path in sorted(spec_operations(self.doc)):
            op = self.doc["paths"][path][method.lower()]
            self.assertIn("operationId", op, f"{method} {path}")
            for status, r in op["responses"].items():
                r = self.contract.deref(r)
                content = r.get("content", {})
                # an event stream alone (a process's output) has its events' schema instead,
                # a file's bytes (GET /files) the octet-stream one, the metrics (GET /metrics)
                # the text/plain one
                schema = (content.get("application/json") or
                          content.get("application/x-ndjson") or
                          content.get("application/octet-stream") or
                          content.get("text/plain") or {}).get("schema")
                # 202 is MCP's "taken" for a notification, bodyless as the transport says
                if status not in ("202", "204") and schema is None:
                    missing.append(f"{method} {path} {status}")
                if status == "204" and r.get("content"):
                    missing.append(f"{method} {path} 204 has a body")
            for status in SHARED_STATUSES:
                if status not in op["responses"]:
                    missing.append(f"{method} {path} does not list {status}")
            rb = op.get("requestBody")
            rb_content = self.contract.deref(rb)["content"] if rb is not None else {}
            if rb is not None and "schema" not in (rb_content.get("application/json") or
                                                   rb_content.get("application/octet-stream") or
                                                   {}):
                missing.append(f"{method} {path} request body has no schema")
        self.assertEqual(missing, [], "operations whose responses lack a schema")

    def test_limits_are_the_flag_defaults_help_prints(self):
        out = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--help"],
                             capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        nodes = list(limit_nodes(self.doc))
        self.assertGreaterEqual(len(nodes), 7, "fewer x-limit-flag limits than the daemon has")
        for where, node in nodes:
            flag = node["x-limit-flag"]
            m = re.search(rf"^\s+{re.escape(flag)} N\s(.*?)(?=^\s+--|^\S)", text, re.M | re.S)
            self.assertIsNotNone(m, f"{flag} ({where}) is not in emberd --help")
            default = re.search(r"default (\d+)", m.group(1))
            self.assertIsNotNone(default, f"emberd --help gives no default for {flag}")
            stated = next(node[k] for k in ("maximum", "x-max-bytes", "default") if k in node)
            self.assertEqual(stated, int(default.group(1)),
                             f"{where}: the spec states {stated} for {flag}, whose default is "
                             f"{default.group(1)}")
            _, hard_max = flag_range(flag)
            self.assertIn(f"up to {hard_max}", node.get("description", ""),
                          f"{where}: the description does not give {flag}'s hard maximum "
                          f"{hard_max}")

    def test_fixed_limits_are_the_decoders(self):
        s = self.doc["components"]["schemas"]
        ex, cr = s["ExecRequest"]["properties"], s["CreateRequest"]["properties"]
        self.assertEqual(ex["code"]["x-max-bytes"],
                         c_define("PROTO_CODE_MAX", "src", "proto", "messages.h"))
        self.assertEqual(ex["stdin"]["x-max-bytes"],
                         c_define("API_STDIN_MAX", "src", "api", "requests.h"))
        self.assertEqual(ex["env"]["maxProperties"],
                         c_define("PROTO_ENV_MAX", "src", "proto", "messages.h"))
        self.assertEqual(ex["env"]["x-max-entry-bytes"],
                         c_define("PROTO_STRING_MAX", "src", "proto", "messages.h"))
        self.assertEqual(ex["env"]["propertyNames"]["maxLength"],
                         c_define("API_ENV_NAME_MAX", "src", "api", "requests.h"))
        self.assertEqual(cr["language_pack"]["x-max-bytes"],
                         c_define("CATALOG_NAME_MAX", "src", "sandbox", "catalog.h"))
        # The network policy's bounds (src/net/policy.h), on create and on PATCH .../network.
        rules_max = c_define("NET_RULES_MAX", "src", "net", "policy.h")
        self.assertEqual(s["NetworkRules"]["maxItems"], rules_max)
        self.assertEqual(s["NetworkPatchRequest"]["properties"]["allow"]["maxItems"], rules_max)
        self.assertEqual(s["NetworkRule"]["maxLength"],
                         c_define("NET_RULE_TEXT_MAX", "src", "net", "policy.h"))
        # The decoder's hard maxima (requests.c) are what the flags may raise the limits to.
        req = source("src", "api", "requests.c")
        for field in ("vcpus", "memory_mib", "timeout_s", "overlay_mib"):
            m = re.search(rf'get_optional_uint\(root, "{field}", ([^,]+), ([^,]+),', req)
            self.assertIsNotNone(m, f"no decoder bound for {field} in requests.c")
            self.assertEqual(cr[field]["minimum"], c_value(m.group(1)), field)
            self.assertIn(f"up to {c_value(m.group(2))}", cr[field]["description"], field)
        body = self.doc["x-max-body-bytes"]
        self.assertEqual(body["x-limit-flag"], "--max-body-bytes")


J = {"Content-Type": "application/json"}
SID = "sb_" + "0" * 32


def err(code, message="m"):
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class CheckerRefusesTest(unittest.TestCase):
    """The checker against exchanges made up to break the spec one way each: every one must
    raise (a checker that passes everything would make the whole suite's validation moot)."""

    @classmethod
    def setUpClass(cls):
        cls.c = contract.Contract(())

    def refused(self, *exchange, c=None):
        with self.assertRaises(AssertionError) as cm:
            (c or self.c).check(*exchange)
        return str(cm.exception)

    def test_status_not_listed(self):
        msg = self.refused("GET", "/healthz", None, 404, J, err("not_found"))
        self.assertIn("status 404 is not listed for GET /healthz", msg)

    def test_body_not_matching(self):
        msg = self.refused("GET", f"/sandboxes/{SID}/console", None, 200, J,
                           b'{"console": "x", "truncated": false, "total_bytes": 1}')
        self.assertIn("'console_encoding' is a required property", msg)
        self.refused("GET", "/packs", None, 200, J, b'{"packs": [], "extra": 1}')
        # the error code must be the status's
        self.refused("DELETE", f"/sandboxes/{SID}", None, 404, J, err("conflict"))

    def test_content_type_and_empty_bodies(self):
        self.refused("GET", "/packs", None, 200, {"Content-Type": "text/plain"},
                     b'{"packs": []}')
        self.refused("DELETE", f"/sandboxes/{SID}", None, 204, {}, b"{}")

    def test_405_needs_allow_naming_the_paths_methods(self):
        self.refused("PUT", "/sandboxes", None, 405, J, err("method_not_allowed"))
        msg = self.refused("PUT", "/sandboxes", None, 405, {**J, "Allow": "GET"},
                           err("method_not_allowed"))
        self.assertIn("the spec's methods for the path are GET, POST", msg)
        self.refused("PUT", "/sandboxes", None, 200, J, b"{}")
        self.c.check("PUT", "/sandboxes", None, 405, {**J, "Allow": "GET, POST"},
                     err("method_not_allowed"))

    def test_401_needs_www_authenticate(self):
        self.refused("GET", "/healthz", None, 401, J, err("unauthorized"))
        self.c.check("GET", "/healthz", None, 401,
                     {**J, "WWW-Authenticate": 'Bearer realm="emberd"'}, err("unauthorized"))

    def test_spec_valid_request_refused(self):
        msg = self.refused("POST", "/sandboxes", b'{"vcpus": 4, "memory_mib": 2048}', 400, J,
                           err("invalid_argument", "field `vcpus` must be between 1 and 2"))
        self.assertIn("the spec accepts this request body, yet the daemon refused it", msg)
        code = json.dumps({"code": "é" * 131072}).encode()  # 262144 bytes: at the limit
        self.refused("POST", f"/sandboxes/{SID}/exec", code, 413, J, err("too_large"))
        # the refusals the operation lists are excused
        self.c.check("POST", "/sandboxes", b'{"language_pack": "cobol"}', 400, J,
                     err("invalid_argument", "unknown language_pack `cobol`"))
        self.c.check("POST", "/sandboxes", b'{"network": {"mode": "allowlist"}}', 400, J,
                     err("invalid_argument", "networked sandboxes need --egress-uplink IFACE"))
        self.c.check("POST", "/sandboxes", b'{"network": {"mode": "open"}}', 400, J,
                     err("invalid_argument", "field `network.mode`: mode `open` is not enabled"))
        self.refused("POST", "/sandboxes", b'{"network": {"mode": "open"}}', 400, J,
                     err("invalid_argument", "no"))

    def test_spec_invalid_request_accepted(self):
        sandbox = json.dumps({
            "id": SID, "language_pack": "python", "state": "ready",
            "created_at": "2026-11-24T03:16:27.283Z", "expires_at": None, "vcpus": 5,
            "memory_mib": 256, "timeout_s": 600, "overlay_mib": 128, "cpu_weight": 100,
            "age_ms": 1,
            "boot_ms": 0, "boot_mode": "pool", "execs_run": 0, "execs_running": 0,
            "vmm_pid": None, "idle_timeout_s": None,
            "last_activity_at": "2026-11-24T03:16:27.283Z", "labels": {},
            "network": {"mode": "none"}, "mounts": []}).encode()
        self.c.check("POST", "/sandboxes", b"", 201, J, sandbox)
        many = json.dumps({"network": {"mode": "open", "deny": ["a.example"] * 257}}).encode()
        for body in (b'{"vcpus": 5}', b'{"vcpus": 1.0}', b'{"vcpus": 1, "vcpus": 2}',
                     b'{"language_pack": "' + b"p" * 33 + b'"}', b'{"color": "red"}',
                     b'{"language_pack": "a\\u0000"}', b"[]",
                     b'{"network": {"mode": "closed"}}', b'{"network": {"allow": ["a.b"]}}',
                     b'{"network": {"mode": "allowlist", "allow": ["2001:db8::1"]}}',
                     b'{"network": {"mode": "open", "ports": [80]}}', many):
            msg = self.refused("POST", "/sandboxes", body, 201, J, sandbox)
            self.assertIn("the spec refuses this request body", msg)
        big = json.dumps({"code": "é" * 131073}).encode()  # 262146 bytes
        self.refused("POST", f"/sandboxes/{SID}/exec", big, 200, J, b"{}")
        env = json.dumps({"code": "1", "env": {"A": "x" * 4094}}).encode()  # A=… 4096 bytes
        self.refused("POST", f"/sandboxes/{SID}/exec", env, 400, J, err("invalid_argument"))
        env = json.dumps({"code": "1", "env": {"A": "x" * 4095}}).encode()
        self.c.check("POST", f"/sandboxes/{SID}/exec", env, 400, J, err("invalid_argument"))

    def test_sandbox_network_has_two_shapes(self):
        base = {"id": SID, "language_pack": "python", "state": "ready",
                "created_at": "2026-11-24T03:16:27.283Z", "expires_at": None, "vcpus": 1,
                "memory_mib": 256, "timeout_s": 600, "overlay_mib": 128, "cpu_weight": 100,
                "age_ms": 1, "boot_ms": 0, "boot_mode": "clone", "execs_run": 0,
                "execs_running": 0, "vmm_pid": None, "idle_timeout_s": None,
                "last_activity_at": "2026-11-24T03:16:27.283Z", "labels": {}, "mounts": []}
        networked = {"mode": "allowlist", "allow": ["pypi.org"], "deny": [],
                     "address": "10.231.0.2", "gateway": "10.231.0.1", "rx_bytes": 0,
                     "tx_bytes": 0, "dropped": 0}
        path = f"/sandboxes/{SID}"
        self.c.check("GET", path, None, 200, J, json.dumps({**base, "network": networked}).encode())
        patch = json.dumps({"allow": ["pypi.org"]}).encode()
        self.c.check("PATCH", path + "/network", patch, 200, J,
                     json.dumps({**base, "network": networked}).encode())
        self.c.check("PATCH", path + "/network", patch, 409, J, err("conflict"))
        for network in ({"mode": "none", "allow": []}, {"mode": "open"},
                        {**networked, "mode": "none"}, {**networked, "extra": 1}, None):
            self.refused("GET", path, None, 200, J, json.dumps({**base, "network": network}).encode())
        self.refused("GET", path, None, 200, J, json.dumps(base).encode())
        msg = self.refused("PATCH", path + "/network", b'{"deny": []}', 200, J,
                           json.dumps({**base, "network": networked}).encode())
        self.assertIn("the spec refuses this request body", msg)

    def test_limit_flags_move_the_limits(self):
        eight = contract.Contract(("--max-vcpus", "8", "--max-body-bytes=2048"))
        eight.check("POST", "/sandboxes", b'{"vcpus": 9}', 400, J, err("invalid_argument"))
        self.refused("POST", "/sandboxes", b'{"vcpus": 8}', 400, J, err("invalid_argument"),
                     c=eight)
        msg = self.refused("GET", "/healthz", b"x" * 2049, 200, J, b"{}", c=eight)
        self.assertIn("over x-max-body-bytes 2048: expected 413", msg)

    def test_unknown_path_gets_an_error_shape(self):
        self.c.check("GET", "/nope", None, 404, J, err("not_found"))
        self.refused("GET", "/nope", None, 404, J, b'{"error": "no"}')
        self.refused("GET", "/nope", None, 200, J, b"{}")

    def test_bad_id_must_be_404(self):
        self.c.check("GET", "/sandboxes/sb_1", None, 404, J, err("not_found"))
        self.c.check("PUT", "/sandboxes/sb_1", None, 404, J, err("not_found"))
        self.refused("POST", "/sandboxes/sb_1/exec", b'{"code": "1"}', 409, J, err("conflict"))


class LiveDaemonTest(unittest.TestCase):
    """A daemon that boots no VM (no request here creates one): each path with each method it
    lacks, bad ids, unknown paths and the body cap, all through harness.request and so through
    the checker; and a spec made wrong on purpose fails on the daemon's real answers."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--no-snapshots", "--max-body-bytes", "4096")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_every_path_answers_405_for_the_methods_it_lacks(self):
        doc = contract.load_spec()
        for template, item in doc["paths"].items():
            path = template.replace("{id}", SID)
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                if method.lower() in item:
                    continue
                status, body, _ = self.d.request(method, path)
                self.assertEqual(status, 405, (method, path, body))

    def test_reads_validate(self):
        for path in ("/healthz", "/packs", "/sandboxes"):
            status, _, _ = self.d.request("GET", path)
            self.assertEqual(status, 200, path)
        for path in (f"/sandboxes/{SID}", f"/sandboxes/{SID}/console",
                     f"/sandboxes/{SID}/processes", "/sandboxes/sb_bad", "/sandboxes/sb_bad/x",
                     "/nope"):
            status, _, _ = self.d.request("GET", path)
            self.assertEqual(status, 404, path)
        self.assertEqual(self.d.delete(SID), 404)
        status, _, _ = self.d.exec(SID, "print(1)")
        self.assertEqual(status, 404)

    def test_body_cap_and_field_limits(self):
        status, _, _ = self.d.request("POST", "/sandboxes", {"language_pack": "p" * 5000})
        self.assertEqual(status, 413)
        for fields in ({"vcpus": 5}, {"memory_mib": 4096}, {"timeout_s": 86401},
                       {"overlay_mib": 4096}, {"vcpus": 1.0}, {"language_pack": "p" * 33}):
            status, body, _ = self.d.request("POST", "/sandboxes", fields)
            self.assertEqual(status, 400, (fields, body))
        status, body, _ = self.d.exec(SID, "1", timeout_ms=600001)
        # the body is fine for the decoder; the sandbox is checked before the daemon's limit
        self.assertEqual(status, 404, body)

    def test_a_booting_sandbox_is_listed_with_nulls(self):
        created = []
        worker = threading.Thread(target=lambda: created.append(self.d.create()))
        worker.start()
        booting = []
        try:
            while worker.is_alive():
                _, body, _ = self.d.request("GET", "/sandboxes")  # checked against the spec
                booting += [s for s in body["sandboxes"] if s["state"] == "booting"]
                time.sleep(0.01)
        finally:
            worker.join()
        self.assertEqual(len(created), 1, "the create failed (see above)")
        self.assertEqual(self.d.delete(created[0]["id"]), 204)
        self.assertTrue(booting, "the create returned before a listing saw it boot")
        for s in booting:
            self.assertEqual((s["expires_at"], s["vmm_pid"], s["boot_mode"]),
                             (None, None, "cold"), s)

    def test_a_wrong_spec_fails_on_real_answers(self):
        wrong = copy.deepcopy(contract.load_spec())
        health = wrong["components"]["schemas"]["Health"]
        health["required"].append("load_average")
        health["properties"]["load_average"] = {"type": "number"}
        del wrong["paths"]["/sandboxes/{id}"]["delete"]["responses"]["404"]
        c = contract.Contract(self.d.args[1:], spec=wrong)
        for method, path, status in (("GET", "/healthz", 200),
                                     ("DELETE", f"/sandboxes/{SID}", 404)):
            exchange = self.raw(method, path)
            self.assertEqual(exchange[3], status)
            with self.assertRaises(AssertionError):
                c.check(*exchange)
            contract.Contract(self.d.args[1:]).check(*exchange)  # the real spec holds

    def raw(self, method, path):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=60)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return method, path, None, resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()
