"""sb.processes: background processes (docs/api.md, POST /sandboxes/{id}/processes): programs
that outlive the request that started them, their output kept in the daemon for later."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

from .models import Event, decode_output
from .stream import iter_events

if TYPE_CHECKING:
    from .sandbox import Sandbox


class Process:
    """A background process as last read (refresh() reads it again). ``info`` is the daemon's
    object; stdout/stderr are what its rings held at the last get() (text; ``*_bytes`` exact)."""

    def __init__(self, processes: "Processes", info: Dict[str, Any]) -> None:
        self._processes = processes
        self.info = info

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, state={self.state!r})"

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    @property
    def state(self) -> str:
        return str(self.info["state"])

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def exit_code(self) -> Optional[int]:
        return self.info.get("exit_code")

    @property
    def stdout_bytes(self) -> bytes:
        return decode_output(self.info.get("stdout"), self.info.get("stdout_encoding"))

    @property
    def stderr_bytes(self) -> bytes:
        return decode_output(self.info.get("stderr"), self.info.get("stderr_encoding"))

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

    def refresh(self) -> "Process":
        self.info = self._processes.get(self.pid).info
        return self

    def follow(self, follow: bool = True) -> Iterator[Event]:
        return self._processes.follow(self.pid, follow)

    def wait(self) -> "Process":
        """Follows the output until the process ends, then reads it again."""
        for _event in self.follow():
            pass
        return self.refresh()

    def signal(self, sig: Union[str, int] = "TERM") -> None:
        self._processes.signal(self.pid, sig)

    def send_stdin(self, data: Union[bytes, str], close: bool = False) -> None:
        self._processes.send_stdin(self.pid, data, close)


class Processes:
    """The background processes of one sandbox (``sb.processes``)."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sb = sandbox

    def _path(self, suffix: str = "") -> str:
        return f"/sandboxes/{self._sb.id}/processes{suffix}"

    def start(self, code: Optional[str] = None, cmd: Optional[Sequence[str]] = None,
              cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
              stdin: bool = False, tag: Optional[str] = None) -> Process:
        """Starts exactly one of code (for the pack's interpreter) or cmd (argv, looked up in
        the guest's PATH). stdin: keep its stdin open for send_stdin()."""
        body: Dict[str, Any] = {}
        if code is not None:
            body["code"] = code
        if cmd is not None:
            body["cmd"] = list(cmd)
        if cwd is not None:
            body["cwd"] = cwd
        if env:
            body["env"] = dict(env)
        if stdin:
            body["stdin"] = True
        if tag is not None:
            body["tag"] = tag
        return Process(self, self._sb.client.request("POST", self._path(), body))

    def list(self) -> List[Process]:
        """The background processes, oldest first (without their output)."""
        obj = self._sb.client.request("GET", self._path())
        return [Process(self, p) for p in obj["processes"]]

    def get(self, pid: int) -> Process:
        """One process, with what its output rings hold."""
        return Process(self, self._sb.client.request("GET", self._path(f"/{int(pid)}")))

    def follow(self, pid: int, follow: bool = True) -> Iterator[Event]:
        """The output as Events from the oldest byte kept; with follow, live until the process
        ends (last event ``exit``), else up to now (last event ``running`` or ``exit``)."""
        resp = self._sb.client.open("GET", self._path(f"/{int(pid)}/output"),
                                    {"follow": "1"} if follow else None,
                                    headers={"Accept": "application/x-ndjson"})
        return iter_events(resp)

    def signal(self, pid: int, sig: Union[str, int] = "TERM") -> None:
        """Sends a signal (TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT or 1-64) to the
        process's group."""
        self._sb.client.request("POST", self._path(f"/{int(pid)}/signal"), {"signal": sig})

    def send_stdin(self, pid: int, data: Union[bytes, str], close: bool = False) -> None:
        """Writes to the stdin of a process started with stdin=True; close: then close it."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        with self._sb.client.open("POST", self._path(f"/{int(pid)}/stdin"),
                                  {"close": "1"} if close else None, raw,
                                  {"Content-Type": "application/octet-stream"}):
            pass
