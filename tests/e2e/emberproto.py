"""emberproto - a small, stdlib-only client of the emberd host<->guest protocol.

Speaks docs/protocol.md (version 1; version 3's file requests too) over any connected stream socket: the agent's Unix socket
in agent-only mode, QEMU's virtio-serial chardev socket, or a Firecracker vsock after the
`CONNECT 52` preamble (see connect_firecracker_vsock). Used by the end-to-end tests; it
validates what it receives as strictly as the host daemon should.
"""

import json
import os
import socket
import struct
import time

HEADER = struct.Struct(">IIBBH")  # length, id, type, flags, reserved
HEADER_SIZE = HEADER.size  # 12

HELLO, READY, EXEC, STDIN, STDOUT, STDERR, EXIT, CANCEL, PS, PS_REPLY, ERROR, PING, PONG = range(1, 14)
TYPE_NAMES = {
    HELLO: "HELLO", READY: "READY", EXEC: "EXEC", STDIN: "STDIN", STDOUT: "STDOUT",
    STDERR: "STDERR", EXIT: "EXIT", CANCEL: "CANCEL", PS: "PS", PS_REPLY: "PS_REPLY",
    ERROR: "ERROR", PING: "PING", PONG: "PONG",
}
FLAG_FIN = 0x01
MAX_PAYLOAD = 1024 * 1024
MAX_DATA_CHUNK = 64 * 1024
# Per-type payload bounds (docs/protocol.md).
TYPE_MAX = {
    HELLO: 4096, READY: 4096, EXEC: MAX_PAYLOAD, STDIN: MAX_DATA_CHUNK, STDOUT: MAX_DATA_CHUNK,
    STDERR: MAX_DATA_CHUNK, EXIT: 4096, CANCEL: 0, PS: 0, PS_REPLY: MAX_PAYLOAD, ERROR: 4096,
    PING: 64, PONG: 64,
}
VERSION = 1
# Version 3: background execs (docs/protocol.md "Background processes").
STARTED, SIGNAL = 18, 19
TYPE_NAMES.update({STARTED: "STARTED", SIGNAL: "SIGNAL"})
TYPE_MAX.update({STARTED: 64, SIGNAL: 4})

# Version 3: files (docs/protocol.md "Files"); CREDIT goes both ways.
CREDIT, FS, FS_REPLY, DATA = 14, 15, 16, 17
TYPE_NAMES.update({CREDIT: "CREDIT", FS: "FS", FS_REPLY: "FS_REPLY", DATA: "DATA"})
TYPE_MAX.update({CREDIT: 4, FS: MAX_PAYLOAD, FS_REPLY: MAX_PAYLOAD, DATA: MAX_DATA_CHUNK})
CREDIT_WINDOW = 256 * 1024

# Version 8: suspend and resume (docs/protocol.md "Suspend and resume"); all three with id 0.
SUSPEND, SUSPENDED, RESUME = 22, 23, 24
TYPE_NAMES.update({SUSPEND: "SUSPEND", SUSPENDED: "SUSPENDED", RESUME: "RESUME"})
TYPE_MAX.update({SUSPEND: 0, SUSPENDED: 0, RESUME: 4096})


class ProtocolError(Exception):
    """The peer broke the wire protocol."""


class SessionClosed(Exception):
    """The peer ended the session (EOF or reset)."""


class GuestError(Exception):
    """The guest answered a request with ERROR."""

    def __init__(self, frame_id, code, message):
        super().__init__(f"{code}: {message} (id {frame_id})")
        self.id = frame_id
        self.code = code
        self.message = message


def encode_frame(ftype, frame_id, payload=b"", flags=0):
    """Returns the bytes of one frame."""
    if isinstance(payload, str):
        payload = payload.encode()
    return HEADER.pack(len(payload), frame_id, ftype, flags, 0) + payload


def decode_header(data):
    """Validates a 12-byte header; returns (length, id, type, flags)."""
    length, frame_id, ftype, flags, reserved = HEADER.unpack(data)
    if reserved != 0:
        raise ProtocolError("non-zero reserved bytes")
    if ftype not in TYPE_NAMES:
        raise ProtocolError(f"unknown frame type {ftype}")
    if flags != 0 and not (ftype in (STDIN, DATA) and flags == FLAG_FIN):
        raise ProtocolError(f"flags {flags:#x} on {TYPE_NAMES[ftype]}")
    if length > TYPE_MAX[ftype]:
        raise ProtocolError(f"{TYPE_NAMES[ftype]} of {length} bytes")
    if ftype in (HELLO, READY) and frame_id != 0:
        raise ProtocolError(f"{TYPE_NAMES[ftype]} with id {frame_id}")
    return length, frame_id, ftype, flags


class Frame:
    __slots__ = ("type", "id", "flags", "payload")

    def __init__(self, ftype, frame_id, flags, payload):
        self.type, self.id, self.flags, self.payload = ftype, frame_id, flags, payload

    def json(self):
        return json.loads(self.payload.decode())

    def __repr__(self):
        return f"Frame({TYPE_NAMES.get(self.type, self.type)}, id={self.id}, {len(self.payload)} bytes)"


class ExecResult:
    def __init__(self):
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exit = None  # the EXIT JSON
        self.error = None  # (code, message) when the guest answered ERROR

    @property
    def exit_code(self):
        return self.exit["exit_code"]

    def __repr__(self):
        return (f"ExecResult(exit={self.exit}, error={self.error}, stdout={bytes(self.stdout[:200])!r}, "
                f"stderr={bytes(self.stderr[:200])!r})")


def connect_firecracker_vsock(uds_path, port=52, timeout=10.0):
    """Connects through Firecracker's hybrid vsock Unix socket (`CONNECT <port>` / `OK <n>`)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(uds_path)
    sock.sendall(f"CONNECT {port}\n".encode())
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise SessionClosed("vsock proxy closed during CONNECT")
        line += chunk
        if len(line) > 64:
            raise ProtocolError("overlong CONNECT answer")
    if not line.startswith(b"OK "):
        raise ProtocolError(f"CONNECT refused: {line!r}")
    return sock


class Client:
    """One session. Frames for other ids that arrive while waiting are kept, per id."""

    def __init__(self, sock, timeout=30.0):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.pending = []  # frames received but not yet consumed
        self.next_id = 1

    @classmethod
    def connect_unix(cls, path, timeout=30.0):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        return cls(sock, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def alloc_id(self):
        frame_id = self.next_id
        self.next_id += 1
        return frame_id

    # --- raw frames ---

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, ftype, frame_id, payload=b"", flags=0):
        self.sock.sendall(encode_frame(ftype, frame_id, payload, flags))

    def _read_frame(self, deadline):
        while True:
            if len(self.buf) >= HEADER_SIZE:
                length, frame_id, ftype, flags = decode_header(bytes(self.buf[:HEADER_SIZE]))
                if len(self.buf) >= HEADER_SIZE + length:
                    payload = bytes(self.buf[HEADER_SIZE:HEADER_SIZE + length])
                    del self.buf[:HEADER_SIZE + length]
                    return Frame(ftype, frame_id, flags, payload)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the guest before the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("no frame from the guest before the deadline") from None
            except ConnectionResetError as e:
                raise SessionClosed("connection reset") from e
            if not chunk:
                raise SessionClosed("EOF from the guest")
            self.buf += chunk

    def recv(self, match=None, timeout=None):
        """Returns the next frame satisfying match(frame) (any frame when None)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for i, f in enumerate(self.pending):
            if match is None or match(f):
                return self.pending.pop(i)
        while True:
            f = self._read_frame(deadline)
            if match is None or match(f):
                return f
            self.pending.append(f)

    def wait_closed(self, timeout=10.0):
        """Reads until the guest ends the session; returns the frames received meanwhile."""
        frames = list(self.pending)
        self.pending.clear()
        deadline = time.monotonic() + timeout
        try:
            while True:
                frames.append(self._read_frame(deadline))
        except SessionClosed:
            return frames

    # --- requests ---

    def hello(self, sandbox_id="sb_test", version=VERSION, time_unix_ns=None, entropy=None,
              net=None):
        msg = {
            "version": version,
            "sandbox_id": sandbox_id,
            "time_unix_ns": time.time_ns() if time_unix_ns is None else time_unix_ns,
            "entropy": (os.urandom(32) if entropy is None else entropy).hex(),
        }
        if net is not None:  # version 5: {"mac", "address", "gateway", "dns"}
            msg["net"] = net
        self.send(HELLO, 0, json.dumps(msg))
        f = self.recv(lambda f: f.id == 0 and f.type in (READY, ERROR))
        if f.type == ERROR:
            e = f.json()
            raise GuestError(0, e["code"], e["message"])
        ready = f.json()
        if set(ready) != {"version", "agent", "sandbox_id", "uptime_ms"}:
            raise ProtocolError(f"bad READY {ready}")
        return ready

    def ping(self, payload=b"ping"):
        frame_id = self.alloc_id()
        self.send(PING, frame_id, payload)
        f = self.recv(lambda f: f.id == frame_id)
        if f.type != PONG:
            raise ProtocolError(f"expected PONG, got {f}")
        return f.payload

    def ps(self):
        frame_id = self.alloc_id()
        self.send(PS, frame_id)
        f = self.recv(lambda f: f.id == frame_id)
        if f.type == ERROR:
            e = f.json()
            raise GuestError(frame_id, e["code"], e["message"])
        if f.type != PS_REPLY:
            raise ProtocolError(f"expected PS_REPLY, got {f}")
        return f.json()["processes"]

    def start_exec(self, code, argv=("/usr/bin/python3",), env=(), timeout_ms=30000,
                   output_limit=1 << 20, stdin=None, frame_id=None, max_processes=256,
                   **fields):
        """Sends EXEC (and all of stdin, when given); returns the exec id. fields: further
        EXEC members as they are (e.g. code_argument=True)."""
        frame_id = self.alloc_id() if frame_id is None else frame_id
        msg = {
            "argv": list(argv), "env": list(env), "code": code, "timeout_ms": timeout_ms,
            "output_limit": output_limit, "max_processes": max_processes,
            "stdin_follows": stdin is not None, **fields,
        }
        self.send(EXEC, frame_id, json.dumps(msg))
        if stdin is not None:
            self.send_stdin(frame_id, stdin, fin=True)
        return frame_id

    def send_stdin(self, frame_id, data, fin=False):
        for off in range(0, len(data), MAX_DATA_CHUNK):
            chunk = data[off:off + MAX_DATA_CHUNK]
            last = fin and off + MAX_DATA_CHUNK >= len(data)
            self.send(STDIN, frame_id, chunk, FLAG_FIN if last else 0)
        if fin and len(data) == 0:
            self.send(STDIN, frame_id, b"", FLAG_FIN)

    def cancel(self, frame_id):
        self.send(CANCEL, frame_id)

    def wait_exec(self, frame_id, timeout=None):
        """Collects STDOUT/STDERR until EXIT (or ERROR) for frame_id."""
        result = ExecResult()
        while True:
            f = self.recv(lambda f: f.id == frame_id, timeout=timeout)
            if f.type == STDOUT:
                result.stdout += f.payload
            elif f.type == STDERR:
                result.stderr += f.payload
            elif f.type == EXIT:
                result.exit = f.json()
                return result
            elif f.type == ERROR:
                e = f.json()
                result.error = (e["code"], e["message"])
                return result
            else:
                raise ProtocolError(f"unexpected {f} for exec {frame_id}")

    def exec(self, code, **kwargs):
        timeout = kwargs.pop("wait_timeout", None)
        return self.wait_exec(self.start_exec(code, **kwargs), timeout=timeout)

    # --- files (version 3) ---

    def _fs_answer(self, frame_id, want_type=FS_REPLY):
        """The FS_REPLY for frame_id (CREDIT frames for it skipped); ERROR raises GuestError."""
        while True:
            f = self.recv(lambda f: f.id == frame_id)
            if f.type == CREDIT:
                continue
            if f.type == ERROR:
                e = f.json()
                raise GuestError(frame_id, e["code"], e["message"])
            if f.type != want_type:
                raise ProtocolError(f"expected {TYPE_NAMES[want_type]}, got {f}")
            return f

    def fs(self, op, path, frame_id=None, **fields):
        """stat/list/mkdir/move/remove: returns the reply's JSON."""
        frame_id = self.alloc_id() if frame_id is None else frame_id
        self.send(FS, frame_id, json.dumps({"op": op, "path": path, **fields}))
        return self._fs_answer(frame_id).json()

    def read_file(self, path):
        """Returns (entry, bytes), granting CREDIT as a host does once half the window is read."""
        frame_id = self.alloc_id()
        self.send(FS, frame_id, json.dumps({"op": "read", "path": path}))
        entry = self._fs_answer(frame_id).json()["entry"]
        data, unacked = bytearray(), 0
        while True:
            f = self._fs_answer(frame_id, DATA)
            data += f.payload
            unacked += len(f.payload)
            if f.flags & FLAG_FIN:
                break
            if unacked >= CREDIT_WINDOW // 2:
                self.send(CREDIT, frame_id, struct.pack(">I", unacked))
                unacked = 0
        if len(data) != entry["size"]:
            raise ProtocolError(f"read {len(data)} bytes of a {entry['size']}-byte file")
        return entry, bytes(data)

    def start_write(self, path, frame_id=None, **fields):
        frame_id = self.alloc_id() if frame_id is None else frame_id
        self.send(FS, frame_id, json.dumps({"op": "write", "path": path, **fields}))
        return frame_id

    def send_file_data(self, frame_id, data, fin=True):
        """DATA frames within the guest's credit (waiting for its CREDIT when out)."""
        credit, off = CREDIT_WINDOW, 0
        while True:
            chunk = data[off:off + MAX_DATA_CHUNK]
            while credit < len(chunk):
                f = self.recv(lambda f: f.id == frame_id)
                if f.type == ERROR:
                    self.pending.insert(0, f)  # for _fs_answer
                    return
                if f.type != CREDIT or len(f.payload) != 4:
                    raise ProtocolError(f"expected CREDIT, got {f}")
                credit += struct.unpack(">I", f.payload)[0]
            off += len(chunk)
            last = off >= len(data)
            self.send(DATA, frame_id, chunk, FLAG_FIN if fin and last else 0)
            credit -= len(chunk)
            if last:
                return

    def write_file(self, path, data, **fields):
        """Uploads data; returns the "written" JSON (path, size, sha256)."""
        frame_id = self.start_write(path, **fields)
        self.send_file_data(frame_id, data)
        return self._fs_answer(frame_id).json()["written"]
