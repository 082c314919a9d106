"""docs/openapi.yaml as a checker: every HTTP exchange the end-to-end suite has with emberd is
held against the spec (harness.Daemon.request calls check_exchange).

For a response: the path is matched against the spec's path templates, the status must be one
the operation lists, the Content-Type must be application/json where the spec gives a body (and
the body empty where it gives none), the body must match the schema for that status, and the
headers the response declares as required (Allow, WWW-Authenticate) must be there and match.
A method the path does not serve must get the path's 405 with Allow naming exactly the spec's
methods for the path. A path the spec does not have gets only its Error shape checked.

For a request (the contract of item 13 of issue 19): a body the spec accepts must not be
refused with 400/413, except for the refusals the operation lists under `x-also-rejects` (the
error message names the field); a body the spec refuses must not succeed; a body over
`x-max-body-bytes` must get 413.

Limits follow the daemon's flags: a schema with `x-limit-flag: --max-vcpus` states the flag's
default as its `maximum` (or `x-max-bytes`); the checker of a daemon started with
`--max-vcpus 8` uses 8. Custom keywords the checker enforces: `x-max-bytes` (a string's UTF-8
length), `x-max-entry-bytes` (each NAME=value of an object of strings).

Uses Debian's python3-jsonschema (4.10, Draft 2020-12, which OpenAPI 3.1 schemas are) and
python3-yaml; run under /usr/bin/python3.
"""

import copy
import json
import os
import re

import jsonschema
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(REPO, "docs", "openapi.yaml")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Answered before a request is routed (guard.c on TCP, the body cap in server.c), so possible
# whatever the path or method.
PRE_ROUTE_STATUSES = (401, 403, 413, 421)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class ContractError(AssertionError):
    """An exchange the spec does not allow."""


def _x_max_bytes(validator, limit, instance, schema):
    if isinstance(instance, str):
        n = len(instance.encode("utf-8", "surrogatepass"))
        if n > limit:
            yield ValidationError(f"{n} UTF-8 bytes is over x-max-bytes {limit}")


def _x_max_entry_bytes(validator, limit, instance, schema):
    if isinstance(instance, dict):
        for name, value in instance.items():
            if not isinstance(value, str):
                continue
            n = len(f"{name}={value}".encode("utf-8", "surrogatepass"))
            if n > limit:
                yield ValidationError(f"entry {name}=… is {n} UTF-8 bytes, over "
                                      f"x-max-entry-bytes {limit}")


def _is_integer(checker, instance):
    # jansson (and so the daemon) takes 1.0 for a real, not an integer: so does the contract.
    return isinstance(instance, int) and not isinstance(instance, bool)


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _date_time(instance):
    return not isinstance(instance, str) or bool(_RFC3339.match(instance))


Validator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={"x-max-bytes": _x_max_bytes, "x-max-entry-bytes": _x_max_entry_bytes},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def flag_values(args):
    """{"--flag": "value"} from a command line (the last occurrence wins, as in getopt_long)."""
    out = {}
    args = list(args)
    for i, a in enumerate(args):
        if not a.startswith("--"):
            continue
        if "=" in a:
            name, _, value = a.partition("=")
            out[name] = value
        elif i + 1 < len(args):
            out[a] = args[i + 1]
    return out


def _apply_limit_flags(node, flags):
    """Rewrites, in place, every limit named by x-limit-flag to the flag's value."""
    if isinstance(node, dict):
        flag = node.get("x-limit-flag")
        if flag is not None and flag in flags:
            value = int(flags[flag])
            for key in ("maximum", "x-max-bytes", "default"):
                if key in node:
                    node[key] = value
                    break
        for v in node.values():
            _apply_limit_flags(v, flags)
    elif isinstance(node, list):
        for v in node:
            _apply_limit_flags(v, flags)


def _strict_json(data):
    """Parses a request body as the daemon's jansson would (duplicate keys, NaN, lone
    surrogates and invalid UTF-8 refused); raises ValueError."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(items)

    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    value = json.loads(data.decode("utf-8"), object_pairs_hook=pairs, parse_constant=no_constant)

    def walk(v):
        if isinstance(v, str):
            v.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError (a ValueError)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(value)
    return value


def load_spec(path=SPEC_PATH):
    with open(path) as f:
        return yaml.safe_load(f)


class Contract:
    """The spec for one daemon: its limit flags applied."""

    def __init__(self, daemon_args=(), spec=None):
        self.flags = flag_values(daemon_args)
        self.doc = copy.deepcopy(spec if spec is not None else _cached_spec())
        _apply_limit_flags(self.doc, self.flags)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.max_body = self.doc.get("x-max-body-bytes", {}).get("default")
        self.paths = []
        for template, item in self.doc.get("paths", {}).items():
            regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "([^/]*)", re.escape(template)) + "$"
            names = re.findall(r"\{([^/}]+)\}", template)
            self.paths.append((template, re.compile(regex), names, item))

    # -- helpers --------------------------------------------------------------------------------

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            _, node = self.resolver.resolve(node["$ref"])
        return node

    def errors(self, schema, instance):
        v = Validator(schema, resolver=self.resolver, format_checker=_FORMATS)
        return sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))

    def match(self, path):
        """(template, path item, {param: value}) or None."""
        path = path.split("?", 1)[0]
        for template, regex, names, item in self.paths:
            m = regex.match(path)
            if m:
                return template, item, dict(zip(names, m.groups()))
        return None

    def params_valid(self, item, op, values):
        params = list(item.get("parameters", [])) + list((op or {}).get("parameters", []))
        for p in params:
            p = self.deref(p)
            if p.get("in") == "path" and p["name"] in values:
                if self.errors(p.get("schema", {}), values[p["name"]]):
                    return False
        return True

    # -- requests -------------------------------------------------------------------------------

    def raw_body(self, method, path):
        """Whether the operation takes its body as raw bytes (an upload): no JSON, no cap."""
        found = self.match(path)
        op = found[1].get(method.lower()) if found is not None else None
        rb = self.deref(op.get("requestBody")) if op is not None else None
        return rb is not None and "application/octet-stream" in rb.get("content", {})

    def request_verdict(self, op, body):
        """(True, None) when the spec accepts this request body for op, else (False, why).
        body: the bytes sent, or None."""
        rb = self.deref(op.get("requestBody"))
        if rb is None:
            return True, None
        if "application/octet-stream" in rb.get("content", {}):
            return True, None  # any bytes are a file
        if body is None or body.strip(b" \t\r\n") == b"":
            if rb.get("required", False):
                return False, "the operation requires a body"
            return True, None
        if "application/json" not in rb["content"]:
            return True, None  # a raw body (a process's stdin): any bytes
        try:
            value = _strict_json(body)
        except ValueError as e:
            return False, f"not JSON as the daemon reads it: {e}"
        schema = rb["content"]["application/json"]["schema"]
        errs = self.errors(schema, value)
        if errs:
            e = errs[0]
            return False, f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        return True, None

    # -- the whole exchange ---------------------------------------------------------------------

    def check(self, method, path, body, status, headers, payload):
        """Raises ContractError when the exchange breaks the spec.
        body: request bytes or None; headers: the response's, any case."""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        where = f"{method} {path} -> {status}"
        problems = []
        if self.max_body is not None and body is not None and len(body) > self.max_body \
                and not self.raw_body(method, path):
            if status not in PRE_ROUTE_STATUSES:
                problems.append(f"a {len(body)}-byte body is over x-max-body-bytes "
                                f"{self.max_body}: expected 413")
        found = self.match(path)
        if found is None:
            if status < 400:
                problems.append("the spec has no such path, yet the daemon answered it")
            self._check_error_shape(status, headers, payload, problems)
            self._raise(where, problems, payload)
            return
        template, item, values = found
        where = f"{method} {path} ({method} {template}) -> {status}"
        op = item.get(method.lower())
        if op is None:
            self._check_other_method(item, values, status, headers, payload, problems)
            self._raise(where, problems, payload)
            return
        responses = op.get("responses", {})
        spec_response = responses.get(str(status))
        if spec_response is None:
            problems.append(f"status {status} is not listed for {method} {template} "
                            f"(listed: {', '.join(sorted(responses))})")
            self._check_error_shape(status, headers, payload, problems)
        else:
            self._check_response(item, self.deref(spec_response), status, headers, payload,
                                 problems)
        if not self.params_valid(item, op, values) and status not in PRE_ROUTE_STATUSES + (404,):
            problems.append("a path parameter the spec refuses must get 404")
        if self.max_body is None or body is None or len(body) <= self.max_body:
            self._check_request(op, body, status, payload, problems)
        self._raise(where, problems, payload)

    def _check_request(self, op, body, status, payload, problems):
        ok, why = self.request_verdict(op, body)
        if ok and status in (400, 413):
            message = ""
            if isinstance(payload, (bytes, bytearray)):
                try:
                    message = json.loads(payload)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    pass
            excused = [r for r in op.get("x-also-rejects", [])
                       if r.get("status") == status and r.get("field") and r["field"] in message]
            if not excused:
                problems.append(f"the spec accepts this request body, yet the daemon refused it "
                                f"with {status} (spec gap or daemon bug); body: "
                                f"{_clip(body)}")
        if not ok and 200 <= status < 300:
            problems.append(f"the spec refuses this request body ({why}), yet the daemon "
                            f"accepted it; body: {_clip(body)}")

    def _check_other_method(self, item, values, status, headers, payload, problems):
        ops = [item[m] for m in METHODS if m in item]
        shared = {}
        for op in ops:
            for code, r in op.get("responses", {}).items():
                shared.setdefault(code, r)
        if status == 405:
            self._check_response(item, self.deref(shared["405"]), status, headers, payload,
                                 problems)
            return
        if status == 404 and not self.params_valid(item, None, values):
            self._check_response(item, self.deref(shared["404"]), status, headers, payload,
                                 problems)
            return
        if status in PRE_ROUTE_STATUSES + (500,) and str(status) in shared:
            self._check_response(item, self.deref(shared[str(status)]), status, headers,
                                 payload, problems)
            return
        problems.append(f"a method the path does not serve must get 405 (or 404 for a bad id), "
                        f"got {status}")

    def _check_error_shape(self, status, headers, payload, problems):
        if status < 400:
            return
        value = self._json_body(headers, payload, problems)
        if value is not None:
            for e in self.errors({"$ref": "#/components/schemas/Error"}, value)[:3]:
                problems.append(f"body does not match Error: {e.message}")

    def _json_body(self, headers, payload, problems):
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip() != "application/json":
            problems.append(f"Content-Type is {ctype!r}, not application/json")
            return None
        try:
            return json.loads(payload)
        except ValueError as e:
            problems.append(f"body is not JSON: {e}")
            return None

    def _check_response(self, item, spec_response, status, headers, payload, problems):
        for name, h in spec_response.get("headers", {}).items():
            h = self.deref(h)
            value = headers.get(name.lower())
            if value is None:
                if h.get("required"):
                    problems.append(f"required header {name} is missing")
                continue
            for e in self.errors(h.get("schema", {}), value)[:1]:
                problems.append(f"header {name}: {e.message}")
            if name.lower() == "allow":
                served = sorted(m.upper() for m in METHODS if m in item)
                got = sorted(m.strip() for m in value.split(","))
                if got != served:
                    problems.append(f"Allow is {value!r}, the spec's methods for the path are "
                                    f"{', '.join(served)}")
        content = spec_response.get("content")
        if not content:
            if payload:
                problems.append(f"the spec gives no body for {status}, got {len(payload)} bytes")
            return
        ctype = headers.get("content-type", "").split(";")[0].strip()
        if ctype in EVENT_TYPES and ctype in content:
            self._check_events(ctype, content[ctype]["schema"], payload, problems)
            return
        if ctype == "text/plain" and ctype in content:
            # The Prometheus text format: UTF-8 lines (promtool checks the rest in
            # test_metrics).
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(f"text/plain body is not UTF-8: {e}")
                return
            if text and not text.endswith("\n"):
                problems.append("text/plain body does not end with a newline")
            return
        if ctype == "application/octet-stream" and ctype in content:
            length = headers.get("content-length")
            if length is not None and payload is not None and int(length) != len(payload):
                problems.append(f"Content-Length {length}, yet {len(payload)} bytes came")
            return
        value = self._json_body(headers, payload, problems)
        if value is None:
            return
        schema = content["application/json"]["schema"]
        for e in self.errors(schema, value)[:5]:
            at = "/".join(map(str, e.absolute_path)) or "(body)"
            problems.append(f"body at {at}: {e.message} (schema path "
                            f"{'/'.join(map(str, e.absolute_schema_path))})")

    def _check_events(self, ctype, schema, payload, problems):
        """A streamed body: every event matches schema; exactly one terminal event, the last
        (a body cut short, as a client that hung up gets, has none: the caller said so by
        checking only what it read to the end)."""
        try:
            events = parse_events(ctype, payload)
        except ValueError as e:
            problems.append(f"{ctype} body: {e}")
            return
        for i, ev in enumerate(events):
            for e in self.errors(schema, ev)[:3]:
                problems.append(f"event {i}: {e.message}")
        terminal = [i for i, ev in enumerate(events) if ev.get("type") in TERMINAL_EVENTS]
        if terminal != [len(events) - 1]:
            problems.append(f"the stream must end with exactly one exit/error event, got them "
                            f"at {terminal} of {len(events)} events")

    @staticmethod
    def _raise(where, problems, payload):
        if problems:
            raise ContractError(f"OpenAPI contract (docs/openapi.yaml): {where}:\n  - " +
                                "\n  - ".join(problems) + f"\n  response body: {_clip(payload)}")


EVENT_TYPES = ("application/x-ndjson", "text/event-stream")
TERMINAL_EVENTS = ("exit", "error", "running")  # running: a process's output read without follow


def parse_events(ctype, payload):
    """The objects of an ndjson or SSE body (each line / message whole); ValueError when the
    framing is broken (a last line without its newline, an SSE event name that is not the
    object's type, anything but `event:` and `data:` lines)."""
    text = payload.decode("utf-8")
    events = []
    if ctype == "application/x-ndjson":
        if text and not text.endswith("\n"):
            raise ValueError("the last line has no newline")
        for line in text.split("\n")[:-1]:
            events.append(json.loads(line))
        return events
    if text and not text.endswith("\n\n"):
        raise ValueError("the last event has no blank line after it")
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        if len(lines) != 2 or not lines[0].startswith("event: ") or \
                not lines[1].startswith("data: "):
            raise ValueError(f"not an `event:` and a `data:` line: {block[:200]!r}")
        obj = json.loads(lines[1][len("data: "):])
        if obj.get("type") != lines[0][len("event: "):]:
            raise ValueError(f"event name {lines[0]!r} is not the object's type")
        events.append(obj)
    return events


def _clip(data, n=600):
    if data is None:
        return "(none)"
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else str(data)
    return text if len(text) <= n else text[:n] + f"… ({len(text)} chars)"


_SPEC = None


def _cached_spec():
    global _SPEC
    if _SPEC is None:
        _SPEC = load_spec()
    return _SPEC


_CONTRACTS = {}


def for_daemon(daemon_args):
    """The Contract of a daemon started with daemon_args (one per distinct command line)."""
    key = tuple(daemon_args)
    if key not in _CONTRACTS:
        _CONTRACTS[key] = Contract(key)
    return _CONTRACTS[key]


def check_exchange(daemon_args, method, path, body, status, headers, payload):
    """One exchange against the spec for a daemon started with daemon_args. With
    $EMBER_CONTRACT_LOG set, each checked exchange appends `METHOD template status verdict` to
    that file (which operations and statuses a run exercised)."""
    c = for_daemon(daemon_args)
    log = os.environ.get("EMBER_CONTRACT_LOG")
    verdict = "ok"
    try:
        c.check(method, path, body, status, headers, payload)
    except ContractError:
        verdict = "BROKEN"
        raise
    finally:
        if log:
            found = c.match(path)
            with open(log, "a") as f:
                f.write(f"{method} {found[0] if found else '(no path)'} {status} {verdict}\n")
