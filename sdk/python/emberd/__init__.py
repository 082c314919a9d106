"""emberd: the Python SDK of the emberd daemon (sandboxes in microVMs).

    from emberd import Sandbox

    with Sandbox.create(pack="python") as sb:
        print(sb.exec("print(6 * 7)").stdout)

The daemon is found through EMBERD_ADDR (``127.0.0.1:7777`` by default, ``unix:/path`` for its
Unix socket) and its bearer token through EMBERD_TOKEN_FILE, as emberctl finds them; or pass a
Client(addr=..., token=...) as ``client=``. Standard library only.
"""

from .client import Address, Client, default_client, parse_addr
from .errors import (ERROR_CLASSES, Capacity, Conflict, ConnectionFailed, EmberdError, Forbidden,
                     GuestFailed, GuestProtocol, GuestTimeout, InsufficientStorage, Internal,
                     InvalidArgument, MethodNotAllowed, MisdirectedRequest, NotFound, TooLarge,
                     Unauthorized, Unavailable)
from .files import FileReader, Files, FileWriter
from .models import CodeError, Event, ExecResult, FileEntry, RichResult, WrittenFile
from .processes import Process, Processes
from .sandbox import Context, Sandbox
from .stream import ExecStream

__version__ = "0.1.0"

__all__ = [
    "Address", "Capacity", "Client", "CodeError", "Conflict", "ConnectionFailed", "Context",
    "ERROR_CLASSES", "EmberdError", "Event", "ExecResult", "ExecStream", "FileEntry",
    "FileReader", "FileWriter", "Files", "Forbidden", "GuestFailed", "GuestProtocol",
    "GuestTimeout", "InsufficientStorage", "Internal", "InvalidArgument", "MethodNotAllowed",
    "MisdirectedRequest", "NotFound", "Process", "Processes", "RichResult", "Sandbox",
    "TooLarge", "Unauthorized", "Unavailable", "WrittenFile", "default_client", "parse_addr",
]
