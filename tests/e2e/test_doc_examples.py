"""The documents are tested: every request/response example in docs/api.md and README.md is sent
to a real daemon and its answer compared with the one shown (status, headers shown, body; ids,
timestamps and durations are the `…` placeholders of docexamples.py). And every route of
src/api/routes.c has its ``### `METHOD /path` `` heading in docs/api.md with an example under it.

One ASan-built daemon with the default pack serves the whole class (with `--network-modes
none,allowlist` but no uplink, as docs/api.md says); the examples of a document run in its
order, sharing the sandboxes they create.
"""

import http.client
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docexamples  # noqa: E402
import harness  # noqa: E402

API_MD = os.path.join(harness.REPO, "docs", "api.md")
README = os.path.join(harness.REPO, "README.md")
ROUTES_C = os.path.join(harness.REPO, "src", "api", "routes.c")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class RouteCoverageTest(unittest.TestCase):
    """No daemon needed: the table against the document."""

    def test_every_route_has_a_heading_and_an_example_under_it(self):
        text = read(API_MD)
        routes = docexamples.routes_from_c(read(ROUTES_C))
        headings = docexamples.route_headings(text)
        examples = docexamples.api_md_examples(text)
        problems = []
        for method, pattern in routes:
            if (method, pattern) not in headings:
                problems.append(f"route {method} {pattern} (src/api/routes.c) has no heading "
                                f"### `{method} {pattern}` in docs/api.md")
                continue
            heading = docexamples.heading_of(method, pattern)
            under = [e for e in examples if e.section.startswith(heading)
                     and e.request.method == method
                     and docexamples.path_matches(pattern, e.request.path)]
            if not under:
                problems.append(f"### {heading} in docs/api.md has no example request "
                                f"`{method} {pattern}` under it")
            elif headings[(method, pattern)] is not None and \
                    headings[(method, pattern)] not in [e.response.status for e in under]:
                problems.append(f"### {heading} → {headings[(method, pattern)]}: no example "
                                "under it answers with that status")
        for method, pattern in headings:
            if (method, pattern) not in routes:
                problems.append(f"docs/api.md has ### `{method} {pattern}`, which is no route "
                                "of src/api/routes.c")
        if problems:
            self.fail("\n".join(problems))

    def test_the_route_table_parser_sees_every_row(self):
        # The parser must not silently miss rows: count the table's `{ "` openings directly.
        text = read(ROUTES_C)
        table = text[text.index("static const struct route routes[] = {"):]
        table = table[:table.index("\n};")]
        self.assertEqual(len(docexamples.routes_from_c(text)), table.count('{ "'))


class DocExamplesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # allowlist enabled without --egress-uplink: docs/api.md shows both refusals ("Network")
        cls.d = harness.Daemon("--network-modes", "none,allowlist", all_packs=True)
        cls.created = []
        cls.pid = None  # the last background process an example started
        cls.context = None  # the last code context an example created
        cls.fork = None  # the first sandbox the last fork made
        cls.snapshot = None  # the last snapshot an example took

    @classmethod
    def tearDownClass(cls):
        try:
            for sandbox_id in cls.created:
                cls.d.delete(sandbox_id)  # a failed run's leftovers; 404 for the ones deleted
        finally:
            cls.d.stop()

    def send(self, request, sandbox_id, pid=None):
        path = request.path
        fork = "sb_fork" + docexamples.ELLIPSIS
        if fork in path:
            # `sb_fork…`: the first sandbox of the last successful fork (docs/api.md)
            self.assertIsNotNone(self.fork, f"{request.where()}: `sb_fork…` before any fork")
            path = path.replace(fork, self.fork)
        if "sb_" + docexamples.ELLIPSIS in path:
            self.assertIsNotNone(sandbox_id, f"{request.where()}: `sb_…` before any create")
            path = path.replace("sb_" + docexamples.ELLIPSIS, sandbox_id)
        if "/processes/" + docexamples.ELLIPSIS in path:
            self.assertIsNotNone(pid, f"{request.where()}: `/processes/…` before any start")
            path = path.replace("/processes/" + docexamples.ELLIPSIS, f"/processes/{pid}")
        body = request.body
        ctx = "ctx_" + docexamples.ELLIPSIS
        if ctx in path or (body is not None and ctx in body):
            # `ctx_…` in a request's path or body: the context the last create made
            self.assertIsNotNone(self.context, f"{request.where()}: `ctx_…` before any create")
            path = path.replace(ctx, self.context)
            if body is not None:
                body = body.replace(ctx, self.context)
        snap = "snap_" + docexamples.ELLIPSIS
        if snap in path or (body is not None and snap in body):
            # `snap_…` in a request's path or body: the snapshot the last example took
            self.assertIsNotNone(self.snapshot, f"{request.where()}: `snap_…` before any "
                                                "snapshot")
            path = path.replace(snap, self.snapshot)
            if body is not None:
                body = body.replace(snap, self.snapshot)
        body = body.encode() if body is not None else None
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=300)
        try:
            names = {name.lower() for name, _ in request.headers}
            conn.putrequest(request.method, path, skip_host="host" in names,
                            skip_accept_encoding=True)
            for name, value in request.headers:
                conn.putheader(name, value)
            if body is not None:
                if "content-type" not in names:
                    conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(body)))
            elif request.method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", "0")
            conn.endheaders(body)
            resp = conn.getresponse()
            payload = resp.read()
            # The doc's examples are held against docs/openapi.yaml too, like every request
            # the harness sends.
            self.d.check_contract(request.method, path, body, resp.status,
                                  dict(resp.getheaders()), payload)
            return resp.status, resp.reason, resp.getheaders(), payload
        finally:
            conn.close()

    def check(self, example, sandbox_id):
        """Sends one example; returns the id a create made (or None)."""
        req, want = example.request, example.response
        status, reason, headers, payload = self.send(req, sandbox_id, self.pid)
        shown = f"\n--- the doc, {req.where()} ---\n{req.source}\n--- the daemon said ---\n" \
                f"{status} {reason}\n{payload.decode(errors='replace')}"
        problems = []
        if status != want.status or (want.reason is not None and reason != want.reason):
            problems.append(f"status: the doc shows {want.status} {want.reason or ''}, "
                            f"the daemon answered {status} {reason}")
        got_headers = {name.lower(): value for name, value in headers}
        for name, value in want.headers:
            if got_headers.get(name.lower()) != value:
                problems.append(f"header {name}: the doc shows {value!r}, the daemon sent "
                                f"{got_headers.get(name.lower())!r}")
        if want.events is not None:
            problems += docexamples.match_events(want, payload)
            body = None
        elif want.lines is not None:
            problems += docexamples.match_lines(want, payload)
            body = None
        elif want.raw is not None:
            if payload != want.raw:
                problems.append(f"the doc shows the bytes {want.raw!r}, the daemon sent "
                                f"{payload[:200]!r}")
            body = None
        elif want.body is None:
            if payload:
                problems.append("the doc shows no body, the daemon sent one")
            body = None
        else:
            try:
                body = json.loads(payload)
            except ValueError:
                body = None
                problems.append("the daemon's body is not JSON")
            else:
                problems += docexamples.match(want.body, body)
                if got_headers.get("content-type") != "application/json":
                    problems.append("a JSON body without Content-Type: application/json")
        if problems:
            self.fail("\n".join(problems) + shown)
        if req.method == "POST" and req.path.endswith("/processes") and status == 201:
            type(self).pid = body["pid"]
        if req.method == "POST" and req.path.endswith("/contexts") and status == 201:
            type(self).context = body["id"]
        if req.method == "POST" and req.path.endswith("/fork") and status == 201:
            self.created.extend(sb["id"] for sb in body["sandboxes"])
            type(self).fork = body["sandboxes"][0]["id"]
        if req.method == "POST" and req.path.endswith("/snapshots") and status == 201:
            type(self).snapshot = body["id"]
        if req.method == "POST" and req.path == "/sandboxes" and status == 201:
            self.created.append(body["id"])
            return body["id"]
        return None

    def run_document(self, examples):
        self.assertTrue(examples, "no examples found")
        sandbox_id = None
        for example in examples:
            with self.subTest(example.request.where()):
                made = self.check(example, sandbox_id)
            if made is not None:
                sandbox_id = made

    # Named so that api.md runs first: its GET /healthz counts what its own examples did.
    def test_1_api_md_examples_hold(self):
        self.run_document(docexamples.api_md_examples(read(API_MD)))

    def test_2_readme_examples_hold(self):
        self.run_document(docexamples.readme_examples(read(README)))

    def test_3_every_route_answers_other_methods_with_405_and_allow(self):
        # docs/api.md says so for every route; held against the table itself, so a new route
        # is covered without anyone writing its example.
        routes = docexamples.routes_from_c(read(ROUTES_C))
        allowed = {}
        for method, pattern in routes:
            allowed.setdefault(pattern, []).append(method)
        zeros = "sb_" + "0" * 32
        for pattern, methods in allowed.items():
            path = pattern.replace("{id}", zeros).replace("{pid}", "1")
            other = next(m for m in ("PATCH", "PUT", "DELETE", "POST", "GET") if m not in methods)
            with self.subTest(f"{other} {path}"):
                req = docexamples.Request(other, path, [], None, 0, f"{other} {path}")
                status, _, headers, payload = self.send(req, None)
                self.assertEqual(status, 405, payload)
                self.assertEqual(json.loads(payload)["error"]["code"], "method_not_allowed")
                self.assertEqual(dict((k.lower(), v) for k, v in headers).get("allow"),
                                 ", ".join(methods))


class MatcherTest(unittest.TestCase):
    """The placeholders mean what docexamples.py says, and a wrong document fails."""

    def match(self, pattern, actual):
        return docexamples.match(docexamples.parse_pattern(pattern, "test"), actual)

    def test_placeholders(self):
        sid = "sb_" + "0123456789abcdef" * 2
        self.assertEqual(self.match('{"id": "sb_…", "n": …, "s": "a…z"}',
                                    {"id": sid, "n": 3, "s": "a-b-z"}), [])
        self.assertTrue(self.match('{"id": "sb_…"}', {"id": "sb_xyz"}))
        self.assertTrue(self.match('{"n": …}', {"n": "3"}))
        self.assertTrue(self.match('{"n": …}', {"n": True}))
        self.assertTrue(self.match('{"s": "…"}', {"s": None}))
        self.assertEqual(self.match('{"t": "2026-11-24T03:16:27.283Z"}',
                                    {"t": "2027-01-01T00:00:00.000Z"}), [])
        self.assertTrue(self.match('{"t": "2026-11-24T03:16:27.283Z"}', {"t": "yesterday"}))
        self.assertTrue(self.match('{"t": "2026-11-24T03:16:27.283Z"}', {"t": None}))
        self.assertEqual(self.match('{"a": 1, …}', {"a": 1, "b": 2}), [])
        self.assertEqual(self.match('[1, …]', [1, 2, 3]), [])
        self.assertTrue(self.match('[1, …]', []))

    def test_closed_objects_and_arrays_are_exact(self):
        self.assertTrue(self.match('{"a": 1}', {"a": 1, "b": 2}))
        self.assertTrue(self.match('{"a": 1, "b": 2}', {"a": 1}))
        self.assertTrue(self.match('[1]', [1, 2]))
        self.assertTrue(self.match('{"a": 1}', {"a": 1.0}))
        self.assertTrue(self.match('{"a": false}', {"a": 0}))

    def test_a_metrics_excerpt_matches_lines_in_order(self):
        block = ["HTTP/1.1 200 OK", f"Content-Type: {docexamples.METRICS_TEXT}", "",
                 '# TYPE a counter', 'a{x="1"} …', 'b 0']
        want = docexamples.parse_http_block(1, block)
        self.assertEqual(want.lines, ['# TYPE a counter', 'a{x="1"} …', 'b 0'])
        text = b'# HELP a h\n# TYPE a counter\na{x="1"} 7\nc 1\nb 0\n'
        self.assertEqual(docexamples.match_lines(want, text), [])
        # out of order, a value that differs, a line missing
        self.assertTrue(docexamples.match_lines(want, b'b 0\n# TYPE a counter\na{x="1"} 7\n'))
        self.assertTrue(docexamples.match_lines(want, b'# TYPE a counter\na{x="1"} 7\nb 1\n'))
        self.assertTrue(docexamples.match_lines(want, b'# TYPE a counter\nb 0\n'))

    def test_an_unpaired_or_foreign_block_is_refused(self):
        with self.assertRaises(docexamples.DocError):
            docexamples.api_md_examples("```http\nGET /healthz\n```\n")
        with self.assertRaises(docexamples.DocError):
            docexamples.api_md_examples("```json\n{}\n```\n")
        with self.assertRaises(docexamples.DocError):
            docexamples.readme_examples("```sh\n$ curl localhost:7777/healthz\n{}\n```\n")
        with self.assertRaises(docexamples.DocError):
            docexamples.readme_examples("```sh\ncurl localhost:7777/healthz\n```\n")


if __name__ == "__main__":
    unittest.main()
