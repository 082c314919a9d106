"""The request/response examples of docs/api.md and README.md, parsed without guessing, and the
matcher that holds a daemon's answer against them. test_doc_examples.py runs them.

docs/api.md: every fenced block is an ```http block. Each example is a request block followed by
its response block, written as HTTP is:

    ```http                                ```http
    POST /sandboxes/sb_…/exec              HTTP/1.1 200 OK
    Origin: https://example.com            Allow: GET, POST
                                           
    {"code": "print(6*7)"}                 {"stdout": "42\\n", …}
    ```                                    ```

A request is `METHOD /path`, then optional `Name: value` header lines, then (after a blank line,
or directly when the body starts with `{` or `[`) the body, sent byte for byte. A response is
`HTTP/1.1 STATUS Reason`, then headers the answer must carry with exactly that value, then the
body pattern (no body: the answer must have none).

README.md: a fenced block with a line starting `$ curl` is a shell transcript of examples. Each
is a `$ curl …` line (options -X, -d, -H, -s; URL localhost:7777/path) followed by its output;
the example's last line ends with the HTTP status in parentheses, e.g. `(201)`.

A response whose headers show `Content-Type: application/octet-stream` (a file's bytes) must have
exactly the body shown, byte for byte.

A response whose headers show `Content-Type: text/plain; version=0.0.4; charset=utf-8` (the
Prometheus metrics) is an excerpt: each non-empty line of its body is the pattern of one line the
answer must have, in this order, with any other lines between them; `…` there matches any text
within the line (a count that varies: `emberd_execs_total{outcome="ok"} …`) (match_lines).

A response whose headers show `Content-Type: application/x-ndjson` is a stream of events (a
streamed exec): each non-empty line of its body is the pattern of one event, in order, and the
answer must have exactly those events (match_events).

Placeholders, the same in both documents:
- `sb_…` in a request path is the id of the sandbox the document's last successful
  `POST /sandboxes` created; `/processes/…` there is the pid its last successful
  `POST /sandboxes/{id}/processes` returned.
- In a response, `…` inside a string matches any text, except right after `sb_`, where it matches
  the 32 lowercase hex digits of a sandbox id. `"…"` is any string. A timestamp as the daemon
  writes them (`"2026-11-24T03:16:27.283Z"`) is any timestamp of that form.
- A bare `…` as an object's value is any number; as an object's member (in place of
  `"key": value`) it allows members the doc does not show; as an array's last element it allows
  further elements. Without it an object must have exactly the members shown (so a new field
  fails until the doc shows it) and an array exactly the elements shown.
"""

import json
import re
import shlex

ELLIPSIS = "\u2026"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class DocError(Exception):
    """A document that does not follow the example format."""


class _Marker:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


ANY_NUMBER = _Marker("…(number)")
MORE_MEMBERS = _Marker("…(members)")
MORE_ITEMS = _Marker("…(items)")
_SENTINELS = {"\x00number": ANY_NUMBER, "\x00members": MORE_MEMBERS, "\x00items": MORE_ITEMS}


class Request:
    def __init__(self, method, path, headers, body, line, source):
        self.method = method
        self.path = path
        self.headers = headers      # list of (name, value)
        self.body = body            # str or None
        self.line = line
        self.source = source        # the text as the document shows it

    def where(self):
        return f"line {self.line}: {self.method} {self.path}"


class Response:
    def __init__(self, status, reason, headers, body, line):
        self.status = status
        self.reason = reason        # None: not checked (README's `(201)` names no reason)
        self.headers = headers
        self.body = body            # parsed pattern, or None for "no body"
        self.line = line
        self.events = None          # ndjson: a pattern per event (then body is None)
        self.raw = None             # application/octet-stream: the exact bytes (then body is
                                    # None)
        self.lines = None           # text/plain: a pattern per line shown (then body is None)


class Example:
    def __init__(self, section, request, response):
        self.section = section      # the heading it sits under ("" before the first)
        self.request = request
        self.response = response


# ---- the shared pieces -----------------------------------------------------------------------

def fences(text):
    """(line number of the opening fence, info string, body lines) for each fenced block, and the
    heading that precedes it."""
    blocks = []
    heading = ""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(`{3,}|~{3,})\s*(\S*)", line)
        if m:
            fence, info, start = m.group(1), m.group(2), i + 1
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith(fence):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise DocError(f"line {start}: fenced block never closed")
            blocks.append((start, info, body, heading))
        elif re.match(r"^#{1,6} ", line):
            heading = line.lstrip("#").strip()
        i += 1
    return blocks


def parse_pattern(text, where):
    """A JSON body pattern (module docstring) into JSON values and the markers."""
    out, stack, last = [], [], ""
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                last = '"'
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
        if ch == ELLIPSIS:
            if not stack:
                raise DocError(f"{where}: a bare … outside any object or array")
            if stack[-1] == "[":
                out.append('"\\u0000items"')
            elif last == ":":
                out.append('"\\u0000number"')
            else:
                out.append('"\\u0000members": 0')
            last = ELLIPSIS
            continue
        out.append(ch)
        if not ch.isspace():
            last = ch
    try:
        value = json.loads("".join(out))
    except ValueError as e:
        raise DocError(f"{where}: the response body is not JSON (with … placeholders): {e}")
    return _markers(value, where)


def _markers(value, where):
    if isinstance(value, str):
        return _SENTINELS.get(value, value)
    if isinstance(value, list):
        items = [_markers(v, where) for v in value]
        if MORE_ITEMS in items[:-1]:
            raise DocError(f"{where}: … in an array must be its last element")
        return items
    if isinstance(value, dict):
        return {_SENTINELS.get(k, k): _markers(v, where) for k, v in value.items()}
    return value


def _string_regex(pattern):
    parts = pattern.split(ELLIPSIS)
    regex = re.escape(parts[0])
    for before, part in zip(parts, parts[1:]):
        regex += "[0-9a-f]{32}" if before.endswith("sb_") else ".*"
        regex += re.escape(part)
    return re.compile(regex, re.DOTALL)


def match(pattern, actual, where="body"):
    """Problems (strings) with actual against pattern; [] when it matches."""
    if pattern is ANY_NUMBER:
        if isinstance(actual, (int, float)) and not isinstance(actual, bool):
            return []
        return [f"{where}: expected a number, got {actual!r}"]
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = []
        for key, value in pattern.items():
            if key is MORE_MEMBERS:
                continue
            if key not in actual:
                problems.append(f"{where}: no member `{key}` (the doc shows it)")
            else:
                problems += match(value, actual[key], f"{where}.{key}")
        if MORE_MEMBERS not in pattern:
            extra = sorted(set(actual) - set(pattern))
            if extra:
                problems.append(f"{where}: members the doc does not show: {extra} (show them, "
                                "or mark the object open with a bare …)")
        return problems
    if isinstance(pattern, list):
        if not isinstance(actual, list):
            return [f"{where}: expected an array, got {actual!r}"]
        items = pattern
        open_ended = bool(items) and items[-1] is MORE_ITEMS
        if open_ended:
            items = items[:-1]
        if len(actual) < len(items) or (not open_ended and len(actual) != len(items)):
            return [f"{where}: expected {len(items)}{' or more' if open_ended else ''} "
                    f"elements, got {len(actual)}: {actual!r}"]
        problems = []
        for i, item in enumerate(items):
            problems += match(item, actual[i], f"{where}[{i}]")
        return problems
    if isinstance(pattern, str) and TIMESTAMP.fullmatch(pattern):
        if isinstance(actual, str) and TIMESTAMP.fullmatch(actual):
            return []
        return [f"{where}: expected a timestamp like {pattern!r}, got {actual!r}"]
    if isinstance(pattern, str) and ELLIPSIS in pattern:
        if isinstance(actual, str) and _string_regex(pattern).fullmatch(actual):
            return []
        return [f"{where}: {actual!r} does not match {pattern!r}"]
    if type(pattern) is type(actual) and pattern == actual:
        return []
    return [f"{where}: expected {pattern!r}, got {actual!r}"]


NDJSON = "application/x-ndjson"
METRICS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def match_lines(response, payload):
    """Problems with a text answer against a Response whose lines the doc shows: each shown line
    matches a line of the answer, in order, other lines allowed between them."""
    try:
        actual = payload.decode("utf-8").split("\n")
    except ValueError as e:
        return [f"the daemon's body is not UTF-8: {e}"]
    i = 0
    for want in response.lines:
        regex = _string_regex(want)
        while i < len(actual) and not regex.fullmatch(actual[i]):
            i += 1
        if i == len(actual):
            return [f"no line matching {want!r} (after the lines matched before it)"]
        i += 1
    return []


def match_events(response, payload):
    """Problems with an ndjson answer against a Response whose events the doc shows."""
    try:
        text = payload.decode("utf-8")
        if text and not text.endswith("\n"):
            return ["the daemon's ndjson body does not end with a newline"]
        actual = [json.loads(line) for line in text.split("\n")[:-1]]
    except ValueError as e:
        return [f"the daemon's body is not ndjson: {e}"]
    if len(actual) != len(response.events):
        return [f"the doc shows {len(response.events)} events, the daemon sent {len(actual)}: "
                f"{actual!r}"]
    problems = []
    for i, (want, got) in enumerate(zip(response.events, actual)):
        problems += match(want, got, f"event {i}")
    return problems


# ---- docs/api.md ----------------------------------------------------------------------------

def _headers_and_body(lines, start_line):
    headers, i = [], 0
    while i < len(lines) and lines[i].strip() and not lines[i].lstrip().startswith(("{", "[")):
        m = re.match(r"^([A-Za-z0-9-]+): (.*)$", lines[i])
        if not m:
            raise DocError(f"line {start_line + i}: expected a `Name: value` header line or the "
                           f"body, got {lines[i]!r}")
        headers.append((m.group(1), m.group(2)))
        i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    body = "\n".join(lines[i:]).rstrip("\n")
    return headers, (body if body.strip() else None)


def parse_http_block(start, lines):
    """A Request or a Response from the lines of an ```http block."""
    if not lines:
        raise DocError(f"line {start}: empty http block")
    first = lines[0]
    m = re.match(r"^HTTP/1\.1 (\d{3}) (\S.*)$", first)
    if m:
        headers, body = _headers_and_body(lines[1:], start + 2)
        where = f"line {start}"
        if dict(headers).get("Content-Type") == NDJSON:
            response = Response(int(m.group(1)), m.group(2), headers, None, start)
            response.events = [parse_pattern(line, where)
                               for line in (body or "").split("\n") if line.strip()]
            return response
        if dict(headers).get("Content-Type") == METRICS_TEXT:
            response = Response(int(m.group(1)), m.group(2), headers, None, start)
            response.lines = [line for line in (body or "").split("\n") if line.strip()]
            return response
        if dict(headers).get("Content-Type") == "application/octet-stream":
            response = Response(int(m.group(1)), m.group(2), headers, None, start)
            response.raw = (body or "").encode()
            return response
        return Response(int(m.group(1)), m.group(2), headers,
                        parse_pattern(body, where) if body is not None else None, start)
    m = re.match(r"^(%s) (/\S*)$" % "|".join(METHODS), first)
    if m:
        headers, body = _headers_and_body(lines[1:], start + 2)
        return Request(m.group(1), m.group(2), headers, body, start + 1, "\n".join(lines))
    raise DocError(f"line {start + 1}: an http block starts with `METHOD /path` or "
                   f"`HTTP/1.1 STATUS Reason`, not {first!r}")


def api_md_examples(text):
    """Every example of docs/api.md, in document order. Any fenced block that is not http, and
    any request without its response (or the reverse), is a DocError: nothing shown in the
    document escapes the test."""
    examples, pending = [], None
    for start, info, lines, heading in fences(text):
        if info != "http":
            raise DocError(f"line {start}: a ```{info or '(no info string)'} block in "
                           "docs/api.md; examples are ```http request/response pairs")
        block = parse_http_block(start, lines)
        if isinstance(block, Request):
            if pending is not None:
                raise DocError(f"{pending.where()}: request without a response block")
            pending = block
            pending_heading = heading
        else:
            if pending is None:
                raise DocError(f"line {start}: response without a request block before it")
            if heading != pending_heading:
                raise DocError(f"line {start}: response under another heading than its request")
            examples.append(Example(heading, pending, block))
            pending = None
    if pending is not None:
        raise DocError(f"{pending.where()}: request without a response block")
    return examples


def route_headings(text):
    """{(METHOD, pattern): status or None} for each ``### `METHOD /pattern` → STATUS`` heading of
    docs/api.md (the status is the route's success, which an example under it must show)."""
    found = {}
    for line in text.split("\n"):
        m = re.match(r"^### `(%s) (/\S*)`(?: → (\d{3}))?" % "|".join(METHODS), line)
        if m:
            found[(m.group(1), m.group(2))] = int(m.group(3)) if m.group(3) else None
    return found


def heading_of(method, pattern):
    return f"`{method} {pattern}`"


def path_matches(pattern, path):
    """Whether a request path (with its `sb_…` placeholder) is an instance of a route pattern."""
    path = path.split("?", 1)[0]
    regex = "".join("/[^/]+" if seg in ("{id}", "{pid}", "{context_id}",
                                                 "{snapshot_id}") else "/" + re.escape(seg)
                    for seg in pattern.strip("/").split("/"))
    return re.fullmatch(regex, path) is not None


# ---- README.md ------------------------------------------------------------------------------

def _parse_curl(command, line):
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise DocError(f"line {line}: {e}")
    if not argv or argv[0] != "curl":
        raise DocError(f"line {line}: not a curl command: {command!r}")
    method, body, headers, url = None, None, [], None
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-X", "--request", "-d", "--data", "-H", "--header"):
            if i + 1 == len(argv):
                raise DocError(f"line {line}: {arg} without its value")
            value = argv[i + 1]
            if arg in ("-X", "--request"):
                method = value
            elif arg in ("-d", "--data"):
                body = value
            else:
                name, _, hvalue = value.partition(":")
                headers.append((name.strip(), hvalue.strip()))
            i += 2
            continue
        if arg in ("-s", "--silent"):
            i += 1
            continue
        if arg.startswith("-"):
            raise DocError(f"line {line}: curl option {arg} is not one the test knows")
        if url is not None:
            raise DocError(f"line {line}: two URLs")
        url = arg
        i += 1
    m = re.match(r"^(?:http://)?localhost:7777(/\S*)$", url or "")
    if not m:
        raise DocError(f"line {line}: the URL must be localhost:7777/PATH, got {url!r}")
    if body is not None:
        # what curl -d sends
        headers.insert(0, ("Content-Type", "application/x-www-form-urlencoded"))
    return Request(method or ("POST" if body is not None else "GET"), m.group(1), headers, body,
                   line, command)


def readme_examples(text):
    """The curl examples of README.md's shell transcripts, in document order."""
    examples = []
    for start, _info, lines, heading in fences(text):
        if not any(re.match(r"^\s*(\$\s*)?curl\s", line) for line in lines):
            continue
        for n, line in enumerate(lines):
            if re.match(r"^\s*(\$\s*)?curl\s", line) and not line.startswith("$ curl "):
                raise DocError(f"line {start + 1 + n}: a curl command in a README block is "
                               "written `$ curl …`, its output after it")
        groups = []
        for n, line in enumerate(lines):
            if line.startswith("$ "):
                groups.append([(start + 1 + n, line[2:])])
            elif line.strip():
                if not groups:
                    raise DocError(f"line {start + 1 + n}: output before any command")
                groups[-1].append((start + 1 + n, line))
        for group in groups:
            last_line, last = group[-1]
            m = re.search(r"\s*\((\d{3})\)\s*$", last)
            if not m:
                raise DocError(f"line {last_line}: an example's last line ends with its status, "
                               "e.g. `(200)`")
            group[-1] = (last_line, last[:m.start()])
            request = _parse_curl(group[0][1].rstrip(), group[0][0])
            output = "\n".join(text for _, text in group[1:]).strip()
            where = f"line {group[0][0]}"
            body = parse_pattern(output, where) if output else None
            examples.append(Example(heading, request,
                                    Response(int(m.group(1)), None, [], body, group[0][0])))
    return examples


# ---- src/api/routes.c -----------------------------------------------------------------------

def routes_from_c(text):
    """(METHOD, pattern) rows of the `routes[]` table."""
    m = re.search(r"static const struct route routes\[\] = \{(.*?)\n\};", text, re.DOTALL)
    if not m:
        raise DocError("src/api/routes.c: no `static const struct route routes[] = {` table")
    rows = re.findall(r'\{\s*"([A-Z]+)",\s*"(/[^"]*)",\s*\w+\s*\}', m.group(1))
    if not rows:
        raise DocError("src/api/routes.c: the routes[] table has no rows the test can read")
    return rows
