# forkserver.py - emberd's warm interpreter for plain python execs (docs/guest.md "Fork server").
# Started by the guest agent (src/guest/forkserver.c) as root, in its own session, with the
# agent's end of a SOCK_SEQPACKET socketpair as fd 3:
#   python3 -s forkserver.py NOFILE FSIZE NICE
# It sends b"ready" once its modules are imported, then serves one request at a time:
#   request: b"emberfs1\0CODE\0CWD\0CHANGE_IDS\0UID\0GID\0MAX_PROCESSES\0N\0ENV1\0..ENVN\0"
#            with SCM_RIGHTS [stdin, stdout, stderr, go pipe read end]
#   reply:   b"PID ERRNO STEP" (ERRNO 0 and STEP "-" when the child is ready and waits for go;
#            PID 0 when the server could not fork, STEP "request" for a malformed request)
# Each request double-forks: the exec's process is reparented to the agent (PID 1 or a
# subreaper), which moves it into the exec's cgroup and then writes one byte to the go pipe; no
# user code runs before that byte (EOF instead: the child exits). The child sets itself up like
# src/guest/spawn.c does for `python3 FILE` and then runs FILE like python3 would. It never
# runs user code in this process, and never reads anything but the agent's socket.
# The server's own needs: the C modules only (signal and socket import enum, which costs
# ~160 ms at start-up under TCG).
import _signal as signal
import _socket as socket
import gc
import os
import resource
import sys

# What a plain exec often imports: already imported, each exec's fork starts with them (a
# module-level change made by one exec is never seen by the next: each is a new fork).
import collections  # noqa: F401
import datetime  # noqa: F401
import functools  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import random  # noqa: F401  (reseeds itself in every fork: os.register_at_fork)
import re  # noqa: F401
import time  # noqa: F401

MAGIC = b"emberfs1"
REQUEST_MAX = 256 * 1024
FDS = 4
SERVER_FILE = __file__


class SetupError(Exception):
    def __init__(self, step, errnum):
        super().__init__(step)
        self.step = step
        self.errnum = errnum


def parse_request(msg):
    parts = msg.split(b"\0")
    if len(parts) < 9 or parts[0] != MAGIC or parts[-1] != b"":
        raise ValueError("malformed request")
    code, cwd = os.fsdecode(parts[1]), os.fsdecode(parts[2])
    change_ids = parts[3] == b"1"
    uid, gid, max_processes, count = (int(p) for p in parts[4:8])
    env = parts[8:-1]
    if count != len(env) or not code.startswith("/") or not cwd:
        raise ValueError("malformed request")
    return code, cwd, change_ids, uid, gid, max_processes, env


def setup_child(req, fds, status_w, limits):
    """In the grandchild: everything spawn.c does before execve, as the exec's user."""
    code, cwd, change_ids, uid, gid, max_processes, env = req
    nofile, fsize, nice = limits
    step = "setsid"
    try:
        os.setsid()
        step = "set up stdin/stdout/stderr"
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        step = "close inherited descriptors"
        keep = sorted({0, 1, 2, fds[3], status_w})
        low = 3
        for fd in keep:
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, 65536)
        step = "set resource limits"
        for res, value in ((resource.RLIMIT_NPROC, max_processes),
                           (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_CORE, 0),
                           (resource.RLIMIT_FSIZE, fsize)):
            resource.setrlimit(res, (value, value))
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        if change_ids:
            step = "drop supplementary groups"
            os.setgroups([])
            step = "setgid"
            os.setresgid(gid, gid, gid)
            step = "setuid"
            os.setresuid(uid, uid, uid)
            step = "verify the dropped credentials"
            if (os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or
                    os.getgroups()):
                raise PermissionError(1, "credentials not dropped")
            if uid != 0:
                try:
                    os.setuid(0)
                except PermissionError:
                    pass
                else:
                    raise PermissionError(1, "setuid(0) succeeded")
        step = "chdir to the working directory"
        os.chdir(cwd)
        # no_new_privs: inherited from the server (set before its execve, forkserver.c).
        step = "set the niceness"
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as e:
        raise SetupError(step, e.errno or 1) from None


def reset_signals():
    """Dispositions and mask as a fresh python3 has them."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def replace_environment(env):
    os.environ.clear()
    for entry in env:
        name, sep, value = entry.partition(b"=")
        if sep and name:
            os.environb[name] = value


def add_user_site():
    """What `python3 FILE` would add for the exec's user (the server runs with -s: as root, it
    must never process a .pth file the sandbox user can write)."""
    import site
    site.ENABLE_USER_SITE = True
    site.USER_BASE = None
    site.USER_SITE = None
    path = site.getusersitepackages()
    if os.path.isdir(path):
        site.addsitedir(path)


def exit_code_of(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def print_uncaught(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == SERVER_FILE:
        tb = tb.tb_next
    exc.__traceback__ = tb
    try:
        sys.excepthook(type(exc), exc, tb)
    except BaseException:
        sys.__excepthook__(type(exc), exc, tb)


def finish(code, interrupted):
    """Py_FinalizeEx's visible part: threads, atexit, flushing; then _exit."""
    if "threading" in sys.modules:
        try:
            sys.modules["threading"]._shutdown()
        except BaseException:
            pass
    import atexit
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BaseException:
        if code == 0:
            code = 120
    try:
        sys.stderr.flush()
    except BaseException:
        pass
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def run_main(path):
    """Runs path like `python3 path`: a fresh __main__, SystemExit and uncaught exceptions."""
    import builtins
    main = type(sys)("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = builtins
    main.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
    main.__spec__ = None
    sys.modules["__main__"] = main
    sys.argv = [path]
    sys.orig_argv = [sys.executable, path]
    sys.path[0] = os.path.dirname(path)
    code, interrupted = 0, False
    try:
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
    except SystemExit as e:
        code = exit_code_of(e)
    except BaseException as e:
        print_uncaught(e)
        code = 1
        interrupted = isinstance(e, KeyboardInterrupt)
    finish(code, interrupted)


def grandchild(sock, request, fds, status_w, limits):
    go = fds[3]
    try:
        try:
            req = parse_request(bytes(request))
        except ValueError:
            raise SetupError("request", 22) from None
        setup_child(req, fds, status_w, limits)
        sock.detach()  # fd 3 is closed: the object must never close a number user code reuses
    except SetupError as e:
        os.write(status_w, b"%d %d %s" % (os.getpid(), e.errnum, e.step.encode()))
        os._exit(127)
    except BaseException:
        os.write(status_w, b"%d 5 child" % os.getpid())
        os._exit(127)
    os.write(status_w, b"%d 0 -" % os.getpid())
    os.close(status_w)
    try:
        ok = os.read(go, 1) == b"g"
    except OSError:
        ok = False
    if not ok:
        os._exit(0)
    os.close(go)
    for fd in fds[:3]:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
    reset_signals()
    replace_environment(req[6])
    add_user_site()
    run_main(req[0])


def serve_one(sock, request, fds, limits):
    """Double-forks one exec; returns the reply. The request is parsed in the grandchild only:
    no object of the server ever holds an exec's environment (main() zeroes the buffer), so no
    later fork inherits one exec's variables in its memory."""
    status_r, status_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(status_r)
            if os.fork() == 0:
                grandchild(sock, request, fds, status_w, limits)
        except OSError as e:
            os.write(status_w, b"0 %d fork" % (e.errno or 5))
        finally:
            os._exit(0)
    os.close(status_w)
    os.waitpid(middle, 0)
    data = b""
    while True:
        chunk = os.read(status_r, 256)
        if not chunk:
            break
        data += chunk
        if len(data) > 256:
            break
    os.close(status_r)
    # The grandchild writes "PID ERRNO STEP" in one write (the middle one only if its fork failed).
    return data if data else b"0 5 child"


def main():
    limits = tuple(int(a) for a in sys.argv[1:4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(3, False)
    sock = socket.socket(fileno=3)
    # What is imported now is shared (copy-on-write) by every fork: keep the collector away.
    gc.collect()
    gc.freeze()
    sock.send(b"ready")
    buf = bytearray(REQUEST_MAX)
    while True:
        n, anc, _flags, _addr = sock.recvmsg_into([buf], socket.CMSG_SPACE(FDS * 4))
        if n == 0:
            return
        fds = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(int.from_bytes(data[i:i + 4], sys.byteorder)
                           for i in range(0, len(data) - len(data) % 4, 4))
        try:
            if len(fds) != FDS:
                reply = b"0 22 request"
            else:
                reply = serve_one(sock, memoryview(buf)[:n], fds, limits)
        except OSError as e:
            reply = b"0 %d fork" % (e.errno or 5)
        finally:
            buf[:n] = bytes(n)
        for fd in fds:
            os.close(fd)
        sock.send(reply)


if __name__ == "__main__":
    main()
