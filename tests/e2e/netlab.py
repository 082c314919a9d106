"""The network tests' own small "internet" (issue 13), built in a network namespace this process
creates and removes; nothing here sends a packet anywhere else.

    with netlab.Lab() as lab:
        daemon = harness.Daemon(*lab.daemon_args("10.77.0.0/16"))

A Lab is:
- namespace `embt-<pid>-<n>`, joined to the host by a veth pair: host side `embu<4 hex>`
  (lab.uplink, the daemon's --egress-uplink) with 198.18.<k>.1/24 (lab.uplink_addr), namespace
  side `veth0` with 198.18.<k>.2/24; k is the first /24 of 198.18.0.0/16 no interface uses
  (chosen under a lock file, so parallel labs never share one). Linux answers ARP on the veth for
  every address of the namespace (arp_ignore=0), so the daemon reaches them on-link.
- the namespace's `lo` holds the "public" addresses (lo, not a dummy interface: the kernel here
  may have no dummy driver; ARP answers for them on the veth all the same): 203.0.113.10
  (allowed.test, www.allowed.test, pypi.test), .20 (blocked.test), .30 (other.test), .53 (the
  DNS server), and 198.51.100.7 (reached by IP only). The namespace's only route is its
  connected 198.18.<k>.0/24 (no default route: the daemon masquerades sandbox traffic to
  198.18.<k>.1, and nothing in the namespace can send anywhere else, not even by mistake).
- one server process in the namespace (this file run as `serve`): DNS on 203.0.113.53:53/udp
  (A records below, CNAME for cname.test, TTL 1 for ttl.test, empty NOERROR for other types of
  known names, NXDOMAIN otherwise; every query name logged to a file: lab.dns_queries()) and
  HTTP on 203.0.113.10:80, .20:80, .30:80, 198.51.100.7:80 and 203.0.113.10:8080: GET / answers
  the server's name ("allowed", "blocked", "other", "ip-only", "allowed-8080"), /big?n=BYTES
  streams that many bytes, /simple/ is a PEP 503 index of one tiny wheel the lab builds
  (embtiny 0.1: `import embtiny; embtiny.VALUE == 42`), /packages/<wheel> serves it.

Teardown (also of a half-built lab) ends the server, deletes the namespace (which destroys the
veth pair) and the host side link if still there, and the temp directory. cleanup_stale()
removes the namespaces and links of labs whose process is gone. skip_reason() says why a lab
cannot run here (None when it can).

Who uses it: tests/e2e/test_netlab.py (the lab's self-test) and test_network.py.
What it never does: touch an interface, address or route it did not create, or add a route on
the host (the host side link's connected /24 is the only one, and goes with the link).
"""

import base64
import fcntl
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile

IP = shutil.which("ip") or "/usr/sbin/ip"
NFT = shutil.which("nft") or "/usr/sbin/nft"
PYTHON = "/usr/bin/python3"
LOCK_PATH = "/run/lock/emberd-netlab.lock"

DNS_ADDR = "203.0.113.53"
HOSTS = {"allowed.test": "203.0.113.10", "blocked.test": "203.0.113.20",
         "other.test": "203.0.113.30", "ip-only": "198.51.100.7"}
# name -> (address, ttl); cname.test is a CNAME to allowed.test (answered with both records)
DNS_A = {"allowed.test": ("203.0.113.10", 60), "www.allowed.test": ("203.0.113.10", 60),
         "blocked.test": ("203.0.113.20", 60),
         "other.test": ("203.0.113.30", 60), "pypi.test": ("203.0.113.10", 60),
         "ttl.test": ("203.0.113.30", 1)}
DNS_CNAME = {"cname.test": "allowed.test"}
# (address, port) -> the name GET / answers
HTTP_SERVERS = {("203.0.113.10", 80): "allowed", ("203.0.113.20", 80): "blocked",
                ("203.0.113.30", 80): "other", ("198.51.100.7", 80): "ip-only",
                ("203.0.113.10", 8080): "allowed-8080"}
PUBLIC_ADDRS = ["203.0.113.10", "203.0.113.20", "203.0.113.30", DNS_ADDR, "198.51.100.7"]
WHEEL_NAME = "embtiny-0.1-py3-none-any.whl"
START_TIMEOUT_S = 30

_counter = 0
_counter_lock = threading.Lock()


# --- what the host has -------------------------------------------------------------------

def skip_reason():
    """Why a Lab cannot be built on this machine, or None."""
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, veth, nftables)"
    if not os.path.exists(IP):
        return "no `ip` (iproute2) on this machine"
    if not os.path.exists(NFT):
        return "no `nft` (Debian package nftables) on this machine"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (the kernel lacks TUN/TAP)"
    try:
        r = subprocess.run([NFT, "list", "tables"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"nftables is not usable: `nft list tables`: {e}"
    if r.returncode != 0:
        return f"nftables is not usable: `nft list tables`: {r.stderr.strip()}"
    return None


def run(*args, check=True, netns=None):
    """Runs a command (in the namespace netns when given); returns its stdout."""
    argv = [IP, "netns", "exec", netns, *args] if netns else list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def ip(*args, check=True, netns=None):
    return run(IP, *args, check=check, netns=netns)


def namespaces():
    """Names of the machine's named network namespaces."""
    out = ip("netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def links():
    """{name: alias or ""} of the host's links."""
    found = {}
    for entry in json.loads(ip("-j", "link", "show") or "[]"):
        found[entry["ifname"]] = entry.get("ifalias", "")
    return found


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(predicate, timeout, what):
    """Polls predicate every 50 ms until it returns a true value (returned) or timeout s pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RuntimeError(f"netlab: timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _remove_namespace(name):
    """Kills what runs in namespace name and deletes it (its veth pair goes with it)."""
    for pid in ip("netns", "pids", name, check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    ip("netns", "del", name, check=False)


def cleanup_stale():
    """Removes `embt-<pid>-<n>` namespaces, `embu*` links (their alias names the lab) and
    /tmp/embt-<pid>-<n>.* directories of labs whose process is gone; returns the namespaces and
    links it removed."""
    removed = []
    for name, alias in links().items():
        m = re.fullmatch(r"embt-(\d+)-(\d+)", alias or "")
        if name.startswith("embu") and m and not pid_alive(int(m.group(1))):
            ip("link", "del", name, check=False)
            removed.append(name)
    for name in namespaces():
        m = re.fullmatch(r"embt-(\d+)-(\d+)", name)
        if m and not pid_alive(int(m.group(1))):
            _remove_namespace(name)
            removed.append(name)
    for entry in os.listdir("/tmp"):
        m = re.fullmatch(r"embt-(\d+)-(\d+)\.\w+", entry)
        if m and not pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join("/tmp", entry), ignore_errors=True)
    return removed


def processes_in_namespace(name):
    """PIDs running in the named namespace."""
    return [int(p) for p in ip("netns", "pids", name, check=False).split()]


# --- the wheel -----------------------------------------------------------------------------

def build_wheel():
    """The bytes of embtiny-0.1-py3-none-any.whl (purelib; RECORD with sha256 of every file)."""
    files = {
        "embtiny/__init__.py": b"VALUE = 42\n",
        "embtiny-0.1.dist-info/METADATA": (b"Metadata-Version: 2.1\nName: embtiny\n"
                                           b"Version: 0.1\nSummary: emberd's network lab "
                                           b"test wheel\n"),
        "embtiny-0.1.dist-info/WHEEL": (b"Wheel-Version: 1.0\nGenerator: netlab\n"
                                        b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("embtiny-0.1.dist-info/RECORD,,")
    files["embtiny-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


# --- the lab ---------------------------------------------------------------------------------

class Lab:
    """A namespace with DNS and HTTP servers behind a veth pair; a context manager."""

    def __init__(self):
        global _counter
        with _counter_lock:
            _counter += 1
            n = _counter
        self.name = f"embt-{os.getpid()}-{n}"
        self.uplink = None
        self.uplink_addr = None
        self.subnet_index = None
        self.dns_addr = DNS_ADDR
        self.hosts = dict(HOSTS)
        self.tmp = None
        self.server = None
        self.server_log = None
        self.built_namespace = False

    def __enter__(self):
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- building

    def build(self):
        reason = skip_reason()
        if reason:
            raise RuntimeError(f"netlab cannot run here: {reason}")
        cleanup_stale()
        self.tmp = tempfile.mkdtemp(prefix=self.name + ".", dir="/tmp")
        os.makedirs(LOCK_PATH.rsplit("/", 1)[0], exist_ok=True)
        with open(LOCK_PATH, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._build_links()
        self._start_server()

    def _free_subnet_index(self):
        used = set()
        for entry in json.loads(ip("-j", "-4", "addr", "show") or "[]"):
            for a in entry.get("addr_info", []):
                m = re.fullmatch(r"198\.18\.(\d+)\.\d+", a.get("local", ""))
                if m:
                    used.add(int(m.group(1)))
        for k in range(1, 255):
            if k not in used:
                return k
        raise RuntimeError("netlab: every 198.18.k.0/24 is in use")

    def _free_uplink_name(self):
        taken = links()
        seed = hashlib.sha256(self.name.encode()).hexdigest()
        for i in range(0, len(seed) - 4):
            name = "embu" + seed[i:i + 4]
            if name not in taken:
                return name
        raise RuntimeError("netlab: no free embu name")

    def _build_links(self):
        """Namespace, veth pair, addresses, routes; called under the lock file."""
        k = self._free_subnet_index()
        uplink = self._free_uplink_name()
        inner = "embv" + uplink[4:]
        ip("netns", "add", self.name)
        self.built_namespace = True
        ip("link", "add", uplink, "type", "veth", "peer", "name", inner)
        self.uplink = uplink
        ip("link", "set", uplink, "alias", self.name)
        ip("link", "set", inner, "netns", self.name)
        ns = self.name
        ip("link", "set", inner, "name", "veth0", netns=ns)
        ip("link", "set", "lo", "up", netns=ns)
        ip("addr", "add", f"198.18.{k}.2/24", "dev", "veth0", netns=ns)
        ip("link", "set", "veth0", "up", netns=ns)
        for addr in PUBLIC_ADDRS:  # on lo: this kernel may have no dummy driver
            ip("addr", "add", f"{addr}/32", "dev", "lo", netns=ns)
        ip("addr", "add", f"198.18.{k}.1/24", "dev", uplink)
        ip("link", "set", uplink, "up")
        self.subnet_index = k
        self.uplink_addr = f"198.18.{k}.1"

    def _start_server(self):
        wheel_path = os.path.join(self.tmp, WHEEL_NAME)
        with open(wheel_path, "wb") as f:
            f.write(build_wheel())
        self.dns_log = os.path.join(self.tmp, "dns-queries.log")
        ready = os.path.join(self.tmp, "ready")
        self.server_log = open(os.path.join(self.tmp, "server.log"), "ab")
        self.server = subprocess.Popen(
            [IP, "netns", "exec", self.name, PYTHON, os.path.abspath(__file__), "serve",
             self.tmp], stdin=subprocess.DEVNULL, stdout=self.server_log,
            stderr=self.server_log, start_new_session=True)

        def up():
            if self.server.poll() is not None:
                raise RuntimeError(f"netlab: the server exited ({self.server.returncode}):\n"
                                   + self.server_output())
            return os.path.exists(ready)

        wait_until(up, START_TIMEOUT_S, "the lab's DNS and HTTP servers")

    # -- what tests use

    def daemon_args(self, subnet):
        """emberd's arguments for a daemon whose sandboxes egress through this lab."""
        return ["--network-modes", "none,allowlist,open", "--egress-uplink", self.uplink,
                "--egress-dns", self.dns_addr, "--egress-subnet", subnet]

    def dns_queries(self):
        """Names (lower case, no trailing dot) the lab's DNS server was asked, in order."""
        try:
            with open(self.dns_log) as f:
                return [line.split()[0] for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def clear_dns_queries(self):
        with open(self.dns_log, "w"):
            pass

    def server_output(self):
        try:
            with open(os.path.join(self.tmp, "server.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def netns_run(self, *argv, timeout=60):
        """Runs argv in the lab's namespace; returns the CompletedProcess."""
        return subprocess.run([IP, "netns", "exec", self.name, *argv], capture_output=True,
                              text=True, timeout=timeout)

    # -- teardown

    def close(self):
        """Removes everything this lab made; safe on a half-built lab and twice."""
        if self.server is not None:
            if self.server.poll() is None:
                os.killpg(self.server.pid, signal.SIGTERM)
                try:
                    self.server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.server.pid, signal.SIGKILL)
                    self.server.wait()
            self.server = None
        if self.server_log is not None:
            self.server_log.close()
            self.server_log = None
        # The host side first: deleting it removes its peer at once, while a namespace's
        # devices go in the kernel's own time after `ip netns del`.
        if self.uplink is not None:
            if self.uplink in links():
                ip("link", "del", self.uplink, check=False)
            self.uplink = None
        if self.built_namespace:
            _remove_namespace(self.name)
            self.built_namespace = False
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


# --- clients (for the self-test; from the host they go out by the uplink only) -------------

def bound_socket(kind, device, timeout):
    """A socket that can only send through device (SO_BINDTODEVICE), or any when None."""
    sock = socket.socket(socket.AF_INET, kind)
    sock.settimeout(timeout)
    if device:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    return sock


def dns_query(name, qtype=1, server=DNS_ADDR, device=None, timeout=5):
    """Asks server for name; returns (rcode, [(type, ttl, data)]): data is the address of an A
    record, the target name of a CNAME, the raw bytes otherwise."""
    ident = os.getpid() & 0xFFFF
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + encode_name(name) + \
        struct.pack("!HH", qtype, 1)
    with bound_socket(socket.SOCK_DGRAM, device, timeout) as sock:
        sock.sendto(packet, (server, 53))
        reply = sock.recv(4096)
    _, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    offset = 12
    for _ in range(qd):
        offset = dns_name(reply, offset)[1] + 4
    records = []
    for _ in range(an):
        offset = dns_name(reply, offset)[1]
        rtype, _, ttl, length = struct.unpack("!HHIH", reply[offset:offset + 10])
        offset += 10
        data = reply[offset:offset + length]
        if rtype == 1:
            data = socket.inet_ntoa(data)
        elif rtype == 5:
            data = dns_name(reply, offset)[0]
        records.append((rtype, ttl, data))
        offset += length
    return flags & 0xF, records


def http_get(addr, port=80, path="/", host=None, device=None, timeout=5):
    """One HTTP/1.0 GET; returns (status, body bytes)."""
    with bound_socket(socket.SOCK_STREAM, device, timeout) as sock:
        sock.connect((addr, port))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host or addr}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# --- the servers (run inside the namespace: `netlab.py serve DIR`) --------------------------

def dns_name(packet, offset):
    """Reads a (possibly compressed) name; returns (lower-case name, offset after it)."""
    labels, end, jumps = [], None, 0
    while True:
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            jumps += 1
            if jumps > 20:
                raise ValueError("compression loop")
            continue
        offset += 1
        if length == 0:
            break
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels).lower(), (end if end is not None else offset)


def encode_name(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_answer(query):
    """The reply to one query packet, and the query's (name, type) for the log."""
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    name, end = dns_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[end:end + 4])
    question = query[12:end + 4]
    answers = []
    target = name
    if name in DNS_CNAME:
        target = DNS_CNAME[name]
        answers.append(b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, len(encode_name(target)))
                       + encode_name(target))
    known = target in DNS_A
    if known and qtype in (1, 255):
        addr, ttl = DNS_A[target]
        owner = b"\xc0\x0c" if target == name else encode_name(target)
        answers.append(owner + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(addr))
    rcode = 0 if known else 3
    rd = flags & 0x0100
    header = struct.pack("!HHHHHH", ident, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1,
                         len(answers), 0, 0)
    return header + question + b"".join(answers), (name, qtype)


def serve_dns(directory, log_lock):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((DNS_ADDR, 53))
    log_path = os.path.join(directory, "dns-queries.log")

    def loop():
        while True:
            packet, peer = sock.recvfrom(4096)
            try:
                reply, (name, qtype) = dns_answer(packet)
            except (ValueError, IndexError, struct.error) as e:
                print(f"dns: bad query from {peer}: {e}", file=sys.stderr, flush=True)
                continue
            with log_lock, open(log_path, "a") as f:
                f.write(f"{name or '.'} {qtype} {peer[0]}\n")
            sock.sendto(reply, peer)

    threading.Thread(target=loop, daemon=True).start()


class LabHTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "netlab/1"
    wheel = b""

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        digest = hashlib.sha256(self.wheel).hexdigest()
        if path == "/":
            self.reply(200, self.server.lab_name.encode())
        elif path == "/big":
            self.stream(int(urllib.parse.parse_qs(url.query).get("n", ["1048576"])[0]))
        elif path in ("/simple", "/simple/"):
            self.reply(200, b'<!DOCTYPE html><html><body><a href="embtiny/">embtiny</a>'
                       b"</body></html>", "text/html")
        elif path in ("/simple/embtiny", "/simple/embtiny/"):
            link = f"/packages/{WHEEL_NAME}#sha256={digest}"
            self.reply(200, (f'<!DOCTYPE html><html><body><a href="{link}">{WHEEL_NAME}</a>'
                             "</body></html>").encode(), "text/html")
        elif path == f"/packages/{WHEEL_NAME}":
            self.reply(200, self.wheel, "application/octet-stream")
        else:
            self.reply(404, b"not found")

    def stream(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        chunk = b"\0" * 65536
        while n > 0 and self.command != "HEAD":
            self.wfile.write(chunk[:min(n, len(chunk))])
            n -= len(chunk)


class LabHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A TCPServer, not an http.server.HTTPServer: that one's server_bind does a reverse DNS
    lookup (socket.getfqdn) through the machine's resolver, a packet this lab must never
    send."""
    daemon_threads = True
    allow_reuse_address = True


def serve(directory):
    """The namespace's servers; writes DIR/ready once every socket is bound, then runs until
    killed."""
    with open(os.path.join(directory, WHEEL_NAME), "rb") as f:
        LabHTTPHandler.wheel = f.read()
    serve_dns(directory, threading.Lock())
    for (addr, port), name in HTTP_SERVERS.items():
        server = LabHTTPServer((addr, port), LabHTTPHandler)
        server.lab_name = name
        threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(os.path.join(directory, "ready"), "w") as f:
        f.write(f"{os.getpid()}\n")
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        serve(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "query":
        print(json.dumps(dns_query(sys.argv[2])))
    elif len(sys.argv) == 2 and sys.argv[1] == "cleanup":
        print("\n".join(cleanup_stale()))
    else:
        sys.exit("usage: netlab.py serve DIR | query NAME | cleanup")
