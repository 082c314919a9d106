"""What the daemon answers, as dataclasses: exec results and events, files, processes.
Each keeps the daemon's whole JSON object as ``raw`` (fields a newer daemon adds are there)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import EmberdError, error_for


def decode_output(data: Optional[str], encoding: Optional[str]) -> bytes:
    """The exact bytes of an output field: text, or base64 when the daemon said so."""
    if not data:
        return b""
    if encoding == "base64":
        return base64.b64decode(data)
    return data.encode("utf-8")


@dataclass
class CodeError:
    """An exception the code of a context run raised."""
    name: str
    value: str
    traceback: str


@dataclass
class RichResult:
    """A rich result of a context run: ``data`` is base64 for images, text otherwise."""
    mime: str
    data: str


@dataclass
class ExecResult:
    """The outcome of an exec (and of a context run, which also fills result/results/error).

    stdout/stderr are text (output that is not UTF-8 is decoded with replacement characters);
    stdout_bytes/stderr_bytes are the exact bytes."""
    exit_code: int
    signal: int = 0
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: bytes = b""
    stderr_bytes: bytes = b""
    duration_ms: int = 0
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timing: Dict[str, int] = field(default_factory=dict)
    result: Optional[str] = None
    results: List[RichResult] = field(default_factory=list)
    error: Optional[CodeError] = None
    context_restarted: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Exited 0, in time, and (in a context) raised nothing."""
        return self.exit_code == 0 and not self.timed_out and self.error is None

    @classmethod
    def from_json(cls, obj: Dict[str, Any], stdout: Optional[bytes] = None,
                  stderr: Optional[bytes] = None) -> "ExecResult":
        """From a buffered exec's answer, or a streamed exec's exit event with the output the
        stream carried."""
        out = stdout if stdout is not None else decode_output(obj.get("stdout"),
                                                              obj.get("stdout_encoding"))
        err = stderr if stderr is not None else decode_output(obj.get("stderr"),
                                                              obj.get("stderr_encoding"))
        error = obj.get("error")
        return cls(
            exit_code=obj.get("exit_code", -1), signal=obj.get("signal", 0),
            stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
            stdout_bytes=out, stderr_bytes=err, duration_ms=obj.get("duration_ms", 0),
            timed_out=obj.get("timed_out", False), oom_killed=obj.get("oom_killed", False),
            truncated=obj.get("truncated", False),
            stdout_truncated=obj.get("stdout_truncated", False),
            stderr_truncated=obj.get("stderr_truncated", False),
            timing=dict(obj.get("timing") or {}), result=obj.get("result"),
            results=[RichResult(r["mime"], r["data"]) for r in obj.get("results") or []],
            error=CodeError(error.get("name", ""), error.get("value", ""),
                            error.get("traceback", "")) if isinstance(error, dict) else None,
            context_restarted=obj.get("context_restarted", False), raw=obj)


@dataclass
class Event:
    """One event of a streamed exec or of a process's output.

    type: ``stdout`` / ``stderr`` (data: the bytes, text: them decoded), ``exit`` (the last
    event: raw holds its fields; result: the ExecResult of a streamed exec), ``running`` (the
    last event of a process's output read without follow) or ``error`` (the last event when
    something failed after the start: error is the EmberdError)."""
    type: str
    data: bytes = b""
    result: Optional[ExecResult] = None
    error: Optional[EmberdError] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    @classmethod
    def from_json(cls, obj: Dict[str, Any]) -> "Event":
        kind = obj.get("type", "")
        if kind in ("stdout", "stderr"):
            return cls(kind, decode_output(obj.get("data"), obj.get("encoding")), raw=obj)
        if kind == "error":
            err = obj.get("error") or {}
            return cls(kind, error=error_for(err.get("code"), err.get("message", "")), raw=obj)
        return cls(kind, raw=obj)


@dataclass
class FileEntry:
    """An entry of GET /fs: type is file, dir, symlink or other; mode 4 octal digits."""
    name: str
    type: str
    size: int
    mode: str
    mtime: str

    @classmethod
    def from_json(cls, obj: Dict[str, Any]) -> "FileEntry":
        return cls(obj["name"], obj["type"], obj["size"], obj["mode"], obj["mtime"])


@dataclass
class WrittenFile:
    """The answer to an upload: the absolute path, the size and the sha256 of the bytes."""
    path: str
    size: int
    sha256: str
