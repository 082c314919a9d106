"""The exceptions of the emberd SDK: one class per API error code (docs/api.md, "Requests and
errors"), all subclasses of EmberdError, plus ConnectionFailed for a daemon that could not be
reached or cut an answer short."""

from __future__ import annotations

from typing import Dict, Optional, Type


class EmberdError(Exception):
    """An error the daemon answered (or, for ConnectionFailed, could not answer).

    code: the API's error code (``"not_found"``), message: the daemon's message, status: the
    HTTP status (None when no answer came), retry_after: the Retry-After header in seconds (429).
    """

    code: Optional[str] = None

    def __init__(self, message: str, code: Optional[str] = None, status: Optional[int] = None,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.status} {self.code}" if self.status is not None else str(self.code)
        return f"{where}: {self.message}"


class ConnectionFailed(EmberdError):
    """The daemon could not be reached, or the connection broke before the answer was whole."""
    code = "connection_failed"


class InvalidArgument(EmberdError):
    code = "invalid_argument"


class Unauthorized(EmberdError):
    code = "unauthorized"


class Forbidden(EmberdError):
    code = "forbidden"


class NotFound(EmberdError):
    code = "not_found"


class MethodNotAllowed(EmberdError):
    code = "method_not_allowed"


class Conflict(EmberdError):
    code = "conflict"


class TooLarge(EmberdError):
    code = "too_large"


class MisdirectedRequest(EmberdError):
    code = "misdirected_request"


class Capacity(EmberdError):
    code = "capacity"


class Unavailable(EmberdError):
    code = "unavailable"


class GuestFailed(EmberdError):
    code = "guest_failed"


class GuestTimeout(EmberdError):
    code = "guest_timeout"


class GuestProtocol(EmberdError):
    code = "guest_protocol"


class Internal(EmberdError):
    code = "internal"


class InsufficientStorage(EmberdError):
    code = "insufficient_storage"


ERROR_CLASSES: Dict[str, Type[EmberdError]] = {
    cls.code: cls for cls in (  # type: ignore[misc]
        InvalidArgument, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, TooLarge,
        MisdirectedRequest, Capacity, Unavailable, GuestFailed, GuestTimeout, GuestProtocol,
        Internal, InsufficientStorage)
}


def error_for(code: Optional[str], message: str, status: Optional[int] = None,
              retry_after: Optional[float] = None) -> EmberdError:
    """The exception for an API error code; an unknown code (a newer daemon) is a plain
    EmberdError that still carries it."""
    cls = ERROR_CLASSES.get(code or "", EmberdError)
    return cls(message, code=code, status=status, retry_after=retry_after)
