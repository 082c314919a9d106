"""Self-test of the network tests' lab (tests/e2e/netlab.py), without emberd: one lab is built,
its DNS, HTTP servers and wheel index are checked from inside its namespace (`ip netns exec`)
and from the host through the veth (sockets bound to the uplink with SO_BINDTODEVICE, and
curl --interface), then teardown must leave nothing; a half-built lab and a dead process's lab
are cleaned too.

Skips (with the reason) only where netlab.skip_reason() says the lab cannot run: not root, no
ip/nft, no /dev/net/tun, nftables unusable.
"""

import json
import os
import subprocess
import sys
import io
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402

SKIP = netlab.skip_reason()
NETLAB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netlab.py")


def lab_leftovers(name, uplink):
    """What of the lab called name (host link uplink) still exists."""
    left = [n for n in netlab.namespaces() if n == name]
    left += [link for link in netlab.links() if link == uplink]
    left += netlab.processes_in_namespace(name) if name in left else []
    return left


@unittest.skipIf(SKIP, SKIP)
class NetlabTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if SKIP:
            print(f"\ntest_netlab skipped: {SKIP}", file=sys.stderr)
        cls.lab = netlab.Lab().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.lab.close()

    def in_lab(self, *argv):
        r = self.lab.netns_run(*argv)
        self.assertEqual(r.returncode, 0, f"{argv}: {r.stderr}")
        return r.stdout

    # --- shape

    def test_interface_names_and_addresses(self):
        lab = self.lab
        self.assertRegex(lab.name, rf"^embt-{os.getpid()}-\d+$")
        self.assertRegex(lab.uplink, r"^embu[0-9a-f]{4}$")
        self.assertRegex(lab.uplink_addr, r"^198\.18\.\d+\.1$")
        self.assertEqual(lab.dns_addr, "203.0.113.53")
        self.assertEqual(lab.hosts, {"allowed.test": "203.0.113.10",
                                     "blocked.test": "203.0.113.20",
                                     "other.test": "203.0.113.30", "ip-only": "198.51.100.7"})
        self.assertEqual(netlab.links()[lab.uplink], lab.name)  # the alias cleanup_stale reads
        self.assertEqual(lab.daemon_args("10.91.0.0/16"),
                         ["--network-modes", "none,allowlist,open", "--egress-uplink",
                          lab.uplink, "--egress-dns", "203.0.113.53", "--egress-subnet",
                          "10.91.0.0/16"])
        routes = self.in_lab("ip", "-4", "route", "show")
        self.assertNotIn("default", routes)  # nothing in the lab can send beyond the veth
        addrs = self.in_lab("ip", "-4", "-o", "addr", "show")
        for addr in netlab.PUBLIC_ADDRS:
            self.assertIn(f"{addr}/32", addrs)

    # --- from inside the namespace

    def test_dns_inside(self):
        rcode, answers = json.loads(self.in_lab("/usr/bin/python3", NETLAB, "query",
                                                "allowed.test"))
        self.assertEqual((rcode, answers), (0, [[1, 60, "203.0.113.10"]]))
        self.assertIn("allowed.test", self.lab.dns_queries())

    def test_http_inside(self):
        for (addr, port), name in netlab.HTTP_SERVERS.items():
            body = self.in_lab("curl", "-sS", "-m", "10", f"http://{addr}:{port}/")
            self.assertEqual(body, name)
        size = self.in_lab("curl", "-sS", "-m", "30", "-o", "/dev/null", "-w",
                           "%{size_download}", "http://203.0.113.10/big?n=3000000")
        self.assertEqual(size, "3000000")

    def test_pip_installs_the_wheel_from_the_index(self):
        with tempfile.TemporaryDirectory() as target:
            r = self.lab.netns_run("/usr/bin/python3", "-m", "pip", "install", "--no-cache-dir",
                                   "--disable-pip-version-check", "--index-url",
                                   "http://203.0.113.10/simple", "--trusted-host",
                                   "203.0.113.10", "--target", target, "embtiny", timeout=180)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = subprocess.run(["/usr/bin/python3", "-c",
                                "import embtiny; print(embtiny.VALUE)"], capture_output=True,
                               text=True, env={"PYTHONPATH": target}, timeout=60)
            self.assertEqual(r.stdout, "42\n", r.stderr)

    # --- from the host, through the veth only

    def test_dns_from_host_through_the_uplink(self):
        lab = self.lab
        self.assertEqual(netlab.dns_query("blocked.test", device=lab.uplink),
                         (0, [(1, 60, "203.0.113.20")]))
        self.assertEqual(netlab.dns_query("OTHER.test", device=lab.uplink),
                         (0, [(1, 60, "203.0.113.30")]))
        self.assertEqual(netlab.dns_query("www.allowed.test", device=lab.uplink),
                         (0, [(1, 60, "203.0.113.10")]))
        self.assertEqual(netlab.dns_query("pypi.test", device=lab.uplink),
                         (0, [(1, 60, "203.0.113.10")]))
        self.assertEqual(netlab.dns_query("ttl.test", device=lab.uplink),
                         (0, [(1, 1, "203.0.113.30")]))
        self.assertEqual(netlab.dns_query("cname.test", device=lab.uplink),
                         (0, [(5, 60, "allowed.test"), (1, 60, "203.0.113.10")]))
        self.assertEqual(netlab.dns_query("allowed.test", qtype=28, device=lab.uplink),
                         (0, []))  # AAAA of a known name: empty NOERROR
        self.assertEqual(netlab.dns_query("nowhere.test", device=lab.uplink), (3, []))
        seen = lab.dns_queries()
        for name in ("blocked.test", "other.test", "ttl.test", "cname.test", "nowhere.test"):
            self.assertIn(name, seen)

    def test_http_from_host_through_the_uplink(self):
        lab = self.lab
        for (addr, port), name in netlab.HTTP_SERVERS.items():
            self.assertEqual(netlab.http_get(addr, port, device=lab.uplink),
                             (200, name.encode()))
        status, body = netlab.http_get("203.0.113.10", path="/big?n=100000", device=lab.uplink)
        self.assertEqual((status, len(body), body.count(b"\0")), (200, 100000, 100000))
        status, index = netlab.http_get("203.0.113.10", path="/simple/", device=lab.uplink)
        self.assertEqual(status, 200)
        self.assertIn(b'href="embtiny/"', index)
        status, wheel = netlab.http_get("203.0.113.10", path=f"/packages/{netlab.WHEEL_NAME}",
                                        device=lab.uplink)
        self.assertEqual(status, 200)
        with zipfile.ZipFile(io.BytesIO(wheel)) as z:
            self.assertEqual(z.read("embtiny/__init__.py"), b"VALUE = 42\n")
            self.assertIn("embtiny-0.1.dist-info/RECORD", z.namelist())
        self.assertEqual(netlab.http_get("203.0.113.10", path="/nothing",
                                         device=lab.uplink)[0], 404)
        r = subprocess.run(["curl", "-sS", "-m", "10", "--interface", lab.uplink,
                            "http://198.51.100.7/"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout, "ip-only", r.stderr)


@unittest.skipIf(SKIP, SKIP)
class NetlabTeardownTest(unittest.TestCase):
    def test_teardown_leaves_nothing(self):
        with netlab.Lab() as lab:
            name, uplink, tmp = lab.name, lab.uplink, lab.tmp
            server = lab.server.pid
            self.assertTrue(lab_leftovers(name, uplink))
        self.assertEqual(lab_leftovers(name, uplink), [])
        self.assertFalse(netlab.pid_alive(server))
        self.assertFalse(os.path.exists(tmp))
        lab.close()  # twice is harmless

    def test_half_built_lab_is_removed(self):
        lab = netlab.Lab()

        def fail():
            raise RuntimeError("made to fail")

        lab._start_server = fail
        with self.assertRaisesRegex(RuntimeError, "made to fail"):
            with lab:
                pass
        self.assertIsNone(lab.uplink)
        self.assertNotIn(lab.name, netlab.namespaces())

    def test_cleanup_stale_removes_a_dead_process_lab(self):
        # A lab built by a child that is then SIGKILLed (its teardown never runs).
        code = ("import os, signal, sys; sys.path.insert(0, %r); import netlab; "
                "lab = netlab.Lab().__enter__(); print(lab.name, lab.uplink, flush=True); "
                "os.kill(os.getpid(), signal.SIGKILL)" % os.path.dirname(NETLAB))
        r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                           timeout=120)
        name, uplink = r.stdout.split()
        self.assertIn(name, netlab.namespaces())
        self.assertIn(uplink, netlab.links())
        removed = netlab.cleanup_stale()
        self.assertIn(name, removed)
        self.assertEqual(lab_leftovers(name, uplink), [])


if __name__ == "__main__":
    unittest.main()
