"""Shared helpers for the end-to-end tests: paths, a daemon under test, HTTP calls, leak checks.

The daemon runs from build/asan/bin (ASan/UBSan) on a private port and a private run directory;
stop() checks it exits 0 on SIGTERM, left no VM process or runtime file, and printed no
sanitizer report.

Every request() is held against docs/openapi.yaml (contract.py): a response the spec does not
allow, or a spec-valid request the daemon refuses, fails the test with an AssertionError naming
the route, the status, the body and what broke.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import contract
except ImportError as e:  # jsonschema/yaml are Debian's, for /usr/bin/python3
    raise ImportError(f"{e}: the e2e tests need python3-jsonschema and python3-yaml; run them "
                      "with /usr/bin/python3 (`make e2e` does; scripts/install-deps.sh installs "
                      "both)") from e

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The images `make images` built: every pack (tests of the packs themselves use this).
ALL_IMAGES_DIR = os.environ.get("IMAGES_DIR", "/var/lib/emberd/images")
# The packs the rest of the suite is written against ("both templates", pools per pack, memory
# per pack): prewarming and pooling python-data (512 MiB) and node too would cost every such
# daemon minutes under TCG and make "templates ready >= 2" mean something else.
CORE_PACKS = ("python", "shell")


def core_images_dir(real):
    """A private images directory (removed at exit) whose packs.json lists only CORE_PACKS, its
    files symlinks into real; real itself when its catalog has no other pack or is missing."""
    try:
        with open(os.path.join(real, "packs.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return real  # require_images() says what is wrong
    packs = [p for p in manifest.get("packs", []) if p.get("name") in CORE_PACKS]
    if len(packs) == len(manifest.get("packs", [])):
        return real
    tmp = tempfile.mkdtemp(prefix="emberd-core-images.", dir="/tmp")
    atexit.register(shutil.rmtree, tmp, True)
    for entry in os.listdir(real):
        if entry not in ("packs.json", "cache", "logs") and not entry.startswith("."):
            os.symlink(os.path.join(real, entry), os.path.join(tmp, entry))
    manifest["packs"] = packs
    with open(os.path.join(tmp, "packs.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return tmp


IMAGES_DIR = core_images_dir(ALL_IMAGES_DIR)
ASAN_BIN = os.path.join(REPO, "build", "asan", "bin")
BIN = os.path.join(REPO, "bin")


def sanitizer_problems(text):
    return [line for line in text.splitlines()
            if "ERROR: AddressSanitizer" in line or "runtime error:" in line
            or "ERROR: LeakSanitizer" in line or "WARNING: ThreadSanitizer" in line]


def wedged_fake_guest(body):
    """True for the boot failure a guest under the fake Firecracker sometimes has on this TCG
    host (about one run in 15-20 of five concurrent boots): its agent was serving, then the vCPU
    halted with interrupts on and never woke (the fake's console line says HLT=1), so no
    CONNECT was answered. Its kernel had disabled the LAPIC timer after a calibration skewed by
    host load ("APIC frequency too slow"), leaving it no clock event that reaches the CPU on a
    microvm. Not the daemon's doing; real Firecracker runs on KVM only. emberd-init now finds
    such a kernel at once and the daemon boots it again (test_faults.NoTimerBootTest); this
    stays for a guest the check lets through."""
    message = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
    # A clone's connect (fc_vsock.c) and a cold boot's (firecracker.c) word the deadline apart.
    deadline = ("no answer to `CONNECT 52` before the deadline" in message
                or "did not listen on vsock port 52 before the boot deadline" in message)
    return (deadline and "agent serving" in message and "HLT=1" in message
            and "fake-firecracker: agent port still closed" in message)


def require_images():
    manifest = os.path.join(IMAGES_DIR, "packs.json")
    if not os.path.exists(manifest):
        raise RuntimeError(f"no images in {IMAGES_DIR}: run `make images` first "
                           "(or set IMAGES_DIR)")


def wait_for(predicate, timeout, what):
    """Polls predicate until it returns something true (returned) or timeout seconds pass
    (AssertionError naming what). The one polling loop of the e2e tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def processes_mentioning(text):
    """PIDs whose command line contains text (used to find leaked VMM processes)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(pid))
    return found


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def assert_clones_isolated(test, d, clone):
    """Writes to /tmp and $HOME in one clone (made by clone()) are invisible to a second clone
    made before the write and to a third made after it (the template never saw them)."""
    a, b = clone(), clone()
    try:
        status, res, _ = d.exec(a["id"], "open('/tmp/mark', 'w').write('a'); "
                                         "open('/home/sandbox/mark', 'w').write('a'); "
                                         "print('written')")
        test.assertEqual(res["stdout"], "written\n", res)
        check = ("import os; print(os.path.exists('/tmp/mark'), "
                 "os.path.exists('/home/sandbox/mark'))")
        status, res, _ = d.exec(b["id"], check)
        test.assertEqual(res["stdout"], "False False\n")
        c = clone()  # made after the write: the template never saw it
        try:
            status, res, _ = d.exec(c["id"], check)
            test.assertEqual(res["stdout"], "False False\n")
        finally:
            test.assertEqual(d.delete(c["id"]), 204)
        status, res, _ = d.exec(a["id"], check)
        test.assertEqual(res["stdout"], "True True\n")
    finally:
        test.assertEqual(d.delete(a["id"]), 204)
        test.assertEqual(d.delete(b["id"]), 204)


class Daemon:
    """emberd on 127.0.0.1:<ephemeral port> with a private run directory."""

    def __init__(self, *extra_args, binary=None, env=None, reuse=None, all_packs=False):
        """reuse: a stopped Daemon whose run directory (and log) this one takes over.
        all_packs: serve every pack `make images` built (ALL_IMAGES_DIR), not only
        CORE_PACKS (a later --images of extra_args wins either way)."""
        require_images()
        self.binary = binary or os.path.join(ASAN_BIN, "emberd")
        if not os.path.exists(self.binary):
            raise RuntimeError(f"{self.binary} is missing: run `make asan-bins`")
        # Short path: QEMU's Unix sockets live below it and sun_path holds 107 bytes.
        self.tmp = reuse.tmp if reuse else tempfile.mkdtemp(prefix="emt.", dir="/tmp")
        self.run_dir = os.path.join(self.tmp, "run")
        # Paused sandboxes and snapshots (docs/snapshots.md) go to a private state directory,
        # never the machine's /var/lib/emberd/state (a later --state-dir of a test's own wins).
        self.state_dir = os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "emberd.log")
        self.log_offset = os.path.getsize(self.log_path) if reuse else 0
        # Warm pools fill in the background and compete for the CPU with the test itself, so
        # they are off unless a test asks (a later --pool-size wins).
        # --config none: a machine's /etc/emberd/emberd.conf is not the tests' (a later --config
        # of a test's own wins).
        self.args = [self.binary, "--addr", "127.0.0.1:0",
                     "--images", ALL_IMAGES_DIR if all_packs else IMAGES_DIR,
                     "--run-dir", self.run_dir, "--state-dir", self.state_dir,
                     "--pool-size", "0", "--config", "none", *extra_args]
        self.keep_templates = "--keep-sandboxes" in extra_args
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            self.env.update(env)
        self.proc = None
        self.port = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(r"\(port (\d+)\)", self.read_log()[self.log_offset:])
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("emberd exited at startup:\n" + self.read_log())
            time.sleep(0.05)
        raise RuntimeError("emberd did not start listening:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def request(self, method, path, body=None, raw=None, timeout=300, headers=None):
        """Returns (status, parsed JSON or None, raw bytes), once the exchange passed the
        OpenAPI contract (contract.py) for this daemon's flags."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode()
                                                if body is not None else None)
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            self.check_contract(method, path, data, resp.status, dict(resp.getheaders()),
                                payload)
            # A text body (GET /metrics) is returned raw only.
            text = (resp.getheader("Content-Type") or "").startswith("text/plain")
            parsed = json.loads(payload) if payload and not text else None
            return resp.status, parsed, payload
        finally:
            conn.close()

    def check_contract(self, method, path, body, status, headers, payload):
        """Raises AssertionError when this exchange breaks docs/openapi.yaml; for tests that
        send requests of their own (raw sockets, other clients)."""
        contract.check_exchange(self.args[1:], method, path, body, status, headers, payload)

    def wait_health(self, predicate, timeout, what):
        """Polls /healthz until predicate(health) holds; returns that health document."""
        deadline = time.monotonic() + timeout
        health = None
        while time.monotonic() < deadline:
            status, health, _ = self.request("GET", "/healthz")
            if status == 200 and predicate(health):
                return health
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {health}")

    def wait_health_or_stop(self, predicate, timeout, what):
        """wait_health for a class fixture: when the wait fails the daemon is stopped (without
        the leak checks) before the error propagates, since tearDownClass will not run."""
        try:
            return self.wait_health(predicate, timeout, what)
        except Exception:
            self.stop(check=False)
            raise

    def create(self, **fields):
        status, body, _ = self.request("POST", "/sandboxes", fields)
        for _ in range(2):
            if status != 504 or not wedged_fake_guest(body):
                break
            # A known emulator fault, not the daemon's (see wedged_fake_guest): again.
            print(f"\nharness: fake Firecracker guest wedged under TCG, creating again: {body}",
                  file=sys.stderr)
            status, body, _ = self.request("POST", "/sandboxes", fields)
        if status != 201:
            # what the daemon had to say about it (e.g. a clone that failed before a cold boot)
            warnings = [line for line in self.read_log().splitlines()
                        if "level=warn" in line or "level=error" in line][-8:]
            raise AssertionError(f"create failed: {status} {body}\ndaemon warnings:\n" +
                                 "\n".join(warnings))
        return body

    def exec(self, sandbox_id, code, **fields):
        fields["code"] = code
        return self.request("POST", f"/sandboxes/{sandbox_id}/exec", fields)

    def wait_guest_process(self, sandbox_id, comm, timeout=120):
        """Polls the guest's process table until a process of the sandbox user (uid 1000) named
        comm runs: an exec has really started, however slowly this machine got it there."""
        deadline = time.monotonic() + timeout
        procs = None
        while time.monotonic() < deadline:
            status, body, _ = self.request("GET", f"/sandboxes/{sandbox_id}/processes?all=1")
            if status == 200:
                procs = body["processes"]
                found = [p for p in procs if p["comm"] == comm and p["uid"] == 1000]
                if found:
                    return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no `{comm}` of uid 1000 in {sandbox_id} after {timeout} s: "
                             f"{procs}")

    def delete(self, sandbox_id):
        return self.request("DELETE", f"/sandboxes/{sandbox_id}")[0]

    def vmm_pids(self):
        """Processes that name a sandbox directory: VMMs (the daemon itself names only the
        run directory)."""
        return processes_mentioning(os.path.join(self.run_dir, "sb_"))

    def runtime_entries(self):
        """Sandbox directories (the template cache, a directory of its own, is not one)."""
        if not os.path.isdir(self.run_dir):
            return []
        return [e for e in os.listdir(self.run_dir) if e != "templates"]

    def paused_files(self):
        """Saved VMs of paused sandboxes (<state-dir>/paused-<hash>/*): none once nothing is
        paused."""
        found = []
        if os.path.isdir(self.state_dir):
            for entry in os.listdir(self.state_dir):
                if entry.startswith("paused-"):
                    d = os.path.join(self.state_dir, entry)
                    found += [os.path.join(d, f) for f in os.listdir(d)]
        return found

    def kill9(self):
        """SIGKILL, as a crash would; VMs keep running for the next daemon."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def sigterm(self, timeout=60):
        """SIGTERM without the leak checks; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code

    def stop(self, check=True):
        """SIGTERM, then the checks that make every test a leak test."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = "timeout"
            if code != 0:
                problems.append(f"emberd exited with {code} on SIGTERM")
        if not self.log.closed:
            self.log.close()
        leaked = [p for p in self.vmm_pids() if pid_alive(p)]
        if leaked:
            problems.append(f"VMM processes left running: {leaked}")
            for p in leaked:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        left = os.listdir(self.run_dir) if os.path.isdir(self.run_dir) else []
        if left and not self.keep_templates:
            problems.append(f"runtime files left behind: {left}")
        elif self.runtime_entries():
            problems.append(f"runtime files left behind: {self.runtime_entries()}")
        if self.paused_files():
            problems.append(f"paused sandboxes' files left behind: {self.paused_files()}")
        log = self.read_log()
        problems += sanitizer_problems(log)
        if check and problems:
            raise AssertionError("; ".join(problems) + "\n--- emberd log ---\n" + log[-6000:])
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def memfd_mapping(pid, prefix, mib):
    """A VMM's mapping of a memfd named prefix... (/proc/<pid>/smaps: `/memfd:<prefix>...`) of
    the guest's size: its permissions, inode and KiB resident, private to the process and
    shared with others; None when there is none."""
    found = cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                path = " ".join(head[5:])
                cur = None
                if path.startswith("/memfd:" + prefix) and hi - lo == mib << 20:
                    cur = found = {"perms": head[1], "inode": head[4], "rss_kib": 0,
                                   "private_kib": 0, "shared_kib": 0}
            elif cur is not None and head[0] == "Rss:":
                cur["rss_kib"] += int(head[1])
            elif cur is not None and head[0] in ("Private_Clean:", "Private_Dirty:"):
                cur["private_kib"] += int(head[1])
            elif cur is not None and head[0] in ("Shared_Clean:", "Shared_Dirty:"):
                cur["shared_kib"] += int(head[1])
    return found
