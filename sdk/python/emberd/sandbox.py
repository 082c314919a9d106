"""Sandbox and Context: the objects a program holds (docs/api.md, "Sandboxes", "Contexts")."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .client import Client, default_client
from .errors import NotFound
from .files import Files
from .models import ExecResult
from .processes import Processes
from .stream import ExecStream

# A buffered exec answers within its timeout plus the daemon's grace (10 s to cancel, 5 s for
# the report); a call waits that long plus the client's own timeout.
EXEC_GRACE_S = 15.0

Labels = Union[Mapping[str, Optional[str]], Iterable[str], None]


def _exec_body(code: str, stdin: Union[str, bytes, None], timeout: Optional[float],
               env: Optional[Mapping[str, str]], max_output_bytes: Optional[int],
               fresh_interpreter: bool, context_id: Optional[str]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"code": code}
    if stdin is not None:
        body["stdin"] = stdin.decode("utf-8") if isinstance(stdin, bytes) else stdin
    if timeout is not None:
        body["timeout_ms"] = max(1, int(round(timeout * 1000)))
    if env:
        body["env"] = dict(env)
    if max_output_bytes is not None:
        body["max_output_bytes"] = max_output_bytes
    if fresh_interpreter:
        body["fresh_interpreter"] = True
    if context_id is not None:
        body["context_id"] = context_id
    return body


def _segment(text: str) -> str:
    """An id as one path segment, whatever it holds (the daemon then says 404)."""
    return urllib.parse.quote(text, safe="")


def _label_query(labels: Labels) -> List[Tuple[str, str]]:
    """label=KEY=VALUE for a mapping's items (KEY alone for a None value), label=ITEM for an
    iterable's ("team" or "team=red")."""
    if labels is None:
        return []
    if isinstance(labels, Mapping):
        return [("label", k if v is None else f"{k}={v}") for k, v in labels.items()]
    return [("label", item) for item in labels]


class Sandbox:
    """A sandbox of the daemon. Made by create() (a ``with`` deletes it at the end), connect()
    or list(). ``info`` is the sandbox object as last read (refresh() reads it again)."""

    def __init__(self, info: Dict[str, Any], client: Client) -> None:
        self.info = info
        self.client = client
        self.files = Files(self)
        self.processes = Processes(self)

    def __repr__(self) -> str:
        return f"Sandbox({self.id!r}, pack={self.pack!r}, state={self.state!r})"

    @property
    def id(self) -> str:
        return str(self.info["id"])

    @property
    def pack(self) -> str:
        return str(self.info.get("language_pack"))

    @property
    def state(self) -> str:
        return str(self.info.get("state"))

    @property
    def labels(self) -> Dict[str, str]:
        return dict(self.info.get("labels") or {})

    @classmethod
    def create(cls, pack: Optional[str] = None, labels: Optional[Mapping[str, str]] = None, *,
               vcpus: Optional[int] = None, memory_mib: Optional[int] = None,
               timeout_s: Optional[int] = None, overlay_mib: Optional[int] = None,
               idle_timeout_s: Optional[int] = None, cpu_weight: Optional[int] = None,
               network: Optional[Dict[str, Any]] = None,
               client: Optional[Client] = None) -> "Sandbox":
        """POST /sandboxes: returns once the sandbox is ready. pack: the language pack (the
        daemon's default, python, when None); the rest as docs/api.md says (None: the pack's
        or the daemon's default)."""
        client = client or default_client()
        fields = {"language_pack": pack, "labels": dict(labels) if labels else None,
                  "vcpus": vcpus, "memory_mib": memory_mib, "timeout_s": timeout_s,
                  "overlay_mib": overlay_mib, "idle_timeout_s": idle_timeout_s,
                  "cpu_weight": cpu_weight, "network": network}
        body = {k: v for k, v in fields.items() if v is not None}
        return cls(client.request("POST", "/sandboxes", body), client)

    @classmethod
    def connect(cls, sandbox_id: str, client: Optional[Client] = None) -> "Sandbox":
        """An existing sandbox (NotFound when there is none)."""
        client = client or default_client()
        return cls(client.request("GET", f"/sandboxes/{_segment(sandbox_id)}"), client)

    @classmethod
    def list(cls, labels: Labels = None, state: Optional[str] = None,
             client: Optional[Client] = None) -> List["Sandbox"]:
        """The sandboxes that carry every label given (a mapping: KEY to a value, or to None for
        any value; or "KEY" / "KEY=VALUE" strings) and are in state (when given)."""
        client = client or default_client()
        query = _label_query(labels)
        if state is not None:
            query.append(("state", state))
        obj = client.request("GET", "/sandboxes", query=query)
        return [cls(info, client) for info in obj["sandboxes"]]

    def refresh(self) -> "Sandbox":
        self.info = self.client.request("GET", f"/sandboxes/{self.id}")
        return self

    def delete(self) -> None:
        """DELETE: returns once the VM is gone."""
        self.client.request("DELETE", f"/sandboxes/{self.id}")

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.delete()
        except NotFound:
            pass  # deleted already (or expired): what the with block wanted

    def set_timeout(self, timeout_s: int) -> "Sandbox":
        """The sandbox is destroyed timeout_s seconds from now."""
        self.info = self.client.request("POST", f"/sandboxes/{self.id}/timeout",
                                        {"timeout_s": int(timeout_s)})
        return self

    def console(self) -> str:
        """The last 16 KiB of the guest console."""
        return str(self.client.request("GET", f"/sandboxes/{self.id}/console")["console"])

    def exec(self, code: str, stdin: Union[str, bytes, None] = None,
             timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None,
             max_output_bytes: Optional[int] = None, fresh_interpreter: bool = False,
             context_id: Optional[str] = None) -> ExecResult:
        """Runs code under the pack's interpreter and returns once it ended. timeout: seconds
        (the pack's default when None); the program's own failure is a result, not an
        exception."""
        body = _exec_body(code, stdin, timeout, env, max_output_bytes, fresh_interpreter,
                          context_id)
        obj = self.client.request("POST", f"/sandboxes/{self.id}/exec", body,
                                  timeout=self.client.timeout + EXEC_GRACE_S + (timeout or 0))
        return ExecResult.from_json(obj)

    def exec_stream(self, code: str, stdin: Union[str, bytes, None] = None,
                    timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None,
                    max_output_bytes: Optional[int] = None, fresh_interpreter: bool = False,
                    context_id: Optional[str] = None) -> ExecStream:
        """Like exec(), the output coming as Events while the program writes it (an
        ExecStream: iterate over it; its ``result`` is set by the exit event). An error before
        the start raises; one after it is the stream's last event, type ``error``."""
        body = _exec_body(code, stdin, timeout, env, max_output_bytes, fresh_interpreter,
                          context_id)
        resp = self.client.open("POST", f"/sandboxes/{self.id}/exec", None,
                                json.dumps(body).encode(),
                                {"Content-Type": "application/json",
                                 "Accept": "application/x-ndjson"})
        return ExecStream(resp)

    def create_context(self, language: Optional[str] = None, cwd: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None) -> "Context":
        """A long-lived interpreter (python, node or shell; default: the pack's) whose state
        persists from one run() to the next."""
        fields = {"language": language, "cwd": cwd, "env": dict(env) if env else None}
        body = {k: v for k, v in fields.items() if v is not None}
        return Context(self, self.client.request("POST", f"/sandboxes/{self.id}/contexts",
                                                 body))

    def contexts(self) -> List["Context"]:
        obj = self.client.request("GET", f"/sandboxes/{self.id}/contexts")
        return [Context(self, c) for c in obj["contexts"]]

    def context(self, context_id: str) -> "Context":
        return Context(self, self.client.request(
            "GET", f"/sandboxes/{self.id}/contexts/{_segment(context_id)}"))


class Context:
    """A code context of a sandbox (a ``with`` deletes it at the end). ``info`` as last read."""

    def __init__(self, sandbox: Sandbox, info: Dict[str, Any]) -> None:
        self.sandbox = sandbox
        self.info = info

    def __repr__(self) -> str:
        return f"Context({self.id!r}, language={self.language!r})"

    @property
    def id(self) -> str:
        return str(self.info["id"])

    @property
    def language(self) -> str:
        return str(self.info.get("language"))

    def _path(self, suffix: str = "") -> str:
        return f"/sandboxes/{self.sandbox.id}/contexts/{self.id}{suffix}"

    def run(self, code: str, timeout: Optional[float] = None,
            max_output_bytes: Optional[int] = None) -> ExecResult:
        """Runs code in the context: ``result`` is the repr of its final expression, ``error``
        the CodeError of an exception it raised (the context lives on)."""
        return self.sandbox.exec(code, timeout=timeout, max_output_bytes=max_output_bytes,
                                 context_id=self.id)

    def run_stream(self, code: str, timeout: Optional[float] = None) -> ExecStream:
        return self.sandbox.exec_stream(code, timeout=timeout, context_id=self.id)

    def refresh(self) -> "Context":
        self.info = self.sandbox.client.request("GET", self._path())
        return self

    def restart(self) -> "Context":
        """A fresh interpreter under the same id: the state goes."""
        self.info = self.sandbox.client.request("POST", self._path("/restart"))
        return self

    def delete(self) -> None:
        self.sandbox.client.request("DELETE", self._path())

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.delete()
        except NotFound:
            pass
