"""The connection to the daemon: where it is (EMBERD_ADDR, as emberctl reads it), its bearer
token (EMBERD_TOKEN_FILE), and one HTTP exchange per call with errors turned into exceptions.

A Client keeps no connection open between calls (each request opens its own, so one Client is
safe to share between threads). Only GETs are retried after a connection error: a POST that
broke may have run in the daemon already.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from .errors import ConnectionFailed, EmberdError, error_for

DEFAULT_ADDR = "127.0.0.1:7777"
# A create boots a VM (seconds under TCG, more on a loaded host); a buffered exec answers within
# its own timeout plus the daemon's 15 s of grace, which exec() adds to this.
DEFAULT_TIMEOUT_S = 300.0
# Connection errors of a GET: tried this many times in all, with a growing pause between tries.
GET_ATTEMPTS = 3
RETRY_PAUSE_S = 0.2

Query = Union[Dict[str, Any], List[Tuple[str, str]], None]


@dataclass(frozen=True)
class Address:
    """Where the daemon listens: a Unix socket path, or a TCP host and port."""
    unix_path: Optional[str] = None
    host: Optional[str] = None
    port: Optional[int] = None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return "unix:" + self.unix_path
        host = f"[{self.host}]" if self.host and ":" in self.host else str(self.host)
        return f"{host}:{self.port}"


def parse_addr(text: str) -> Address:
    """emberctl's syntax: ``unix:/path/to/socket``, or ``HOST:PORT`` / ``[IPV6]:PORT``, optionally
    after ``http://``. The port is 1-65535; nothing may follow it."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path or len(path.encode()) >= 108:
            raise ValueError(f"bad unix socket path `{path}`")
        return Address(unix_path=path)
    hostport = text[7:] if text.startswith("http://") else text
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or hostport[end + 1:end + 2] not in (":", ""):
            raise ValueError(f"`{text}` must be HOST:PORT or [IPV6]:PORT (e.g. 127.0.0.1:7777)")
        host, rest = hostport[1:end], hostport[end + 1:]
    else:
        if hostport.count(":") > 1:
            raise ValueError(f"`{text}` must be HOST:PORT or [IPV6]:PORT (e.g. 127.0.0.1:7777)")
        host, _, port_text = hostport.partition(":")
        rest = ":" + port_text if ":" in hostport else ""
    if not host:
        raise ValueError(f"`{text}`: the host is empty")
    if not rest:
        raise ValueError(f"`{text}`: no port (HOST:PORT, e.g. 127.0.0.1:7777)")
    port_text = rest[1:]
    if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"`{text}`: port `{port_text}` is not a number between 1 and 65535")
    return Address(host=host, port=int(port_text))


def read_token_file(path: str) -> str:
    """The token is the file's first line (1 to 512 characters), as emberctl reads it."""
    with open(path, encoding="utf-8") as f:
        first = f.read(1024).splitlines()
    token = first[0] if first else ""
    if not 1 <= len(token) <= 512:
        raise ValueError(f"token file `{path}`: its first line must hold the token "
                         "(1 to 512 characters)")
    return token


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Response:
    """An answer whose body is still to be read (streams, files); close() it when done (it is a
    context manager). The connection goes with it."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self._conn = conn
        self.raw = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read() if n is None or n < 0 else self.raw.read(n)
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as e:
            raise ConnectionFailed(f"the answer was cut short: {e}") from e

    def lines(self) -> Iterator[bytes]:
        while True:
            try:
                line = self.raw.readline()
            except (OSError, http.client.HTTPException) as e:
                raise ConnectionFailed(f"the stream was cut short: {e}") from e
            if not line:
                return
            yield line

    def no_deadline(self) -> None:
        """Reads of the rest of the body wait as long as it takes."""
        if self._conn.sock is not None:
            self._conn.sock.settimeout(None)

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data else None

    def close(self) -> None:
        self.raw.close()
        self._conn.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_query(query: Query) -> str:
    if not query:
        return ""
    pairs = query.items() if isinstance(query, dict) else query
    return "?" + urllib.parse.urlencode([(k, str(v)) for k, v in pairs], safe="")


def raise_for(resp: Response) -> None:
    """Raises the EmberdError of an error answer (and closes it); returns for a 2xx."""
    if 200 <= resp.status < 300:
        return
    try:
        body = resp.json()
    except (ValueError, EmberdError):
        body = None
    finally:
        resp.close()
    error = body.get("error", {}) if isinstance(body, dict) else {}
    retry = resp.headers.get("Retry-After")
    raise error_for(error.get("code"), error.get("message", f"HTTP {resp.status}"), resp.status,
                    float(retry) if retry and retry.isdigit() else None)


class Client:
    """A handle on one daemon. addr: as EMBERD_ADDR (default: $EMBERD_ADDR, else
    127.0.0.1:7777); token or token_file: the bearer token (default: the first line of
    $EMBERD_TOKEN_FILE when set); timeout: seconds a call may wait for the daemon."""

    def __init__(self, addr: Optional[str] = None, token: Optional[str] = None,
                 token_file: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        text = addr if addr is not None else os.environ.get("EMBERD_ADDR", DEFAULT_ADDR)
        try:
            self.address = parse_addr(text)
        except ValueError as e:
            where = "addr" if addr is not None else "EMBERD_ADDR"
            raise ValueError(f"{where}: {e}") from None
        if token is None:
            token_file = token_file if token_file is not None else os.environ.get(
                "EMBERD_TOKEN_FILE")
            if token_file:
                token = read_token_file(token_file)
        self.token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client({str(self.address)!r})"

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self.address.unix_path is not None:
            return _UnixConnection(self.address.unix_path, timeout)
        return http.client.HTTPConnection(str(self.address.host), self.address.port,
                                          timeout=timeout)

    def open(self, method: str, path: str, query: Query = None,
             body: Union[bytes, Iterable[bytes], None] = None,
             headers: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
             check: bool = True) -> Response:
        """Sends one request and returns the answer with its body unread (check: an error
        status raises its EmberdError). A GET is tried again after a connection error."""
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        url = path + encode_query(query)
        attempts = GET_ATTEMPTS if method == "GET" else 1
        for attempt in range(attempts):
            conn = self._connection(timeout if timeout is not None else self.timeout)
            try:
                # A body of unknown length (a file, an iterable) goes out chunked.
                conn.request(method, url, body=body, headers=hdrs)
                resp = Response(conn, conn.getresponse())
            except socket.timeout as e:
                conn.close()
                raise ConnectionFailed(f"{method} {path}: no answer from {self.address} "
                                       "in time") from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if attempt + 1 < attempts:
                    time.sleep(RETRY_PAUSE_S * (attempt + 1))
                    continue
                raise ConnectionFailed(f"{method} {path}: {self.address}: {e}") from e
            if check:
                raise_for(resp)
            return resp
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body: Any = None, query: Query = None,
                timeout: Optional[float] = None) -> Any:
        """A JSON exchange: body (a JSON value or None) out, the parsed answer (None for 204)
        back."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        with self.open(method, path, query, data, headers, timeout) as resp:
            return resp.json()

    def health(self) -> Dict[str, Any]:
        """GET /healthz."""
        return self.request("GET", "/healthz")  # type: ignore[no-any-return]

    def packs(self) -> List[Dict[str, Any]]:
        """GET /packs: the language packs with their defaults."""
        return self.request("GET", "/packs")["packs"]  # type: ignore[no-any-return]


_default: Optional[Client] = None


def default_client() -> Client:
    """The Client of the environment (EMBERD_ADDR, EMBERD_TOKEN_FILE), made at first use."""
    global _default
    if _default is None:
        _default = Client()
    return _default
