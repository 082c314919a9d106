"""NDJSON event streams (a streamed exec, a process's output): one Event per line, the last one
(exit, running or error) ends the stream. A stream that ends without it was cut short."""

from __future__ import annotations

import json
from typing import Any, Iterator, List, Optional

from .client import Response
from .errors import ConnectionFailed
from .models import Event, ExecResult

LAST_EVENTS = ("exit", "running", "error")


def iter_events(resp: Response) -> Iterator[Event]:
    """The events of an answer, closing it at the end or when the consumer stops early (which,
    for a streamed exec, cancels it)."""
    try:
        # a silent program may run for long: the stream has no read deadline of its own
        resp.no_deadline()
        for line in resp.lines():
            if not line.strip():
                continue
            event = Event.from_json(json.loads(line))
            yield event
            if event.type in LAST_EVENTS:
                return
        raise ConnectionFailed("the event stream ended without its last event")
    finally:
        resp.close()


class ExecStream:
    """A streamed exec: iterate over it for its Events (stdout, stderr, then exit or error).
    ``result`` is the ExecResult once the exit event came (its output is everything the stream
    carried). close() (or leaving a ``with``) before the end cancels the exec."""

    def __init__(self, resp: Response) -> None:
        self._events = iter_events(resp)
        self._out: List[bytes] = []
        self._err: List[bytes] = []
        self.result: Optional[ExecResult] = None

    def __iter__(self) -> Iterator[Event]:
        for event in self._events:
            if event.type == "stdout":
                self._out.append(event.data)
            elif event.type == "stderr":
                self._err.append(event.data)
            elif event.type == "exit":
                self.result = ExecResult.from_json(event.raw, b"".join(self._out),
                                                   b"".join(self._err))
                event.result = self.result
            yield event

    def wait(self) -> ExecResult:
        """Reads the rest of the stream and returns the result; raises the error of an error
        event."""
        for event in self:
            if event.type == "error" and event.error is not None:
                raise event.error
        if self.result is None:
            raise ConnectionFailed("the stream ended without an exit event")
        return self.result

    def close(self) -> None:
        self._events.close()  # type: ignore[attr-defined]

    def __enter__(self) -> "ExecStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
