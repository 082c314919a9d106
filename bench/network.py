#!/usr/bin/env python3
"""Network egress benchmark (issue 13): what a network policy costs a create, and what the
filtered path costs an HTTP request, against the release daemon and the test suite's own lab
"internet" (tests/e2e/netlab.py: a network namespace with DNS and HTTP servers behind a veth
pair; no packet leaves it).

    bench/network.py [--runs 20] [--big-mib 16] [--rate-mbit N] [--images DIR] [--no-save]

Phases, each with its own daemon (release bin/emberd, private port, private --run-dir under
/tmp; a VMM left behind fails the run):
  pool    emberd --pool-size 1 --prewarm: sequential creates without network, each taken from
          the pool once /healthz says it is full again (boot_mode must be "pool").
  net     emberd --pool-size 0 --prewarm and the lab's flags (--network-modes none,allowlist,open
          --egress-uplink <lab veth> --egress-dns <lab DNS> --egress-subnet 10.247.0.0/16): once
          the pack's template is ready, sequential creates without network and with
          {"mode": "allowlist", "allow": ["allowed.test"]} (boot_mode "clone" without network;
          with it "clone" or "cold", never "pool", and the report says which; the first
          networked create, which builds the NIC template, is not timed). Then, in one networked sandbox, a guest script times (guest
          clock, time.perf_counter) --runs of each: getaddrinfo of an allowed name (through the
          daemon's resolver to the lab's DNS) and of a name not allowed (NXDOMAIN from the
          daemon), an HTTP GET of http://allowed.test/ (lookup + connect + GET, a new connection
          each, as urllib does), the same by address, and the same against an HTTP server on
          the guest's own loopback (the baseline: no NIC, no host); then downloads of
          --big-mib MiB from the lab host (/big) and from the loopback server, MB/s.
Create latencies are client-side over persistent connections (bench/fastcreate.py's Client);
the rest is the guest's own timing, so the exec round trip is not in it. Bandwidth is capped by
the daemon's --egress-rate-mbit (default 100 Mbit/s each way; --rate-mbit passes another).
Prints one Markdown table (saved as bench/results/<date>-network.md unless --no-save). Exit status
0 when every measurement was taken, 1 on any error or leak; 0 with a line on stderr and no
report when the lab cannot run here (not root, no nftables or TUN: netlab.skip_reason()).

Coupling to the lab, kept small: netlab.skip_reason(), netlab.Lab() as a context manager,
lab.daemon_args(subnet) and lab.hosts["allowed.test"]; GET / of allowed.test answers "allowed",
/big?n=BYTES streams n bytes.
"""

import argparse
import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, BenchError, Daemon, expect, log,  # noqa: E402
                        percentile, run_and_report)

PACK = "python"
SUBNET = "10.247.0.0/16"
POLICY = {"mode": "allowlist", "allow": ["allowed.test"]}
# docs/network.md: restored from a template with a NIC, or booted cold; never pooled
NETWORKED_MODES = ("clone", "cold")
EXEC_TIMEOUT_MS = 600000
NETLAB = os.path.join(REPO, "tests", "e2e", "netlab.py")

# Runs in the networked guest; prints one JSON object of lists of milliseconds (and MB/s).
GUEST_SCRIPT = r'''
import http.server, json, socket, threading, time, urllib.request
RUNS, BIG, ADDR = {runs}, {big}, {addr!r}

class Loopback(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        n = BIG if self.path.startswith("/big") else 0
        body = b"loopback" if n == 0 else None
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) if body else n))
        self.end_headers()
        if body:
            self.wfile.write(body)
        chunk = bytes(65536)
        while n > 0:
            self.wfile.write(chunk[:min(n, len(chunk))])
            n -= len(chunk)
    def log_message(self, *a):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loopback)
threading.Thread(target=server.serve_forever, daemon=True).start()
local = "http://127.0.0.1:%d" % server.server_address[1]

def timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000

def get(url, want=None):
    def fetch():
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
        if want is not None and body != want:
            raise SystemExit("GET %s: %r" % (url, body[:100]))
    return fetch

def lookup(name, ok):
    def resolve():
        try:
            socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
        except socket.gaierror:
            if ok:
                raise
            return
        if not ok:
            raise SystemExit("%s resolved" % name)
    return resolve

def mbps(url):
    ms = timed(get(url))
    return BIG / 1e6 / (ms / 1000)

out = {{}}
rows = [("lookup allowed", lookup("allowed.test", True)),
        ("lookup refused", lookup("blocked.test", False)),
        ("get by name", get("http://allowed.test/", b"allowed")),
        ("get by address", get("http://%s/" % ADDR, b"allowed")),
        ("get loopback", get(local + "/", b"loopback"))]
for what, fn in rows:
    fn()
    out[what] = [timed(fn) for _ in range(RUNS)]
out["download lab"] = [mbps("http://allowed.test/big?n=%d" % BIG) for _ in range(3)]
out["download loopback"] = [mbps(local + "/big") for _ in range(3)]
print(json.dumps(out))
'''


def load_netlab(path):
    """tests/e2e/netlab.py as a module (it is not a package)."""
    spec = importlib.util.spec_from_file_location("netlab", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NetworkBench:
    def __init__(self, args, netlab):
        self.args = args
        self.netlab = netlab
        self.daemons = []
        self.tmp = None
        self.creates = {}   # row -> [ms]
        self.guest = {}     # guest script's lists
        self.rate = "100 (default)"
        self.boot_modes = {}   # create body -> the boot_modes seen

    def create(self, client, body, modes):
        """modes: the boot_modes this create may have."""
        status, sb, ms = client.call("POST", "/sandboxes", body)
        expect(status == 201, f"create {body}: {status} {sb}")
        expect(sb["boot_mode"] in modes,
               f"create {body}: boot_mode {sb['boot_mode']}, not {' or '.join(modes)}")
        self.boot_modes.setdefault(json.dumps(body, sort_keys=True), set()).add(sb["boot_mode"])
        return sb, ms

    def delete(self, client, sid):
        status, res, _ = client.call("DELETE", f"/sandboxes/{sid}")
        expect(status == 204, f"delete {sid}: {status} {res}")

    def timed_creates(self, d, row, body, modes, before=None):
        ms = []
        for _ in range(self.args.runs):
            if before:
                before()
            sb, t = self.create(d.client, body, modes)
            ms.append(t)
            self.delete(d.client, sb["id"])
        self.creates[row] = ms

    def pool_phase(self):
        d = Daemon(self, "pool", ["--pool-size", "1", "--prewarm"])
        full = (lambda h: h["pool"]["ready_by_pack"].get(PACK, 0) >= 1)
        log("pool: creates without network")
        self.timed_creates(d, "create, no network, pooled", {"language_pack": PACK}, ("pool",),
                           before=lambda: d.wait_health(full, "a full pool", 900))
        d.client.close()
        problems = d.stop()
        self.daemons.remove(d)
        expect(not problems, "; ".join(problems))

    def guest_phase(self, d, lab):
        body = {"language_pack": PACK, "network": POLICY}
        sb, _ = self.create(d.client, body, NETWORKED_MODES)
        try:
            script = GUEST_SCRIPT.format(runs=self.args.runs, big=self.args.big_mib << 20,
                                         addr=lab.hosts["allowed.test"])
            log("net: guest lookups, GETs and downloads")
            status, res, _ = d.client.call("POST", f"/sandboxes/{sb['id']}/exec",
                                           {"code": script, "timeout_ms": EXEC_TIMEOUT_MS})
            expect(status == 200 and res.get("exit_code") == 0,
                   f"guest script: {status} {json.dumps(res)[:2000]}")
            self.guest = json.loads(res["stdout"])
        finally:
            self.delete(d.client, sb["id"])

    def net_phase(self, lab):
        extra = ["--pool-size", "0", "--prewarm", *lab.daemon_args(SUBNET)]
        if self.args.rate_mbit is not None:
            extra += ["--egress-rate-mbit", str(self.args.rate_mbit)]
            self.rate = str(self.args.rate_mbit)
        d = Daemon(self, "net", extra)
        d.wait_health(lambda h: h["templates"]["ready"] >= 1 and h["templates"]["building"] == 0,
                      "the pack's template", 900)
        log("net: creates without network")
        self.timed_creates(d, "create, no network, clone", {"language_pack": PACK}, ("clone",))
        # The first networked create builds the template with a NIC (or boots cold): untimed.
        body = {"language_pack": PACK, "network": POLICY}
        status, sb, _ = d.client.call("POST", "/sandboxes", body)
        expect(status == 201, f"create {body}: {status} {sb}")
        self.delete(d.client, sb["id"])
        d.wait_health(lambda h: h["templates"]["building"] == 0, "the NIC template", 900)
        log("net: creates with network")
        self.timed_creates(d, "create, allowlist network", body, NETWORKED_MODES)
        self.guest_phase(d, lab)

    def measure(self):
        self.pool_phase()
        with self.netlab.Lab() as lab:
            self.net_phase(lab)

    def report(self, started):
        a = self.args
        out = [f"# Network egress benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs, load at end {os.getloadavg()[0]:.2f}, {a.runs} runs per "
               f"latency row; --egress-rate-mbit {self.rate}; the lab host is in a network "
               "namespace on this machine (tests/e2e/netlab.py), reached through the sandbox's "
               "TAP, its nftables table, the egress routing table, masquerade and a veth pair.",
               "", "| what | p50 ms | p99 ms | note |", "|---|---:|---:|---|"]
        notes = {
            "create, no network, pooled": "client-side; boot_mode pool",
            "create, no network, clone": "client-side; boot_mode clone",
            "create, allowlist network": "client-side; never pooled: a clone of the NIC "
                                         "template (or a cold boot), its TAP, nftables table, "
                                         "tc limits and resolver socket; boot_mode: {modes}",
            "lookup allowed": "guest getaddrinfo: daemon resolver, lab DNS (A and AAAA)",
            "lookup refused": "guest getaddrinfo of a name not allowed: NXDOMAIN from the "
                              "daemon, never forwarded",
            "get by name": "guest urllib GET http://allowed.test/: lookup + connect + GET",
            "get by address": "the same by address (already resolved: in the sandbox's set)",
            "get loopback": "baseline: the same GET to a server on the guest's loopback",
        }
        networked = json.dumps({"language_pack": PACK, "network": POLICY}, sort_keys=True)
        modes = ", ".join(sorted(self.boot_modes.get(networked, ()))) or "-"
        for row, ms in list(self.creates.items()) + [(k, self.guest.get(k, []))
                                                     for k in list(notes)[3:]]:
            out.append(f"| {row} | {percentile(ms, 0.5):.1f} | {percentile(ms, 0.99):.1f} | "
                       f"{notes[row].format(modes=modes)} |")
        out += ["", "| download, guest side | MB/s (best of 3) | median |", "|---|---:|---:|"]
        for row, what in (("download lab", f"{a.big_mib} MiB from the lab host (/big)"),
                          ("download loopback", f"{a.big_mib} MiB from the guest's loopback")):
            v = self.guest.get(row, [])
            out.append(f"| {what} | {max(v, default=float('nan')):.1f} | "
                       f"{percentile(v, 0.5):.1f} |")
        out += ["", "Guest-side rows are the guest's own clock around each call, so the exec "
                "round trip is not in them; under TCG the guest's CPU, not the host's filter, "
                "bounds most of them. Compare `get by name` with `get by address` for what a "
                "lookup through the daemon's resolver costs, and either with `get loopback` "
                "for what the NIC, the host's filter and the lab add."]
        return "\n".join(out) + "\n"

    def run(self):
        return run_and_report(self, "network bench", "nbx.", self.measure, "-network")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="samples per latency row (default 20)")
    p.add_argument("--big-mib", type=int, default=16,
                   help="MiB per download (default 16)")
    p.add_argument("--rate-mbit", type=int, default=None,
                   help="the daemon's --egress-rate-mbit (default: the daemon's, 100)")
    p.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    p.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    p.add_argument("--netlab", default=NETLAB, help="the lab module (default %(default)s)")
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args()
    if args.runs < 1 or args.big_mib < 1:
        p.error("--runs and --big-mib must be at least 1")
    if not os.path.exists(args.netlab):
        print(f"network bench: skipped: no lab module at {args.netlab}", file=sys.stderr)
        sys.exit(0)
    netlab = load_netlab(args.netlab)
    reason = netlab.skip_reason()
    if reason:
        print(f"network bench: skipped: {reason}", file=sys.stderr)
        sys.exit(0)
    sys.exit(NetworkBench(args, netlab).run())


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"network bench: {e}", file=sys.stderr)
        sys.exit(1)
