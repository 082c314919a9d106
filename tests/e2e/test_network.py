"""End-to-end tests of network egress (issue 13, docs/network.md): sandboxes with a NIC whose
traffic the host filters, against the lab of tests/e2e/netlab.py (a namespace with DNS and HTTP
servers behind a veth: the daemon's --egress-uplink and --egress-dns). No packet goes anywhere
but into the namespaces the lab creates.

Guest code is Python run by POST /sandboxes/{id}/exec; every probe in the guest has a short
timeout (5 s) and the tests assert what got through, never how fast.

- NetworkTest: one lab and one daemon (modes none,allowlist,open); mode none has no NIC;
  allowlist (domain, CNAME, port rule, CIDR), NXDOMAIN for other names without asking the lab's
  DNS, the always-blocked set (metadata, the host's uplink and the sandbox's gateway address,
  other sandboxes), open mode and its deny list, PATCH, counters, DELETE and a killed VMM leave
  no tap or nft table, pip install from the lab's index, and every bad input (400 naming the
  field).
- NetworkRestartTest: the policy survives a restart (--keep-sandboxes); SIGKILL of the daemon
  and a restart keeps the live sandbox's network and removes the taps and tables of a sandbox
  whose VMM died and of one whose record was lost.
- NetworkModesTest: `open` on a daemon with --network-modes none,allowlist → 400.
- NoUplinkTest: a networked create on the default daemon (modes: none) → 400 naming
  network.mode; on a daemon with the modes but without --egress-uplink → 400 saying how.
- FirecrackerNetworkTest (--vmm firecracker, tests/fakes/firecracker, --no-jail) and
  FirecrackerJailedNetworkTest (under tests/fakes/jailer, the VM's own uid): a cold boot, the
  TAP persistent and owned by the VMM's uid, PUT /network-interfaces/eth0 naming it before
  InstanceStart, an allowlisted fetch works and another address is blocked, DELETE (also after
  SIGKILL of the VMM) leaves no TAP emb<tag>s* and no table; unjailed also: a restarted daemon
  adopts the persistent TAP and deletes it, and the startup sweep deletes a stray persistent TAP
  of its subnet only.

Skips (reason printed) only where netlab.skip_reason() says the lab cannot run.
"""

import concurrent.futures
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netlab  # noqa: E402

SKIP = netlab.skip_reason()
if SKIP:
    print(f"\ntest_network skipped: {SKIP}", file=sys.stderr)

PROBE_TIMEOUT_S = 5  # what must not get through is given this long
REACH_TIMEOUT_S = 30  # what must get through: a slow TCG guest on a loaded host gets this long
EXEC_TIMEOUT_MS = 240000
PIP_TIMEOUT_MS = 540000

# Defined in the guest before each probe expression; every probe returns a JSON-able dict.
GUEST_HELPERS = r'''
import json, socket, urllib.request
T = %d
def fetch(url, t=T):
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=t) as r:
            body = r.read()
            return {"ok": True, "status": r.status, "body": body.decode(errors="replace")[:200],
                    "size": len(body)}
    except Exception as e:
        reason = getattr(e, "reason", e)
        return {"ok": False, "error": type(e).__name__, "detail": str(e),
                "nxdomain": isinstance(reason, socket.gaierror)
                            and reason.errno == socket.EAI_NONAME}
def resolve(name):
    try:
        infos = socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)
        return {"ok": True, "addrs": sorted({i[4][0] for i in infos})}
    except socket.gaierror as e:
        return {"ok": False, "errno": e.errno, "nxdomain": e.errno == socket.EAI_NONAME,
                "detail": str(e)}
def connect(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(T)
    try:
        s.connect((addr, port))
        return {"ok": True}
    except Exception as e:
        return {"ok": False, "error": type(e).__name__, "detail": str(e)}
    finally:
        s.close()
''' % PROBE_TIMEOUT_S


wait_for = harness.wait_for


def nft_tables():
    r = subprocess.run([netlab.NFT, "list", "tables"], capture_output=True, text=True,
                       timeout=60)
    return r.stdout.split("\n")


def subnet_tag(subnet):
    """The four hex digits the daemon's names carry (docs/network.md): 16 bits of FNV-1a over
    the subnet's text "A.B.C.D/N", as src/net/egress.c computes them. Computed here
    independently, so a daemon that named things otherwise fails the tests instead of being
    looked for under its own names."""
    h = 2166136261
    for byte in str(ipaddress.ip_network(subnet)).encode():
        h = ((h ^ byte) * 16777619) & 0xffffffff
    return f"{(h ^ (h >> 16)) & 0xffff:04x}"


def table_name(sandbox_id, subnet):
    return f"emberd_{subnet_tag(subnet)}_{sandbox_id}"


def has_table(sandbox_id, subnet):
    name = table_name(sandbox_id, subnet)
    return any(line.split()[-1:] == [name] for line in nft_tables() if line.strip())


def host_addresses():
    """{address: link} of every IPv4 address on the host."""
    found = {}
    for entry in json.loads(netlab.ip("-j", "-4", "addr", "show") or "[]"):
        for a in entry.get("addr_info", []):
            found[a["local"]] = entry["ifname"]
    return found


def tap_name(sb, subnet):
    """emb<tag>s<slot>: the slot is the index of the sandbox's /30 in the daemon's subnet."""
    net = ipaddress.ip_network(subnet)
    slot = (int(ipaddress.ip_address(sb["network"]["address"])) - int(net.network_address)) // 4
    return f"emb{subnet_tag(subnet)}s{slot}"


class HostListener:
    """A TCP listener on the host at addr:port (an address of the host's own) that counts the
    connections it accepts: a blocked destination must see none."""

    def __init__(self, addr, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.addr, self.port = self.sock.getsockname()
        self.accepted = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


class NetworkChecks(unittest.TestCase):
    """Probes and leak checks shared by the classes below; self.d is the daemon unless d= says
    otherwise."""
    d = None
    subnet = None  # 10.<x>.0.0/16, unique per class

    @staticmethod
    def assert_no_global_state(subnet):
        """After the daemon is gone: no rule for its subnet or mark, no global nft table, no
        address of the subnet on any link."""
        mark = f"0x656d{subnet_tag(subnet)}"
        rules = netlab.ip("rule", "show")
        if subnet in rules or mark in rules:
            raise AssertionError(f"ip rules for {subnet} left behind:\n{rules}")
        tables = [t for t in nft_tables() if f"emberd_g{mark[2:]}" in t or
                  f"emberd_{subnet_tag(subnet)}_" in t]
        if tables:
            raise AssertionError(f"nft tables of the daemon left behind: {tables}")
        net = ipaddress.ip_network(subnet)
        left = {a: link for a, link in host_addresses().items()
                if ipaddress.ip_address(a) in net}
        if left:
            raise AssertionError(f"addresses of {subnet} left on links: {left}")

    # --- helpers

    def create(self, network=None, pack="python", d=None):
        d = d or self.d
        fields = {"language_pack": pack}
        if network is not None:
            fields["network"] = network
        sb = d.create(**fields)
        self.addCleanup(self.delete_quietly, d, sb["id"])
        return sb

    @staticmethod
    def delete_quietly(d, sandbox_id):
        if d.proc is not None and d.proc.poll() is None:
            d.delete(sandbox_id)

    def probe(self, sb, expr, d=None):
        """Runs GUEST_HELPERS then prints json of expr in the sandbox; returns the value."""
        d = d or self.d
        status, res, _ = d.exec(sb["id"], GUEST_HELPERS + f"print(json.dumps({expr}))",
                                timeout_ms=EXEC_TIMEOUT_MS)
        self.assertEqual(status, 200, res)
        self.assertEqual(res["exit_code"], 0, res)
        return json.loads(res["stdout"].strip().splitlines()[-1])

    def get(self, sb, d=None):
        status, body, _ = (d or self.d).request("GET", f"/sandboxes/{sb['id']}")
        self.assertEqual(status, 200, body)
        return body

    def assert_reaches(self, sb, url, body, d=None):
        got = self.probe(sb, f"fetch({url!r}, {REACH_TIMEOUT_S})", d)
        self.assertTrue(got["ok"], f"{url}: {got}")
        self.assertEqual(got["body"], body, got)

    def assert_blocked(self, sb, addr, port, d=None):
        got = self.probe(sb, f"connect({addr!r}, {port})", d)
        self.assertFalse(got["ok"], f"{addr}:{port} was reachable")

    def assert_nxdomain(self, sb, name, d=None):
        got = self.probe(sb, f"resolve({name!r})", d)
        self.assertFalse(got["ok"], f"{name} resolved: {got}")
        self.assertTrue(got["nxdomain"], got)

    def assert_network_gone(self, sb, subnet):
        """No nft table of the sandbox, no tap of its slot, its gateway address on no link."""
        self.assertFalse(has_table(sb["id"], subnet), nft_tables())
        self.assertNotIn(tap_name(sb, subnet), netlab.links())
        self.assertNotIn(sb["network"]["gateway"], host_addresses())

    def assert_invalid(self, status, body, mentions):
        """A 400 whose message names every string of mentions. The code is the API's
        `invalid_argument` (docs/api.md; the issue's brief said invalid_request)."""
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_argument", body)
        for text in mentions:
            self.assertIn(text, body["error"]["message"])


class LabDaemonCase(NetworkChecks):
    """One lab and one daemon on it per class; both go even when a test (or the daemon's start)
    fails."""
    modes = "none,allowlist,open"

    @classmethod
    def setUpClass(cls):
        cls.lab = netlab.Lab().__enter__()
        try:
            args = cls.lab.daemon_args(cls.subnet)
            args[args.index("--network-modes") + 1] = cls.modes
            cls.d = harness.Daemon("--max-sandboxes", "8", *args)
        except BaseException:
            cls.lab.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
            cls.assert_no_global_state(cls.subnet)
        finally:
            cls.lab.close()


@unittest.skipIf(SKIP, SKIP)
class NetworkTest(LabDaemonCase):
    subnet = "10.211.0.0/16"

    # --- mode none

    def test_mode_none_has_no_nic(self):
        plain = self.create()
        explicit = self.create({"mode": "none"})
        for sb in (plain, explicit):
            self.assertEqual(sb["network"], {"mode": "none"})
            self.assertEqual(self.get(sb)["network"], {"mode": "none"})
            got = self.probe(sb, "sorted(__import__('os').listdir('/sys/class/net'))")
            self.assertEqual(got, ["lo"])
        status, body, _ = self.d.request("GET", "/sandboxes")
        listed = {s["id"]: s for s in body["sandboxes"]}
        self.assertEqual(listed[plain["id"]]["network"], {"mode": "none"})

    # --- allowlist

    def test_allowlisted_domain_reachable_and_nothing_else(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        net = sb["network"]
        self.assertEqual((net["mode"], net["allow"], net["deny"]),
                         ("allowlist", ["allowed.test"], []))
        block = ipaddress.ip_network(net["address"] + "/30", strict=False)
        self.assertTrue(block.subnet_of(ipaddress.ip_network(self.subnet)), block)
        self.assertEqual(net["address"], str(block.network_address + 2))
        self.assertEqual(net["gateway"], str(block.network_address + 1))
        for counter in ("rx_bytes", "tx_bytes", "dropped"):
            self.assertIsInstance(net[counter], int)
        self.assertEqual(self.get(sb)["network"]["address"], net["address"])
        # the guest's view: eth0 configured by the agent, the gateway its only resolver
        got = self.probe(sb, "(sorted(__import__('os').listdir('/sys/class/net')), "
                             "open('/etc/resolv.conf').read())")
        self.assertEqual(got[0], ["eth0", "lo"])
        self.assertEqual(re.findall(r"^nameserver\s+(\S+)", got[1], re.M), [net["gateway"]])

        self.lab.clear_dns_queries()
        self.assert_reaches(sb, "http://allowed.test/", "allowed")
        self.assertIn("allowed.test", self.lab.dns_queries())
        # a name not on the list: NXDOMAIN from the daemon, never asked upstream
        self.assert_nxdomain(sb, "blocked.test")
        self.assert_nxdomain(sb, "other.test")
        self.assert_nxdomain(sb, "sub.allowed.test")  # a plain name is not a wildcard
        got = self.probe(sb, "fetch('http://blocked.test/')")
        self.assertTrue(got["nxdomain"], got)
        asked = self.lab.dns_queries()
        for name in ("blocked.test", "other.test", "sub.allowed.test"):
            self.assertNotIn(name, asked)
        # addresses never resolved under an allowed name: not even the lab's other servers
        self.assert_blocked(sb, "198.51.100.7", 80)
        self.assert_blocked(sb, "203.0.113.20", 80)
        self.assert_blocked(sb, "203.0.113.53", 53)  # the lab's DNS server, directly (TCP)
        # a name without a port allows every port of its addresses
        got = self.probe(sb, f"fetch('http://allowed.test:8080/', {REACH_TIMEOUT_S})")
        self.assertTrue(got["ok"], got)
        self.assertEqual(got["body"], "allowed-8080")

    def test_cname_when_both_names_allowed(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test", "cname.test"]})
        self.assert_reaches(sb, "http://cname.test/", "allowed")
        self.assertEqual(self.probe(sb, "resolve('cname.test')"),
                         {"ok": True, "addrs": ["203.0.113.10"]})

    def test_port_rule_and_cidr_rule(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test:8080", "198.51.100.7"]})
        self.assertEqual(sb["network"]["allow"], ["allowed.test:8080", "198.51.100.7"])
        self.assert_reaches(sb, "http://allowed.test:8080/", "allowed-8080")
        got = self.probe(sb, "fetch('http://allowed.test/')")
        self.assertFalse(got["ok"], got)
        self.assertFalse(got["nxdomain"], got)  # the name resolves; port 80 is not allowed
        self.assert_reaches(sb, "http://198.51.100.7/", "ip-only")
        self.assert_blocked(sb, "203.0.113.30", 80)

    def test_wildcard_is_strictly_below(self):
        sb = self.create({"mode": "allowlist", "allow": ["*.allowed.test"]})
        self.assert_reaches(sb, "http://www.allowed.test/", "allowed")
        self.assert_nxdomain(sb, "allowed.test")

    # --- the always-blocked set

    def test_open_mode_reaches_the_lab_but_never_the_blocked_set(self):
        sb = self.create({"mode": "open"})
        self.assertEqual(sb["network"]["mode"], "open")
        for name, body in (("allowed.test", "allowed"), ("blocked.test", "blocked"),
                           ("other.test", "other")):
            self.assert_reaches(sb, f"http://{name}/", body)
        self.assert_reaches(sb, "http://198.51.100.7/", "ip-only")
        self.assert_reaches(sb, "http://203.0.113.30/", "other")
        self.assert_nxdomain(sb, "nowhere.test")  # the lab's NXDOMAIN comes through
        gateway = sb["network"]["gateway"]
        before = self.get(sb)["network"]["dropped"]
        listeners = [HostListener(self.lab.uplink_addr), HostListener(gateway)]
        try:
            for listener in listeners:
                self.assert_blocked(sb, listener.addr, listener.port)
            for addr in ("169.254.169.254", self.lab.uplink_addr, gateway):
                for port in (22, 80):
                    self.assert_blocked(sb, addr, port)
            self.assertEqual([listener.accepted for listener in listeners], [0, 0])
        finally:
            for listener in listeners:
                listener.close()
        wait_for(lambda: self.get(sb)["network"]["dropped"] > before, 30,
                 "dropped to count the refused connects")

    def test_sandboxes_cannot_reach_each_other(self):
        a = self.create({"mode": "open"})
        b = self.create({"mode": "open"})
        # b listens on its own address and connects to itself (so the listener is real); a
        # must not reach it, nor a host listener on b's gateway address.
        listen = (GUEST_HELPERS +
                  "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                  "s.bind(('0.0.0.0', 8000)); s.listen(8)\n"
                  f"me = connect({b['network']['address']!r}, 8000)\n"
                  "s.settimeout(10)\n"
                  "if me['ok']:\n"
                  "    s.accept()[0].close()\n"
                  "s.settimeout(90); others = 0\n"
                  "try:\n"
                  "    s.accept(); others = 1\n"
                  "except socket.timeout:\n"
                  "    pass\n"
                  "print(json.dumps({'me': me['ok'], 'others': others}))\n")
        gateway = HostListener(b["network"]["gateway"])
        self.addCleanup(gateway.close)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            listening = pool.submit(self.d.exec, b["id"], listen, timeout_ms=EXEC_TIMEOUT_MS)
            self.d.wait_guest_process(b["id"], "python3")
            time.sleep(2)  # the listener binds right after the interpreter starts
            addr = b["network"]["address"]
            got = self.probe(a, f"[connect({addr!r}, 8000), connect({addr!r}, 22), "
                                f"connect({gateway.addr!r}, {gateway.port})]")
            self.assertEqual([g["ok"] for g in got], [False, False, False], got)
            status, res, _ = listening.result(timeout=300)
        self.assertEqual((status, res.get("exit_code")), (200, 0), res)
        self.assertEqual(json.loads(res["stdout"]), {"me": True, "others": 0})
        self.assertEqual(gateway.accepted, 0)

    def test_deny_list_in_open_mode(self):
        sb = self.create({"mode": "open", "deny": ["blocked.test", "198.51.100.0/24"]})
        self.lab.clear_dns_queries()
        self.assertEqual(sb["network"]["deny"], ["blocked.test", "198.51.100.0/24"])
        self.assert_nxdomain(sb, "blocked.test")
        self.assertNotIn("blocked.test", self.lab.dns_queries())
        self.assert_blocked(sb, "198.51.100.7", 80)
        self.assert_reaches(sb, "http://other.test/", "other")

    # --- PATCH

    def test_patch_replaces_the_allow_list(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        self.assert_reaches(sb, "http://allowed.test/", "allowed")
        self.assert_nxdomain(sb, "blocked.test")
        status, body, _ = self.d.request("PATCH", f"/sandboxes/{sb['id']}/network",
                                         {"allow": ["blocked.test"]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["id"], sb["id"])
        self.assertEqual((body["network"]["allow"], body["network"]["deny"]),
                         (["blocked.test"], []))
        self.assertEqual(self.get(sb)["network"]["allow"], ["blocked.test"])
        self.assert_reaches(sb, "http://blocked.test/", "blocked")
        self.assert_nxdomain(sb, "allowed.test")
        self.assert_blocked(sb, "203.0.113.10", 80)  # resolved before, gone with its entry
        # and the deny list, when given: a denied name stays out even when allowed
        status, body, _ = self.d.request("PATCH", f"/sandboxes/{sb['id']}/network",
                                         {"allow": ["allowed.test", "other.test"],
                                          "deny": ["other.test"]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["network"]["deny"], ["other.test"])
        self.assert_nxdomain(sb, "other.test")
        self.assert_reaches(sb, "http://allowed.test/", "allowed")

    def test_patch_errors(self):
        none = self.create()
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        status, body, _ = self.d.request("PATCH", f"/sandboxes/{none['id']}/network",
                                         {"allow": ["allowed.test"]})
        self.assertEqual(status, 409, body)
        self.assertEqual(body["error"]["code"], "conflict")
        status, body, _ = self.d.request("PATCH", "/sandboxes/sb_" + "0" * 32 + "/network",
                                         {"allow": []})
        self.assertEqual(status, 404, body)
        status, body, _ = self.d.request("PATCH", f"/sandboxes/{sb['id']}/network",
                                         {"allow": ["allowed.test", "bad..name"]})
        self.assert_invalid(status, body, ["allow[1]"])
        status, body, _ = self.d.request("PATCH", f"/sandboxes/{sb['id']}/network",
                                         {"allow": ["allowed.test"], "deny": ["10.0.0.1/8"]})
        self.assert_invalid(status, body, ["deny[0]"])
        # a refused PATCH changed nothing
        self.assertEqual(self.get(sb)["network"]["allow"], ["allowed.test"])
        self.assert_reaches(sb, "http://allowed.test/", "allowed")

    # --- counters

    def test_counters_grow(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        before = self.get(sb)["network"]
        got = self.probe(sb, f"fetch('http://allowed.test/big?n=300000', {REACH_TIMEOUT_S})")
        self.assertEqual((got["ok"], got.get("size")), (True, 300000), got)

        def grown():
            now = self.get(sb)["network"]
            return (now["rx_bytes"] >= before["rx_bytes"] + 300000
                    and now["tx_bytes"] > before["tx_bytes"]) and now
        after = wait_for(grown, 30, "rx_bytes/tx_bytes to count the fetch")
        self.assert_blocked(sb, "198.51.100.7", 80)
        wait_for(lambda: self.get(sb)["network"]["dropped"] > after["dropped"], 30,
                 "dropped to count the refused connect")

    # --- nothing left behind

    def test_delete_leaves_no_tap_or_table(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        self.assertTrue(has_table(sb["id"], self.subnet), nft_tables())
        self.assertEqual(host_addresses().get(sb["network"]["gateway"]), tap_name(sb, self.subnet))
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assert_network_gone(sb, self.subnet)

    def test_a_removed_table_is_made_again(self):
        # Something else (an `nft flush ruleset`, a firewall reload) removes the sandbox's
        # table, its only filter: the daemon's watch puts it back, and what was blocked before
        # stays blocked after.
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        name = table_name(sb["id"], self.subnet)
        subprocess.run([netlab.NFT, "delete", "table", "inet", name], check=True, timeout=60)
        self.assertFalse(has_table(sb["id"], self.subnet))
        wait_for(lambda: has_table(sb["id"], self.subnet), 60, "the table made again")
        self.assert_blocked(sb, self.lab.hosts["ip-only"], 80)
        self.assert_reaches(sb, "http://allowed.test/", "allowed")

    def test_killed_vmm_leaves_no_tap_or_table_once_deleted(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        os.kill(sb["vmm_pid"], signal.SIGKILL)
        wait_for(lambda: self.get(sb)["state"] == "failed", 60, "state failed")
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assert_network_gone(sb, self.subnet)
        # its slot is free again and works for the next sandbox
        again = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        self.assert_reaches(again, "http://allowed.test/", "allowed")

    # --- pip

    def test_pip_installs_a_wheel_from_the_lab_index(self):
        sb = self.create({"mode": "allowlist", "allow": ["pypi.test"]})
        # --trusted-host: pip ignores a plain-http index otherwise (the lab has no TLS)
        code = ("import subprocess, sys\n"
                "r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--index-url',"
                " 'http://pypi.test/simple', '--trusted-host', 'pypi.test',"
                " '--break-system-packages', '--disable-pip-version-check', '--no-cache-dir',"
                " '--timeout', '20', 'embtiny'], capture_output=True, text=True)\n"
                "print(r.returncode, r.stdout[-1500:], r.stderr[-1500:])\n")
        status, res, _ = self.d.exec(sb["id"], code, timeout_ms=PIP_TIMEOUT_MS)
        self.assertEqual(status, 200, res)
        self.assertTrue(res["stdout"].startswith("0 "), res)
        status, res, _ = self.d.exec(sb["id"], "import embtiny; print(embtiny.VALUE)")
        self.assertEqual((status, res["stdout"]), (200, "42\n"), res)

    # --- bad input

    def test_bad_network_requests(self):
        too_many = [f"h{i}.allowed.test" for i in range(257)]
        cases = [
            ({"mode": "closed"}, ["network.mode"]),
            ({"mode": 3}, ["network.mode"]),
            ({"mode": "allowlist", "allow": ["exa mple.test"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": ["allowed.test", "bad..name"]},
             ["network.allow[1]"]),
            ({"mode": "allowlist", "allow": ["allowed.test", "203.0.113.1/24"]},
             ["network.allow[1]"]),
            ({"mode": "allowlist", "allow": ["203.0.113.0/33"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": ["allowed.test:0"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": ["allowed.test:65536"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": ["2001:db8::1"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": ["2001:db8::/32"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": ["allowed.test", "*"]}, ["network.allow[1]"]),
            ({"mode": "allowlist", "allow": ["*.test"]}, ["network.allow[0]"]),
            ({"mode": "allowlist", "allow": too_many}, ["network.allow"]),
            ({"mode": "open", "deny": ["blocked.test", "300.1.2.3"]}, ["network.deny[1]"]),
            ({"mode": "allowlist", "allow": "allowed.test"}, ["network.allow"]),
            ({"mode": "allowlist", "allwo": []}, ["allwo"]),
        ]
        for network, mentions in cases:
            with self.subTest(network=str(network)[:80]):
                status, body, _ = self.d.request("POST", "/sandboxes",
                                                 {"language_pack": "python", "network": network})
                self.assert_invalid(status, body, mentions)
        status, body, _ = self.d.request("POST", "/sandboxes",
                                         {"language_pack": "python", "network": "open"})
        self.assert_invalid(status, body, ["network"])
        # 256 entries are fine (the limit itself)
        self.assertEqual(len(too_many[:256]), 256)
        sb = self.create({"mode": "allowlist", "allow": too_many[:256]})
        self.assertEqual(len(sb["network"]["allow"]), 256)


@unittest.skipIf(SKIP, SKIP)
class NetworkRestartTest(NetworkChecks):
    subnet = "10.212.0.0/16"

    def setUp(self):
        self.lab = netlab.Lab().__enter__()
        self.addCleanup(self.lab.close)

    def daemon(self, *extra, reuse=None):
        d = harness.Daemon(*self.lab.daemon_args(self.subnet), *extra, reuse=reuse)
        self.addCleanup(self.end_daemon, d)
        return d

    @staticmethod
    def end_daemon(d):
        """For a test that failed half-way: the daemon stopped, or (killed) its VMs."""
        if d.proc.poll() is None:
            d.stop(check=False)
            return
        for pid in d.vmm_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def test_policy_survives_a_restart(self):
        d1 = self.daemon("--keep-sandboxes")
        sb = d1.create(language_pack="python",
                       network={"mode": "allowlist", "allow": ["allowed.test", "198.51.100.7"]})
        self.assert_reaches(sb, "http://allowed.test/", "allowed", d=d1)
        self.assertEqual(d1.sigterm(), 0)
        d2 = self.daemon(reuse=d1)
        net = self.get(sb, d=d2)["network"]
        for key in ("mode", "allow", "deny", "address", "gateway"):
            self.assertEqual(net[key], sb["network"][key], key)
        self.assertTrue(has_table(sb["id"], self.subnet))
        self.assert_reaches(sb, "http://allowed.test/", "allowed", d=d2)
        self.assert_reaches(sb, "http://198.51.100.7/", "ip-only", d=d2)
        self.assert_nxdomain(sb, "blocked.test", d=d2)
        self.assert_blocked(sb, "203.0.113.30", 80, d=d2)
        status, body, _ = d2.request("PATCH", f"/sandboxes/{sb['id']}/network",
                                     {"allow": ["other.test"]})
        self.assertEqual(status, 200, body)
        self.assert_reaches(sb, "http://other.test/", "other", d=d2)
        self.assertEqual(d2.delete(sb["id"]), 204)
        self.assert_network_gone(sb, self.subnet)
        d2.stop()
        self.assert_no_global_state(self.subnet)

    def test_sigkill_of_the_daemon_then_restart_removes_strays(self):
        d1 = self.daemon()
        policy = {"mode": "allowlist", "allow": ["allowed.test"]}
        live = d1.create(language_pack="python", network=policy)
        dead = d1.create(language_pack="python", network=policy)
        lost = d1.create(language_pack="python", network=policy)
        d1.kill9()
        # while no daemon runs: one VM dies, one sandbox loses its record
        os.kill(dead["vmm_pid"], signal.SIGKILL)
        os.remove(os.path.join(d1.run_dir, lost["id"], "sandbox.json"))
        for sb in (live, dead, lost):
            self.assertTrue(has_table(sb["id"], self.subnet))  # nothing removed them yet
        d2 = self.daemon(reuse=d1)
        status, body, _ = d2.request("GET", "/sandboxes")
        self.assertEqual([s["id"] for s in body["sandboxes"]], [live["id"]])
        for sb in (dead, lost):
            self.assert_network_gone(sb, self.subnet)
        self.assertTrue(has_table(live["id"], self.subnet))
        self.assert_reaches(live, "http://allowed.test/", "allowed", d=d2)
        self.assert_nxdomain(live, "blocked.test", d=d2)
        d2.stop()
        self.assert_network_gone(live, self.subnet)
        self.assert_no_global_state(self.subnet)


@unittest.skipIf(SKIP, SKIP)
class NetworkModesTest(LabDaemonCase):
    subnet = "10.213.0.0/16"
    modes = "none,allowlist"

    def test_open_refused_when_not_enabled(self):
        status, body, _ = self.d.request("POST", "/sandboxes",
                                         {"language_pack": "python", "network": {"mode": "open"}})
        self.assert_invalid(status, body, ["network.mode", "--network-modes"])


class NoUplinkTest(unittest.TestCase):
    """Daemons without --egress-uplink: the default one (modes: none) refuses a networked create
    naming network.mode and --network-modes; one with the modes but no uplink refuses it saying
    how to enable it (--egress-uplink). Mode none still works."""

    @classmethod
    def setUpClass(cls):
        cls.plain = harness.Daemon()
        try:
            cls.modes_only = harness.Daemon("--network-modes", "none,allowlist,open")
        except BaseException:
            cls.plain.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.plain.stop()
        finally:
            cls.modes_only.stop()

    def networked_create(self, d, network):
        status, body, _ = d.request("POST", "/sandboxes",
                                    {"language_pack": "python", "network": network})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_argument")
        return body["error"]["message"]

    def test_default_daemon_allows_only_mode_none(self):
        for network in ({"mode": "allowlist", "allow": ["allowed.test"]}, {"mode": "open"}):
            message = self.networked_create(self.plain, network)
            self.assertIn("network.mode", message)
            self.assertIn("--network-modes", message)
        sb = self.plain.create(language_pack="shell", network={"mode": "none"})
        self.assertEqual(sb["network"], {"mode": "none"})
        self.assertEqual(self.plain.delete(sb["id"]), 204)

    def test_networked_create_needs_an_uplink(self):
        for network in ({"mode": "allowlist", "allow": ["allowed.test"]}, {"mode": "open"}):
            message = self.networked_create(self.modes_only, network)
            self.assertIn("--egress-uplink", message)
            self.assertIn("docs/network.md", message)


if __name__ == "__main__":
    unittest.main()


# --- the Firecracker driver (tests/fakes/firecracker: it opens the TAP by name, as Firecracker)

FAKES = os.path.join(harness.REPO, "tests", "fakes")
FC_ARGS = ("--vmm", "firecracker", "--firecracker-bin", os.path.join(FAKES, "firecracker"))
IFF_PERSIST = 0x0800  # linux/if_tun.h, in /sys/class/net/<tap>/tun_flags


def daemon_taps(subnet):
    prefix = f"emb{subnet_tag(subnet)}s"
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(prefix))


def sysfs(tap, key):
    with open(f"/sys/class/net/{tap}/{key}") as f:
        return f.read().strip()


class FirecrackerNetworkChecks:
    """Networked sandboxes on --vmm firecracker: the driver makes the sandbox's TAP persistent
    and owned by the VMM's uid, the daemon lets go of it, and the (fake) Firecracker opens it by
    name at PUT /network-interfaces/eth0; DELETE deletes it. A mixin, not a TestCase: its tests
    run in the classes below, each with its own daemon."""
    jailed = False
    log = None  # the fake's request log ($FAKE_FC_LOG)

    def fc_requests(self, sb):
        """(path, body, status) of every API request the fake got for sb."""
        with open(self.log) as f:
            entries = [json.loads(line) for line in f if line.strip()]
        jail_id = sb["id"].replace("_", "-")
        return [(e["path"], e["body"], e["status"]) for e in entries
                if "method" in e and (sb["id"] in e["api_sock"] or jail_id in e["api_sock"])]

    def assert_fc_networked(self, sb):
        """A cold boot (no templates with a NIC here), the TAP persistent and the VMM's."""
        self.assertEqual(sb["boot_mode"], "cold", sb)
        self.assertTrue(has_table(sb["id"], self.subnet), nft_tables())
        tap = tap_name(sb, self.subnet)
        self.assertEqual(host_addresses().get(sb["network"]["gateway"]), tap)
        self.assertTrue(int(sysfs(tap, "tun_flags"), 16) & IFF_PERSIST, sysfs(tap, "tun_flags"))
        with open(f"/proc/{sb['vmm_pid']}/status") as f:
            uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
        self.assertEqual(uid != 0, self.jailed)
        self.assertEqual(int(sysfs(tap, "owner")), uid)
        # the NIC by the TAP's name, after every other device and before InstanceStart
        reqs = self.fc_requests(sb)
        self.assertEqual([r[0] for r in reqs[-3:]],
                         ["/entropy", "/network-interfaces/eth0", "/actions"], reqs)
        self.assertEqual(reqs[-2][1:], ({"iface_id": "eth0", "host_dev_name": tap,
                                         "guest_mac": "02:00:00:00:00:01"}, 204))
        return tap

    def assert_fc_network_gone(self, sb):
        self.assertFalse(has_table(sb["id"], self.subnet), nft_tables())
        self.assertNotIn(sb["network"]["gateway"], host_addresses())
        self.assertEqual(daemon_taps(self.subnet), [])

    def test_allowlist_enforced_and_delete_removes_the_tap(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        self.assert_fc_networked(sb)
        got = self.probe(sb, "sorted(__import__('os').listdir('/sys/class/net'))")
        self.assertEqual(got, ["eth0", "lo"])
        self.assert_reaches(sb, "http://allowed.test/", "allowed")
        self.assert_blocked(sb, netlab.HOSTS["blocked.test"], 80)
        self.assert_nxdomain(sb, "blocked.test")
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assert_fc_network_gone(sb)

    def test_killed_vmm_then_delete_removes_the_tap(self):
        sb = self.create({"mode": "allowlist", "allow": ["allowed.test"]})
        tap = self.assert_fc_networked(sb)
        os.kill(sb["vmm_pid"], signal.SIGKILL)
        wait_for(lambda: self.get(sb)["state"] == "failed", 60, "state failed")
        self.assertIn(tap, daemon_taps(self.subnet))  # persistent: it outlives the VMM
        self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assert_fc_network_gone(sb)


@unittest.skipIf(SKIP, SKIP)
class FirecrackerNetworkTest(FirecrackerNetworkChecks, NetworkChecks):
    """Unjailed (--no-jail): the fake runs as root."""
    subnet = "10.221.0.0/16"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emfcnet.")
        cls.log = os.path.join(cls.tmp, "requests.jsonl")
        cls.lab = netlab.Lab().__enter__()
        try:
            cls.d = harness.Daemon(*FC_ARGS, "--no-jail", "--max-sandboxes", "4",
                                   *cls.lab.daemon_args(cls.subnet),
                                   env={"FAKE_FC_LOG": cls.log})
        except BaseException:
            cls.lab.close()
            shutil.rmtree(cls.tmp, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
            cls.assert_no_global_state(cls.subnet)
            if daemon_taps(cls.subnet):
                raise AssertionError(f"TAPs left: {daemon_taps(cls.subnet)}")
        finally:
            cls.lab.close()
            shutil.rmtree(cls.tmp, True)

    def test_a_stray_persistent_tap_is_swept_at_startup(self):
        """A TAP a killed daemon left (persistent, nobody attached) is deleted by the next
        daemon on its subnet; another subnet's (another daemon's tag) is left alone."""
        subnet = "10.222.0.0/16"
        mine, other = f"emb{subnet_tag(subnet)}s200", f"emb{subnet_tag(self.subnet)}s200"
        for name in (mine, other):
            netlab.ip("tuntap", "add", "dev", name, "mode", "tap")
            self.addCleanup(netlab.ip, "link", "del", name, check=False)
        d = harness.Daemon(*FC_ARGS, "--no-jail", *self.lab.daemon_args(subnet))
        try:
            self.assertNotIn(mine, netlab.links())
            self.assertIn(other, netlab.links())
        finally:
            d.stop()
        self.assert_no_global_state(subnet)

    def test_a_restarted_daemon_adopts_the_persistent_tap_and_deletes_it(self):
        """--keep-sandboxes, then a new daemon on the same run directory: network.json says
        the TAP is persistent, so the startup sweep leaves it (its slot is adopted) and the new
        daemon's DELETE removes it."""
        subnet = "10.224.0.0/16"
        # A lab of its own: a second daemon's replies on the class daemon's uplink would meet
        # that daemon's forward guard (it forwards from the uplink to its own TAPs only).
        lab = netlab.Lab().__enter__()
        self.addCleanup(lab.close)
        d1 = harness.Daemon(*FC_ARGS, "--no-jail", "--keep-sandboxes", *lab.daemon_args(subnet))
        d2 = None
        try:
            sb = d1.create(language_pack="python",
                           network={"mode": "allowlist", "allow": ["allowed.test"]})
            tap = tap_name(sb, subnet)
            self.assert_reaches(sb, "http://allowed.test/", "allowed", d=d1)
            self.assertEqual(d1.sigterm(), 0)
            d2 = harness.Daemon(*FC_ARGS, "--no-jail", *lab.daemon_args(subnet), reuse=d1)
            self.assertIn(tap, daemon_taps(subnet))  # adopted, not swept
            self.assert_reaches(sb, "http://allowed.test/", "allowed", d=d2)
            self.assert_blocked(sb, netlab.HOSTS["blocked.test"], 80, d=d2)
            self.assertEqual(d2.delete(sb["id"]), 204)
            self.assertEqual(daemon_taps(subnet), [])
        finally:
            NetworkRestartTest.end_daemon(d2 or d1)
        self.assert_no_global_state(subnet)


@unittest.skipIf(SKIP, SKIP)
class FirecrackerJailedNetworkTest(FirecrackerNetworkChecks, NetworkChecks):
    """Under tests/fakes/jailer: the fake runs as the VM's own uid, without CAP_NET_ADMIN, and
    can open only a persistent TAP that uid owns. The jailer gets no --netns: the TAP is in the
    host's network namespace."""
    subnet = "10.223.0.0/16"
    jailed = True

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="emj.", dir="/tmp")
        os.chmod(cls.base, 0o755)
        # written by the fake as the VM's uid
        cls.log = os.path.join(cls.base, "requests.jsonl")
        with open(cls.log, "w"):
            pass
        os.chmod(cls.log, 0o666)
        cls.lab = netlab.Lab().__enter__()
        try:
            cls.d = harness.Daemon(*FC_ARGS, "--jailer", os.path.join(FAKES, "jailer"),
                                   "--max-sandboxes", "4", *cls.lab.daemon_args(cls.subnet),
                                   env={"EMBERD_JAILER_CHROOT_BASE": cls.base,
                                        "FAKE_FC_LOG": cls.log})
        except BaseException:
            cls.lab.close()
            shutil.rmtree(cls.base, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
            cls.assert_no_global_state(cls.subnet)
            if daemon_taps(cls.subnet):
                raise AssertionError(f"TAPs left: {daemon_taps(cls.subnet)}")
        finally:
            cls.lab.close()
            shutil.rmtree(cls.base, True)
