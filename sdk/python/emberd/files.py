"""sb.files: a sandbox's files (docs/api.md, "Files"). Paths are the guest's; a relative one is
under /home/sandbox. Uploads and downloads stream: open_write/open_read give file objects that
never hold more than a piece of the file in memory."""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, Any, Dict, List, Optional, Union

from .client import Response, encode_query, raise_for
from .errors import ConnectionFailed, NotFound
from .models import FileEntry, WrittenFile

if TYPE_CHECKING:
    from .sandbox import Sandbox

PIECE = 64 * 1024  # the guest's own transfer piece: larger writes buy nothing


class FileReader(io.RawIOBase):
    """A file of the sandbox being read: a readable binary file object (read, readinto,
    iteration by lines, a context manager). Ends early only with ConnectionFailed: a transfer
    the daemon cut short is never taken for the whole file."""

    def __init__(self, resp: Response) -> None:
        super().__init__()
        self._resp = resp
        length = resp.headers.get("Content-Length")
        self.size: Optional[int] = int(length) if length is not None else None
        self._got = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._resp.read(min(len(view), PIECE)) if len(view) else b""
        view[:len(data)] = data
        self._got += len(data)
        # http.client reports a body cut short of its Content-Length as a plain end
        if not data and len(view) and self.size is not None and self._got < self.size:
            raise ConnectionFailed(f"file cut short at {self._got} of {self.size} bytes")
        return len(data)

    def readall(self) -> bytes:
        pieces: List[bytes] = []
        while True:
            piece = self.read(PIECE)
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class FileWriter(io.RawIOBase):
    """A file of the sandbox being written: bytes go out as they are written (chunked), and
    close() waits for the daemon's answer. The guest renames the file into place only once the
    whole upload arrived, so a writer that is never closed (or closed after an exception inside
    its ``with``) leaves nothing behind. ``result`` holds the WrittenFile after close()."""

    def __init__(self, sandbox: "Sandbox", path: str, mode: Optional[str], mkdir: bool) -> None:
        super().__init__()
        self.result: Optional[WrittenFile] = None
        query = [("path", path)]
        if mode is not None:
            query.append(("mode", mode))
        if mkdir:
            query.append(("mkdir", "1"))
        self._conn = sandbox.client._connection(sandbox.client.timeout)
        self._failed = False
        url = f"/sandboxes/{sandbox.id}/files" + encode_query(query)
        try:
            self._conn.putrequest("PUT", url, skip_accept_encoding=True)
            self._conn.putheader("Content-Type", "application/octet-stream")
            self._conn.putheader("Transfer-Encoding", "chunked")
            if sandbox.client.token:
                self._conn.putheader("Authorization", f"Bearer {sandbox.client.token}")
            self._conn.endheaders()
        except OSError as e:
            self._conn.close()
            raise ConnectionFailed(f"PUT {url}: {e}") from e

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if len(view) == 0:
            return 0
        try:
            self._conn.send(b"%x\r\n" % len(view) + bytes(view) + b"\r\n")
        except OSError as e:
            # The daemon answers early only after reading the whole body, so this is a broken
            # connection, not a refusal: the guest removes the partial file.
            self._failed = True
            raise ConnectionFailed(f"upload cut short: {e}") from e
        return len(view)

    def abort(self) -> None:
        """Drops the upload: the connection closes before the last chunk, the guest keeps
        nothing."""
        self._failed = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._failed:
                self._finish()
        finally:
            self._conn.close()
            super().close()

    def _finish(self) -> None:
        try:
            self._conn.send(b"0\r\n\r\n")
            resp = Response(self._conn, self._conn.getresponse())
        except OSError as e:
            raise ConnectionFailed(f"upload: no answer: {e}") from e
        raise_for(resp)
        with resp:
            body = resp.json()
        self.result = WrittenFile(body["path"], body["size"], body["sha256"])

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # IOBase's would close(), completing an upload its writer gave up on
        if not self.closed:
            self.abort()


class Files:
    """The files of one sandbox (``sb.files``)."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sb = sandbox

    def _path(self, suffix: str) -> str:
        return f"/sandboxes/{self._sb.id}/{suffix}"

    def write(self, path: str, data: Union[bytes, str, IO[bytes]], mode: Optional[str] = None,
              mkdir: bool = False) -> WrittenFile:
        """Writes a whole file: bytes, text (UTF-8) or a binary file object (streamed, in
        pieces). mode: octal text (``"0644"`` by default); mkdir: create missing parents."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self.open_write(path, mode=mode, mkdir=mkdir) as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                view = memoryview(data)
                for start in range(0, len(view), PIECE):
                    out.write(view[start:start + PIECE])
            else:
                while True:
                    piece = data.read(PIECE)
                    if not piece:
                        break
                    out.write(piece)
        assert out.result is not None
        return out.result

    def open_write(self, path: str, mode: Optional[str] = None,
                   mkdir: bool = False) -> FileWriter:
        """A file object that uploads what is written to it; close() (or the end of a ``with``)
        completes the upload."""
        return FileWriter(self._sb, path, mode, mkdir)

    def read(self, path: str) -> bytes:
        """A whole file's bytes."""
        with self.open_read(path) as f:
            return f.readall()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def open_read(self, path: str) -> FileReader:
        """A readable binary file object streaming the file (``size`` is its length)."""
        resp = self._sb.client.open("GET", self._path("files"), {"path": path},
                                    headers={"Accept": "application/octet-stream"})
        return FileReader(resp)

    def list(self, path: str = ".") -> List[FileEntry]:
        """A directory's entries, sorted by name (the daemon lists at most 2048); for
        anything else, a list of its own entry (a symlink is not followed)."""
        obj = self._sb.client.request("GET", self._path("fs"), query={"path": path})
        if "entries" not in obj:
            return [FileEntry.from_json(obj)]
        return [FileEntry.from_json(e) for e in obj["entries"]]

    def exists(self, path: str) -> bool:
        try:
            self._sb.client.request("GET", self._path("fs"), query={"path": path})
        except NotFound:
            return False
        return True

    def mkdir(self, path: str, parents: bool = False, mode: Optional[str] = None) -> None:
        body: Dict[str, Any] = {"path": path, "parents": parents}
        if mode is not None:
            body["mode"] = mode
        self._sb.client.request("POST", self._path("fs/mkdir"), body)

    def remove(self, path: str, recursive: bool = False) -> None:
        self._sb.client.request("POST", self._path("fs/remove"),
                                {"path": path, "recursive": recursive})

    def move(self, src: str, dst: str) -> None:
        self._sb.client.request("POST", self._path("fs/move"), {"from": src, "to": dst})

