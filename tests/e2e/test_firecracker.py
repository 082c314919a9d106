"""End-to-end tests of the Firecracker driver against tests/fakes/firecracker (Firecracker itself
cannot run here: no hardware virtualization). The fake serves Firecracker's real API on its
socket, validates every request like Firecracker, boots the guest with QEMU under TCG and
emulates the hybrid vsock (docs/firecracker.md says what this does and does not prove).

- FirecrackerApiTest: the whole HTTP API suite (test_api.ApiTest) with --vmm firecracker,
  cold boots only (--no-snapshots).
- FirecrackerCloneApiTest, FirecrackerPooledApiTest: the same suite on clones (templates
  prebuilt) and with the warm pool on.
- FirecrackerConfigTest: the exact configuration the driver sends, and SendCtrlAltDel on delete,
  read back from the fake's request log.
- FirecrackerSnapshotTest: the API sequences of a template (PATCH /vm, /snapshot/create) and of
  a clone (/snapshot/load, nothing else), clone identity, clock and isolation, and the fake's
  strict snapshot rules exercised directly on a template's files.
- FirecrackerNetworkInterfaceTest: the fake's strict PUT /network-interfaces/{iface_id} and its
  open of the TAP by name at that PUT (networked sandboxes themselves: test_network.py).
- FirecrackerFaultTest: a firecracker that never creates its socket, refuses a PUT, dies
  mid-boot or answers the vsock handshake with garbage: clean, prompt failures, nothing leaked;
  a refused /snapshot/load falls back to a cold boot.
- FirecrackerSelectionTest: --vmm auto never picks the fake without hardware virtualization.
- FirecrackerRestartTest: a restarted daemon re-attaches to a running Firecracker.
- FirecrackerJailerTest: --jailer with tests/fakes/jailer (chroot layout, hard links, cleanup),
  for a cold boot and for a template with its clones; after a crash, a jailed VMM without a
  record is killed and its jail removed.
- WedgedFakeGuestTest: the harness's retry of the fake's known TCG wedge recognises the 504 of a
  cold boot and of a clone in the daemon's own words, and nothing else.
"""

import filecmp
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_api  # noqa: E402  (a module import: discovery must not collect ApiTest twice)

FAKES = os.path.join(harness.REPO, "tests", "fakes")
FAKE_FC = os.path.join(FAKES, "firecracker")
FAKE_JAILER = os.path.join(FAKES, "jailer")
FC_ARGS = ("--vmm", "firecracker", "--firecracker-bin", FAKE_FC)
# The fake jailer sits beside the fake firecracker, so a root daemon finds and uses it by
# default; every test but the jailer's runs Firecracker unjailed, as --no-jail asks.
UNJAILED = (*FC_ARGS, "--no-jail")
UID_BASE, UID_COUNT = 1900000000, 8192  # the daemon's default VMM uid range (vmm.h)
COLD = ("--no-snapshots",)  # tests of the boot path itself: no template builds alongside
IDENTITY = "import os, time, uuid; print(os.urandom(16).hex(), uuid.uuid4(), time.time())"


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def api_requests(entries, sandbox_id):
    return [e for e in entries if "method" in e and sandbox_id in e["api_sock"]]


def cgroup2_root():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return None


def manifest_path(*keys):
    """A path from packs.json (the catalog the daemon boots from), absolute."""
    with open(os.path.join(harness.IMAGES_DIR, "packs.json")) as f:
        value = json.load(f)
    for key in keys:
        value = value[key] if not isinstance(value, list) else \
            next(p for p in value if p["name"] == key)
    return os.path.join(harness.IMAGES_DIR, value)


def fake_qemus(sandbox_id=""):
    """QEMU processes the fake started (named after the Firecracker id, sb-<hex>)."""
    return set(harness.processes_mentioning("fake-firecracker-" +
                                            sandbox_id.replace("_", "-")))


def assert_clone(test, d, sb):
    """sb was a clone; if not, the failure shows why from the daemon's template events."""
    if sb["boot_mode"] != "clone":
        events = [ln for ln in d.read_log().splitlines()
                  if "template" in ln or "clone" in ln or "level=warn" in ln]
        test.fail(f"not a clone: {sb}\n" + "\n".join(events[-30:]))


def remove_shared_cgroup(path):
    """The jailer's parent cgroup, shared with any other jailed Firecracker on the host (another
    test run): removed when it is empty."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def wait_until(predicate, timeout):
    """predicate's first true value within timeout, else its last value. Timeouts here only
    bound a failure: a slow host gets room (process exits, cleanups: up to 60 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()




class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class DirectFake:
    """tests/fakes/firecracker started by a test itself (no daemon) in its own directory, driven
    over its API socket."""

    def __init__(self, workdir, log):
        self.dir = workdir
        self.sock = os.path.join(workdir, "fc.sock")
        with open(os.path.join(workdir, "vmm.log"), "ab") as out:
            self.proc = subprocess.Popen([FAKE_FC, "--api-sock", self.sock, "--id", "direct"],
                                         cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         env=dict(os.environ, FAKE_FC_LOG=log))
        if not wait_until(lambda: os.path.exists(self.sock), 60):
            self.stop()
            raise AssertionError("the fake did not create its API socket")

    def request(self, method, path, body=None):
        conn = UnixHTTPConnection(self.sock)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, json.loads(payload) if payload else None
        finally:
            conn.close()

    def fault(self, method, path, body=None):
        """The fault_message of a request that must fail with 400."""
        status, reply = self.request(method, path, body)
        if status != 400 or "fault_message" not in (reply or {}):
            raise AssertionError(f"{method} {path} {body}: expected 400, got {status} {reply}")
        return reply["fault_message"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def template_dirs(d):
    """Finished templates of a daemon: {pack image: directory}."""
    tdir = os.path.join(d.run_dir, "templates")
    found = {}
    for key in os.listdir(tdir):
        path = os.path.join(tdir, key)
        if len(key) != 64 or not os.path.isfile(os.path.join(path, "state")):
            continue
        with open(os.path.join(path, "state"), "rb") as f:
            f.readline()
            header = json.loads(f.readline())
        drive = header["drives"][0]["path_on_host"]
        # the snapshot names the template's pinned copy of the pack, never the catalog path
        assert drive == path + ".pack", (drive, path)
        for pack in ("python", "shell"):
            image = manifest_path("packs", pack, "image")
            if filecmp.cmp(drive, image, shallow=False):
                found[image] = path
    return found


class FirecrackerApiTest(test_api.ApiTest):
    """Every test of the HTTP API suite, with the Firecracker driver, booting cold."""
    daemon_args = UNJAILED + COLD
    expected_driver = "firecracker"

    def test_oversized_body_is_413(self):
        # No VM involved. harness.request() can lose a race with the server's early 413: the
        # daemon answers and closes while the client still sends the 3 MiB body, and the client
        # sees EPIPE instead of reading the answer (seen with either driver; the fix belongs in
        # harness.request). Retry only that client-side failure, never a wrong answer.
        for attempt in range(3):
            try:
                return super().test_oversized_body_is_413()
            except (BrokenPipeError, ConnectionResetError):
                if attempt == 2:
                    raise


class FirecrackerCloneApiTest(FirecrackerApiTest):
    """The whole suite on clones: both templates are built first (--prewarm), so every create
    of a default shape is a /snapshot/load into a fresh fake."""
    daemon_args = UNJAILED + ("--prewarm",)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.wait_health_or_stop(lambda h: h["templates"]["ready"] >= 2, 300, "both templates")

    def test_creates_are_clones(self):
        for pack, code in (("python", "print('clone')"), ("shell", "echo clone")):
            sb = self.d.create(language_pack=pack)
            try:
                status, info, _ = self.d.request("GET", f"/sandboxes/{sb['id']}")
                self.assertEqual(status, 200, info)
                assert_clone(self, self.d, info)
                status, res, _ = self.d.exec(sb["id"], code)
                self.assertEqual((status, res["stdout"]), (200, "clone\n"), res)
            finally:
                self.assertEqual(self.d.delete(sb["id"]), 204)


class FirecrackerPooledApiTest(FirecrackerApiTest):
    """The whole suite with the warm pool on: most creates take a pooled clone."""
    daemon_args = UNJAILED + ("--pool-size", "2", "--prewarm")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d.wait_health_or_stop(lambda h: h["pool"]["ready"] >= 4, 300, "full pools")

    def test_creates_come_from_the_pool(self):
        self.d.wait_health(lambda h: h["pool"]["ready"] >= 2, 300, "pooled sandboxes")
        sb = self.d.create(language_pack="shell")
        try:
            # how fast a handout is, is for bench/ to measure; here: that it was one
            status, info, _ = self.d.request("GET", f"/sandboxes/{sb['id']}")
            self.assertEqual((status, info["boot_mode"]), (200, "pool"), info)
            status, res, _ = self.d.exec(sb["id"], "echo pooled")
            self.assertEqual((status, res["stdout"]), (200, "pooled\n"), res)
            health = self.d.request("GET", "/healthz")[1]
            self.assertGreaterEqual(health["pool"]["handouts_total"], 1)
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)


class FirecrackerConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emfc.", dir="/tmp")
        cls.log = os.path.join(cls.tmp, "requests.jsonl")
        cls.d = harness.Daemon(*UNJAILED, *COLD, env={"FAKE_FC_LOG": cls.log})

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_image(self, path, expected):
        self.assertTrue(os.path.isabs(path), path)
        self.assertEqual(os.path.realpath(path), os.path.realpath(expected))

    def test_driver_sends_exactly_the_expected_configuration(self):
        sb = self.d.create(language_pack="shell", vcpus=2, memory_mib=192)
        sid, run = sb["id"], os.path.join(self.d.run_dir, sb["id"])
        try:
            status, res, _ = self.d.exec(sid, "nproc")
            self.assertEqual(status, 200, res)
            self.assertEqual(res["stdout"].splitlines()[0], "2")
            reqs = api_requests(read_log(self.log), sid)
            self.assertEqual([(r["method"], r["path"]) for r in reqs],
                             [("PUT", "/machine-config"), ("PUT", "/boot-source"),
                              ("PUT", "/drives/pack"), ("PUT", "/vsock"), ("PUT", "/entropy"),
                              ("PUT", "/actions")])
            self.assertTrue(all(r["status"] == 204 for r in reqs), reqs)
            body = {r["path"]: r["body"] for r in reqs}
            self.assertEqual(body["/machine-config"], {"vcpu_count": 2, "mem_size_mib": 192})
            boot = body["/boot-source"]
            self.assertEqual(set(boot), {"kernel_image_path", "initrd_path", "boot_args"})
            self.assert_image(boot["kernel_image_path"], manifest_path("kernel", "vmlinux"))
            self.assert_image(boot["initrd_path"], manifest_path("initramfs"))
            args = boot["boot_args"].split()
            for arg in ("console=ttyS0", "panic=-1", "reboot=t", "emberd.overlay_mib=64"):
                self.assertIn(arg, args)
            drive = dict(body["/drives/pack"])
            self.assert_image(drive.pop("path_on_host"),
                              manifest_path("packs", "shell", "image"))
            self.assertEqual(drive, {"drive_id": "pack", "is_root_device": False,
                                     "is_read_only": True})
            # Relative: Firecracker runs in the sandbox directory (what makes clones work).
            self.assertEqual(body["/vsock"], {"guest_cid": 3, "uds_path": "v.sock"})
            self.assertEqual(os.readlink(f"/proc/{sb['vmm_pid']}/cwd"), run)
            self.assertEqual(body["/entropy"], {})
            self.assertEqual(body["/actions"], {"action_type": "InstanceStart"})
            self.assertEqual(reqs[0]["api_sock"], os.path.join(run, "fc.sock"))
            # The driver retried CONNECT until the agent listened, then got OK <n>.
            vsock = [e for e in read_log(self.log) if "vsock" in e and sid in e["api_sock"]]
            self.assertEqual(vsock[-1]["vsock"], "CONNECT 52\n")
            self.assertRegex(vsock[-1]["result"], r"^OK \d+$")
            # Guest entropy comes from the virtio-rng device the /entropy PUT asked for.
            status, res, _ = self.d.exec(sid, "cat /sys/class/misc/hw_random/rng_current")
            self.assertIn("virtio", res["stdout"])
        finally:
            self.assertEqual(self.d.delete(sid), 204)
        reqs = api_requests(read_log(self.log), sid)
        self.assertEqual((reqs[-1]["path"], reqs[-1]["body"], reqs[-1]["status"]),
                         ("/actions", {"action_type": "SendCtrlAltDel"}, 204))
        self.assertFalse(harness.pid_alive(sb["vmm_pid"]))
        self.assertFalse(os.path.exists(run))
        self.assertTrue(wait_until(lambda: not harness.processes_mentioning(run), 60))
        self.assertTrue(wait_until(lambda: not fake_qemus(sid), 60))

    def test_healthz_and_console_show_firecracker(self):
        status, body, _ = self.d.request("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body["vmm"]["driver"], "firecracker")
        self.assertEqual(body["vmm"]["selected_because"], "--vmm firecracker")
        self.assertIn(FAKE_FC, body["vmm"]["description"])
        sb = self.d.create(language_pack="shell")
        try:
            # Firecracker's stdout is the guest serial console: vmm.log serves as the console.
            status, body, _ = self.d.request("GET", f"/sandboxes/{sb['id']}/console")
            self.assertEqual(status, 200)
            self.assertIn("emberd-init", body["console"])
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)


class FirecrackerSnapshotTest(unittest.TestCase):
    """Templates and clones through the fake's snapshot API, read back from its request log."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emfs.", dir="/tmp")
        cls.log = os.path.join(cls.tmp, "requests.jsonl")
        cls.d = harness.Daemon(*UNJAILED, "--prewarm", env={"FAKE_FC_LOG": cls.log})
        cls.d.wait_health_or_stop(lambda h: h["templates"]["ready"] >= 2, 300, "both templates")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def clone(self, pack="python"):
        sb = self.d.create(language_pack=pack)
        assert_clone(self, self.d, sb)
        return sb

    def test_template_and_clone_api_sequences(self):
        tdir = os.path.join(self.d.run_dir, "templates")
        templates = [e for e in read_log(self.log)
                     if "method" in e and e["api_sock"].startswith(tdir + "/run-")]
        self.assertEqual(len({e["pid"] for e in templates}), 2)
        for pid in {e["pid"] for e in templates}:
            reqs = [e for e in templates if e["pid"] == pid]
            self.assertEqual([(r["method"], r["path"]) for r in reqs], [
                ("PUT", "/machine-config"), ("PUT", "/boot-source"), ("PUT", "/drives/pack"),
                ("PUT", "/vsock"), ("PUT", "/entropy"), ("PUT", "/actions"),
                ("PATCH", "/vm"), ("PUT", "/snapshot/create"),
                # stopping the paused template: resume it so it sees Ctrl-Alt-Del
                ("PATCH", "/vm"), ("PUT", "/actions")])
            self.assertTrue(all(r["status"] == 204 for r in reqs), reqs)
            self.assertEqual(reqs[6]["body"], {"state": "Paused"})
            create = reqs[7]["body"]
            building = os.path.dirname(create["mem_file_path"])
            self.assertRegex(building, "^" + tdir + "/[0-9a-f]{64}\\.building$")
            self.assertEqual(create, {"snapshot_type": "Full",
                                      "snapshot_path": building + "/state.part",
                                      "mem_file_path": building + "/memory"})
            self.assertEqual(reqs[8]["body"], {"state": "Resumed"})
            self.assertEqual(reqs[9]["body"], {"action_type": "SendCtrlAltDel"})
            # the template's files were renamed into place, whole (with the store's digests)
            key_dir = building[:-len(".building")]
            self.assertEqual(sorted(os.listdir(key_dir)), ["digests", "memory", "state"])

        sb = self.clone("shell")
        sid, run = sb["id"], os.path.join(self.d.run_dir, sb["id"])
        try:
            key_dir = template_dirs(self.d)[manifest_path("packs", "shell", "image")]
            reqs = api_requests(read_log(self.log), sid)
            # a fresh Firecracker gets the load and nothing else: no boot-source, no drives
            self.assertEqual([(r["method"], r["path"], r["status"]) for r in reqs],
                             [("PUT", "/snapshot/load", 204)])
            self.assertEqual(reqs[0]["body"], {
                "snapshot_path": key_dir + "/state",
                "mem_backend": {"backend_type": "File", "backend_path": key_dir + "/memory"},
                "resume_vm": True})
            # the snapshot's relative vsock socket, bound in this clone's own directory
            self.assertEqual(os.readlink(f"/proc/{sb['vmm_pid']}/cwd"), run)
            self.assertTrue(os.path.exists(os.path.join(run, "v.sock")))
            vsock = [e for e in read_log(self.log) if "vsock" in e and sid in e["api_sock"]]
            self.assertEqual(vsock[-1]["vsock"], "CONNECT 52\n")
            self.assertRegex(vsock[-1]["result"], r"^OK \d+$")
            status, res, _ = self.d.exec(sid, "echo restored")
            self.assertEqual((status, res["stdout"]), (200, "restored\n"), res)
        finally:
            self.assertEqual(self.d.delete(sid), 204)
        reqs = api_requests(read_log(self.log), sid)
        self.assertEqual([(r["method"], r["path"], r["body"]) for r in reqs[1:]],
                         [("PUT", "/actions", {"action_type": "SendCtrlAltDel"})])
        self.assertFalse(os.path.exists(run))
        self.assertTrue(wait_until(lambda: not fake_qemus(sid), 60))

    def test_two_clones_have_their_own_identity_and_the_host_clock(self):
        seen = []
        for _ in range(2):
            t0 = time.time()
            sb = self.clone()
            try:
                status, res, _ = self.d.exec(sb["id"], IDENTITY)
                t1 = time.time()
                self.assertEqual(status, 200, res)
                rand, uid, guest_time = res["stdout"].split()
                # The guest's clock was set from the host's at the handshake, during the create
                # (late by however long the guest took to handle it): it reads between the
                # create's start and the exec's end (host time), 1 s either way.
                self.assertGreater(float(guest_time), t0 - 1.0)
                self.assertLess(float(guest_time), t1 + 1.0)
                seen.append((rand, uid))
            finally:
                self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assertNotEqual(seen[0][0], seen[1][0], "clones share their RNG")
        self.assertNotEqual(seen[0][1], seen[1][1], "clones share uuid4 state")

    def test_a_write_in_one_clone_is_invisible_to_another_and_the_template(self):
        memory = os.path.join(template_dirs(self.d)[manifest_path("packs", "python", "image")],
                              "memory")
        before = os.stat(memory)
        harness.assert_clones_isolated(self, self.d, self.clone)
        # clones map the template's memory privately: the file was never written
        after = os.stat(memory)
        self.assertEqual((after.st_ino, after.st_size, after.st_mtime_ns),
                         (before.st_ino, before.st_size, before.st_mtime_ns))

    def test_the_fake_enforces_the_load_rules_on_a_real_template(self):
        key_dir = template_dirs(self.d)[manifest_path("packs", "shell", "image")]
        work = tempfile.mkdtemp(prefix="emfd.", dir=self.tmp)
        log = os.path.join(work, "requests.jsonl")
        load = {"snapshot_path": key_dir + "/state",
                "mem_backend": {"backend_type": "File", "backend_path": key_dir + "/memory"},
                "resume_vm": False}
        fc = DirectFake(work, log)
        try:
            self.assertEqual(fc.request("PUT", "/snapshot/load", load), (204, None))
            self.assertEqual(fc.request("GET", "/")[1]["state"], "Paused")
            # the vsock socket the snapshot names, relative: in this process's directory
            self.assertTrue(os.path.exists(os.path.join(work, "v.sock")))
            after_start = "not supported after starting the microVM"
            self.assertIn(after_start, fc.fault("PUT", "/actions",
                                                {"action_type": "InstanceStart"}))
            self.assertIn(after_start, fc.fault("PUT", "/boot-source",
                                                {"kernel_image_path": "/vmlinux"}))
            self.assertIn(after_start, fc.fault("PUT", "/snapshot/load", load))
            self.assertEqual(fc.request("PATCH", "/vm", {"state": "Resumed"}), (204, None))
            self.assertEqual(fc.request("GET", "/")[1]["state"], "Running")
            self.assertEqual(fc.fault("PUT", "/snapshot/create",
                                      {"snapshot_path": work + "/s", "mem_file_path": work + "/m"}),
                             "Create snapshot error: Cannot save the microVM state: Operation "
                             "not allowed: save/restore unavailable while running")
            self.assertEqual(fc.request("PUT", "/actions", {"action_type": "SendCtrlAltDel"}),
                             (204, None))
            self.assertEqual(fc.proc.wait(timeout=60), 0)
        finally:
            fc.stop()

    def test_the_fake_validates_snapshot_requests_like_firecracker(self):
        work = tempfile.mkdtemp(prefix="emfd.", dir=self.tmp)
        log = os.path.join(work, "requests.jsonl")
        mem = {"backend_type": "File", "backend_path": work + "/memory"}
        fc = DirectFake(work, log)
        try:
            before_start = "not supported before starting the microVM"
            self.assertIn(before_start, fc.fault("PATCH", "/vm", {"state": "Paused"}))
            self.assertIn(before_start, fc.fault("PUT", "/snapshot/create", {
                "snapshot_path": work + "/s", "mem_file_path": work + "/m"}))
            self.assertIn("unknown variant `Stopped`, expected one of `Paused`, `Resumed`",
                          fc.fault("PATCH", "/vm", {"state": "Stopped"}))
            self.assertIn("missing field `mem_file_path`",
                          fc.fault("PUT", "/snapshot/create", {"snapshot_path": "s"}))
            self.assertIn("missing field: either `mem_backend` or `mem_file_path` is required",
                          fc.fault("PUT", "/snapshot/load", {"snapshot_path": "s"}))
            self.assertIn("too many fields: either `mem_backend` or `mem_file_path` "
                          "exclusively is required",
                          fc.fault("PUT", "/snapshot/load", {"snapshot_path": "s",
                                                             "mem_file_path": "m",
                                                             "mem_backend": mem}))
            self.assertIn("unknown field `vsock_override`",
                          fc.fault("PUT", "/snapshot/load", {
                              "snapshot_path": "s", "mem_backend": mem,
                              "vsock_override": {"uds_path": "x"}}))
            self.assertIn("missing field `backend_path`",
                          fc.fault("PUT", "/snapshot/load", {
                              "snapshot_path": "s", "mem_backend": {"backend_type": "File"}}))
            self.assertIn("invalid type: integer `5`, expected a string",
                          fc.fault("PUT", "/snapshot/load", {"snapshot_path": 5,
                                                             "mem_backend": mem}))
            # any boot resource configured first rules a load out (and the process lives on)
            self.assertEqual(fc.request("PUT", "/machine-config",
                                        {"vcpu_count": 1, "mem_size_mib": 128}), (204, None))
            self.assertEqual(fc.fault("PUT", "/snapshot/load", {"snapshot_path": "s",
                                                                "mem_backend": mem}),
                             "Load microVM snapshot error: Loading a microVM snapshot not "
                             "allowed after configuring boot-specific resources.")
            self.assertEqual(fc.request("GET", "/")[1]["state"], "Not started")
        finally:
            fc.stop()
        # A load that fails midway ends the process, as Firecracker's does.
        fc = DirectFake(work, log)
        try:
            fault = fc.fault("PUT", "/snapshot/load", {"snapshot_path": work + "/missing",
                                                       "mem_backend": mem})
            self.assertTrue(fault.startswith("Load microVM snapshot error: Failed to restore "
                                             "from snapshot: "), fault)
            self.assertIn("No such file or directory", fault)
            self.assertNotEqual(fc.proc.wait(timeout=60), 0)
        finally:
            fc.stop()


class FirecrackerNetworkInterfaceTest(unittest.TestCase):
    """The fake's PUT /network-interfaces/{iface_id}, driven directly: Firecracker's swagger
    NetworkInterface, strictly, and the TAP opened by name at the PUT, as Firecracker does
    (a TAP someone else holds fails the PUT). Uses one persistent TAP of its own."""

    TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000

    def setUp(self):
        if os.geteuid() != 0 or not os.access("/dev/net/tun", os.W_OK):
            self.skipTest("needs root and /dev/net/tun")
        self.tap = f"embft{os.getpid() % 100000}"
        subprocess.run(["ip", "tuntap", "add", "dev", self.tap, "mode", "tap"], check=True)
        self.addCleanup(subprocess.run, ["ip", "link", "del", self.tap], check=False)
        work = tempfile.mkdtemp(prefix="emfcnic.")
        self.addCleanup(shutil.rmtree, work, True)
        self.fc = DirectFake(work, os.path.join(work, "requests.jsonl"))
        self.addCleanup(self.fc.stop)

    def hold_tap(self):
        """Attaches to the TAP as a VMM would: the fake's open by name then fails (EBUSY)."""
        import fcntl
        import struct
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        fcntl.ioctl(fd, self.TUNSETIFF,
                    struct.pack("16sH22x", self.tap.encode(), self.IFF_TAP | self.IFF_NO_PI))
        return fd

    def test_the_body_is_checked_like_firecracker(self):
        fc, path = self.fc, "/network-interfaces/eth0"
        good = {"iface_id": "eth0", "host_dev_name": self.tap, "guest_mac": "02:00:00:00:00:01"}
        self.assertIn("missing field `host_dev_name`", fc.fault("PUT", path, {"iface_id": "eth0"}))
        self.assertIn("missing field `iface_id`", fc.fault("PUT", path, {"host_dev_name": "x"}))
        self.assertIn("does not match", fc.fault("PUT", "/network-interfaces/eth1", good))
        self.assertIn("unknown field `mtu`", fc.fault("PUT", path, {**good, "mtu": 1500}))
        self.assertIn("invalid type: integer `7`, expected a string",
                      fc.fault("PUT", path, {**good, "host_dev_name": 7}))
        self.assertIn("expected a MAC address",
                      fc.fault("PUT", path, {**good, "guest_mac": "02:00:00:00:00"}))
        self.assertIn("expected struct RateLimiter",
                      fc.fault("PUT", path, {**good, "rx_rate_limiter": []}))
        fd = self.hold_tap()
        try:
            message = fc.fault("PUT", path, good)
        finally:
            os.close(fd)
        self.assertIn("Could not create the network device: Open tap device failed", message)
        self.assertIn(f"Invalid TUN/TAP Backend provided by {self.tap}", message)
        limiter = {"bandwidth": {"size": 1000000, "refill_time": 100}}
        self.assertEqual(fc.request("PUT", path, {**good, "rx_rate_limiter": limiter}),
                         (204, None))
        # the same iface again replaces it (its TAP is let go first, so the reopen works)
        self.assertEqual(fc.request("PUT", path, good), (204, None))
        # another iface may not use the same TAP
        self.assertIn(f"The host device name {self.tap} is already in use",
                      fc.fault("PUT", "/network-interfaces/eth1",
                               {"iface_id": "eth1", "host_dev_name": self.tap}))


class FirecrackerFaultTest(unittest.TestCase):
    """One daemon per fault (the fault is chosen by the environment the VMM inherits)."""
    # Far above a cold boot on a loaded TCG host (2-10 s): a fault must be reported well before
    # it (FAULT_SECONDS), which proves it was not waited out, and a silent vsock attempt (2 s)
    # leaves the boot all the time it needs.
    BOOT_TIMEOUT_MS = 60000
    FAULT_SECONDS = 30

    def run_fault(self, env, expected_status, mentions, max_seconds=FAULT_SECONDS,
                  boot_timeout_ms=BOOT_TIMEOUT_MS):
        d = harness.Daemon(*UNJAILED, *COLD, "--boot-timeout-ms", str(boot_timeout_ms),
                           env=env)
        try:
            qemus_before = fake_qemus()
            t0 = time.monotonic()
            status, body, _ = d.request("POST", "/sandboxes", {"language_pack": "shell"})
            elapsed = time.monotonic() - t0
            self.assertEqual(status, expected_status, body)
            for text in mentions:
                self.assertIn(text, body["error"]["message"])
            self.assertLess(elapsed, max_seconds, body)
            # Nothing leaks: no sandbox, no process, no file under the run directory.
            status, listing, _ = d.request("GET", "/sandboxes")
            self.assertEqual(listing["sandboxes"], [])
            self.assertTrue(wait_until(lambda: not d.vmm_pids(), 60), d.vmm_pids())
            self.assertTrue(wait_until(lambda: not fake_qemus() - qemus_before, 60))
            self.assertEqual(d.runtime_entries(), [])
            return body["error"]["message"]
        finally:
            d.stop()

    def test_api_socket_never_appears(self):
        # Fails at the boot deadline, then the stop grace kills the process.
        # A short deadline (it is waited out), and room after it for a loaded host's teardown.
        self.run_fault({"FAKE_FC_NO_SOCKET": "1"}, 504,
                       ["firecracker did not create its API socket", "fc.sock"],
                       max_seconds=6 + 30, boot_timeout_ms=6000)

    def test_fault_message_of_a_config_call_reaches_the_api_error(self):
        self.run_fault({"FAKE_FC_FAULT": "/machine-config"}, 502,
                       ["firecracker PUT /machine-config: fake firecracker: injected fault "
                        "for PUT /machine-config (FAKE_FC_FAULT)"])

    def test_fault_on_instance_start(self):
        self.run_fault({"FAKE_FC_FAULT": "/actions"}, 502,
                       ["firecracker PUT /actions: fake firecracker: injected fault"])

    def test_process_dies_mid_boot(self):
        self.run_fault({"FAKE_FC_DIE_AFTER_START": "1"}, 502,
                       ["firecracker exited before the guest agent listened on vsock port "
                        "52"])

    def assert_clone_falls_back_cold(self, env, logged, *args):
        """With both templates built under env, a create's clone fails, the create boots cold
        and works, and the daemon's log says `logged` about it."""
        d = harness.Daemon(*UNJAILED, "--prewarm", *args, env=env)
        try:
            d.wait_health(lambda h: h["templates"]["ready"] >= 2, 300, "both templates")
            sb = d.create(language_pack="shell")
            try:
                self.assertEqual(sb["boot_mode"], "cold")
                self.assertIn(logged, "".join(
                    line for line in d.read_log().splitlines() if "clone_failed" in line))
                status, res, _ = d.exec(sb["id"], "echo cold")
                self.assertEqual((status, res["stdout"]), (200, "cold\n"), res)
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()

    def test_refused_snapshot_load_falls_back_to_a_cold_boot(self):
        self.assert_clone_falls_back_cold(
            {"FAKE_FC_FAULT": "/snapshot/load"},
            "firecracker PUT /snapshot/load: fake firecracker: injected fault")

    def test_a_hung_clone_is_abandoned_in_time_to_boot_cold(self):
        # The clone's VMM never answers its snapshot load. Were the clone given the whole boot
        # deadline, the cold boot after it would have no time left. (60 s: the 10 s clone
        # deadline leaves a loaded TCG host's cold boot, 2-10 s, ample room.)
        self.assert_clone_falls_back_cold({"FAKE_FC_HANG": "/snapshot/load"}, "booting cold",
                                          "--boot-timeout-ms", "60000")

    def test_a_silent_vsock_attempt_is_retried_not_waited_out(self):
        # A CONNECT nobody answers (nor closes) costs one attempt (2 s), not the boot deadline.
        log = os.path.join(tempfile.mkdtemp(prefix="emfl.", dir="/tmp"), "requests.jsonl")
        self.addCleanup(shutil.rmtree, os.path.dirname(log), True)
        d = harness.Daemon(*UNJAILED, *COLD, "--boot-timeout-ms", str(self.BOOT_TIMEOUT_MS),
                           env={"FAKE_FC_VSOCK_SILENT_FIRST": "1", "FAKE_FC_LOG": log})
        try:
            sb = d.create(language_pack="shell")
            try:
                status, res, _ = d.exec(sb["id"], "echo answered")
                self.assertEqual((status, res["stdout"]), (200, "answered\n"), res)
                self.assertIn("no answer to `CONNECT 52` before the deadline; trying a new "
                              "connection", d.read_log())
                results = [e["result"] for e in read_log(log) if "vsock" in e]
                self.assertEqual(results[0], "held unanswered until the client hung up")
                self.assertRegex(results[-1], r"^OK \d+$")
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()

    def test_vsock_handshake_garbage(self):
        self.run_fault({"FAKE_FC_VSOCK_GARBAGE": "1"}, 502,
                       ["firecracker vsock", "answer to `CONNECT 52` is not `OK <port>`",
                        "YES PLEASE"])


class FirecrackerSelectionTest(unittest.TestCase):
    def test_missing_binary_fails_startup_clearly(self):
        proc = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--images",
                               harness.IMAGES_DIR, "--addr", "127.0.0.1:0", "--vmm",
                               "firecracker", "--firecracker-bin", "/nonexistent/firecracker"],
                              capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("firecracker", proc.stderr)
        self.assertIn("/nonexistent/firecracker", proc.stderr)

    def test_a_root_daemon_without_a_jailer_refuses_firecracker_unless_no_jail(self):
        # A Firecracker with no jailer beside it, and none on PATH.
        tmp = tempfile.mkdtemp(prefix="emfc.", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        lone = os.path.join(tmp, "firecracker")
        shutil.copy2(FAKE_FC, lone)
        env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        self.assertIsNone(shutil.which("jailer", path=env["PATH"]))
        proc = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--images",
                               harness.IMAGES_DIR, "--addr", "127.0.0.1:0", "--run-dir",
                               os.path.join(tmp, "run"), "--vmm", "firecracker",
                               "--firecracker-bin", lone],
                              capture_output=True, text=True, timeout=60, env=env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no Firecracker jailer", proc.stderr)
        self.assertIn("--no-jail", proc.stderr)
        d = harness.Daemon("--vmm", "firecracker", "--firecracker-bin", lone, "--no-jail",
                           *COLD, env={"PATH": env["PATH"]})
        try:
            status, body, _ = d.request("GET", "/healthz")
            self.assertIn("NOT JAILED (--no-jail)", body["vmm"]["description"])
            sb = d.create(language_pack="shell")
            with open(f"/proc/{sb['vmm_pid']}/status") as f:
                self.assertIn("Uid:\t0\t", f.read())
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()

    def test_auto_does_not_pick_firecracker_without_hardware_virtualization(self):
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
        if "vmx" in flags or "svm" in flags:
            self.skipTest("this host has vmx/svm: auto would rightly pick firecracker")
        d = harness.Daemon("--vmm", "auto", "--firecracker-bin", FAKE_FC)
        try:
            status, body, _ = d.request("GET", "/healthz")
            self.assertEqual(body["vmm"]["driver"], "qemu")
            self.assertIn("firecracker found but KVM unusable",
                          body["vmm"]["selected_because"])
        finally:
            d.stop()


class FirecrackerRestartTest(unittest.TestCase):
    def test_restarted_daemon_reattaches_to_a_running_firecracker(self):
        tmp = tempfile.mkdtemp(prefix="emfc.", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        log = os.path.join(tmp, "requests.jsonl")
        d1 = harness.Daemon(*UNJAILED, *COLD, env={"FAKE_FC_LOG": log})
        try:
            sb = d1.create(language_pack="shell")
            status, body, _ = d1.exec(sb["id"], "echo kept > /tmp/marker")
            self.assertEqual(status, 200, body)
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()  # its vsock stream ends; the guest ends that session
        d2 = harness.Daemon(*UNJAILED, *COLD, reuse=d1, env={"FAKE_FC_LOG": log})
        try:
            status, body, _ = d2.request("GET", f"/sandboxes/{sb['id']}")
            self.assertEqual((status, body["state"], body["vmm_pid"]),
                             (200, "ready", sb["vmm_pid"]))
            status, body, _ = d2.exec(sb["id"], "cat /tmp/marker")
            self.assertEqual((status, body["stdout"]), (200, "kept\n"), body)
            status, body, _ = d2.request("GET", f"/sandboxes/{sb['id']}/console")
            self.assertIn("emberd-init", body["console"])
            self.assertEqual(d2.delete(sb["id"]), 204)
        finally:
            d2.stop()
        entries = read_log(log)
        vsock = [e for e in entries if "vsock" in e and sb["id"] in e["api_sock"]]
        self.assertEqual(len(vsock), 2, vsock)  # one CONNECT per daemon
        reqs = api_requests(entries, sb["id"])
        self.assertEqual(reqs[-1]["body"], {"action_type": "SendCtrlAltDel"})
        self.assertEqual(sum(r["body"] == {"action_type": "InstanceStart"} for r in reqs), 1)


def tree_bytes(path):
    """Disk (tmpfs) space a directory tree takes, as du counts it: allocated blocks."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class FirecrackerConsoleFloodTest(unittest.TestCase):
    """A VMM that writes 200 MiB to its console: the daemon keeps 1 MiB of it in memory and
    writes none of it to disk (issue 10, docs/operations.md "The guest console")."""

    FLOOD = 200 << 20
    MARKER = b"fake-firecracker: console flood done %d\n" % FLOOD

    def test_console_flood_stays_bounded_in_memory_and_on_disk(self):
        d = harness.Daemon(*UNJAILED, *COLD, env={"FAKE_FC_CONSOLE_FLOOD": str(self.FLOOD)})
        try:
            rss_before = rss_bytes(d.proc.pid)
            sb = d.create(language_pack="shell")
            run = os.path.join(d.run_dir, sb["id"])
            biggest_dir, slowest, body = 0, 0.0, None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                status, health, _ = d.request("GET", "/healthz", timeout=30)
                slowest = max(slowest, time.monotonic() - t0)
                self.assertEqual(status, 200, health)
                biggest_dir = max(biggest_dir, tree_bytes(run))
                status, body, _ = d.request("GET", f"/sandboxes/{sb['id']}/console")
                self.assertEqual(status, 200, body)
                if body["total_bytes"] >= self.FLOOD and \
                        body["console"].encode().endswith(self.MARKER):
                    break
                time.sleep(0.5)
            self.assertGreaterEqual(body["total_bytes"], self.FLOOD, "the flood did not arrive")
            console = body["console"].encode()
            self.assertEqual(body["console_encoding"], "utf-8")
            self.assertTrue(console.endswith(self.MARKER), console[-200:])
            self.assertEqual(len(console), 16 * 1024)
            self.assertTrue(body["truncated"])
            # the bytes before the marker are the flood's last lines, in order
            lines = console.split(b"\n")[-5:-2]
            self.assertTrue(all(ln.startswith(b"fake-firecracker flood ") for ln in lines), lines)
            offsets = [int(ln.split()[2]) for ln in lines]
            self.assertEqual(offsets, [self.FLOOD - 192, self.FLOOD - 128, self.FLOOD - 64])
            # Nothing of it on disk: the run dir holds sockets, the FIFO and sandbox.json.
            self.assertLess(biggest_dir, 1 << 20, os.listdir(run))
            self.assertLess(slowest, 5.0, "the daemon stalled during the flood")
            # The ring (1 MiB) and its reads; not 200 MiB. Generous: the daemon is an ASan build.
            growth = rss_bytes(d.proc.pid) - rss_before
            self.assertLess(growth, 48 << 20, f"daemon RSS grew by {growth >> 20} MiB")
            status, ready, _ = d.exec(sb["id"], "echo still here")
            self.assertEqual((status, ready["stdout"]), (200, "still here\n"), ready)
            self.assertEqual(d.delete(sb["id"]), 204)
            self.assertFalse(os.path.exists(run))
            self.assertEqual(d.runtime_entries(), [])
            self.assertTrue(wait_until(lambda: not harness.processes_mentioning(run), 60))
        finally:
            d.stop()


class FirecrackerJailerTest(unittest.TestCase):
    def jail_base(self):
        """A chroot base for the fake jailer, removed after the test, and the environment that
        points the daemon at it. The fake is not chrooted: as its VM's uid it reaches the jail
        through the base's path (searchable, like /srv/jailer) and appends to requests.jsonl
        (made writable for it here)."""
        base = tempfile.mkdtemp(prefix="emj.", dir="/tmp")
        self.addCleanup(shutil.rmtree, base, True)
        if os.stat(base).st_dev != os.stat(harness.IMAGES_DIR).st_dev:
            self.skipTest("hard links need the jail and the images on one filesystem")
        os.chmod(base, 0o755)
        log = os.path.join(base, "requests.jsonl")
        with open(log, "w"):
            pass
        os.chmod(log, 0o666)
        return base, {"EMBERD_JAILER_CHROOT_BASE": base}

    def assert_runs_as_own_uid(self, pid, uid):
        """pid runs as uid (real, effective, saved, fs; gid the same), one of the range, and
        is PID 1 of a PID namespace of its own (--new-pid-ns)."""
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        self.assertEqual(status["Uid"].split(), 4 * [str(uid)])
        self.assertEqual(status["Gid"].split(), 4 * [str(uid)])
        self.assertIn(uid, range(UID_BASE, UID_BASE + UID_COUNT))
        self.assertEqual(status["NSpid"].split(), [str(pid), "1"])

    def test_jailed_vm_boots_from_hard_links_and_its_jail_is_removed(self):
        base, env = self.jail_base()
        log = os.path.join(base, "requests.jsonl")
        d = harness.Daemon(*FC_ARGS, *COLD, "--jailer", FAKE_JAILER,
                           env={**env, "FAKE_FC_LOG": log})
        try:
            status, health, _ = d.request("GET", "/healthz")
            self.assertIn("jailer", health["vmm"]["description"])
            self.assertIn("; jailed: uid/gid", health["vmm"]["description"])
            sb = d.create(language_pack="shell", memory_mib=128)
            jail_id = sb["id"].replace("_", "-")
            instance = os.path.join(base, "firecracker", jail_id)
            root = os.path.join(instance, "root")
            try:
                uid = os.stat(root).st_uid
                self.assert_runs_as_own_uid(sb["vmm_pid"], uid)
                # the jailer's pid file, root's, names the VMM the daemon took
                with open(os.path.join(root, "firecracker.pid")) as f:
                    self.assertEqual(f.read(), str(sb["vmm_pid"]))
                for name, image in (("vmlinux", manifest_path("kernel", "vmlinux")),
                                    ("initramfs", manifest_path("initramfs")),
                                    ("pack", manifest_path("packs", "shell", "image"))):
                    self.assertTrue(os.path.samefile(os.path.join(root, name), image), name)
                status, res, _ = d.exec(sb["id"], "echo jailed")
                self.assertEqual((status, res["stdout"]), (200, "jailed\n"), res)
                entries = read_log(log)
                argv = [e["jailer"] for e in entries if "jailer" in e][-1]
                self.assertEqual(argv, [
                    "--id", jail_id, "--exec-file", os.path.realpath(FAKE_FC),
                    "--uid", str(uid), "--gid", str(uid), "--chroot-base-dir", base,
                    "--cgroup-version", "2", "--cgroup", f"memory.max={(128 + 64) << 20}",
                    "--new-pid-ns", "--", "--api-sock", "/fc.sock"])
                body = {r["path"]: r["body"] for r in entries
                        if r.get("api_sock") == os.path.join(root, "fc.sock") and "method" in r}
                self.assertEqual(body["/boot-source"]["kernel_image_path"], "/vmlinux")
                self.assertEqual(body["/boot-source"]["initrd_path"], "/initramfs")
                self.assertEqual(body["/drives/pack"]["path_on_host"], "/pack")
                self.assertEqual(body["/vsock"]["uds_path"], "/v.sock")
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
            self.assertFalse(os.path.exists(instance), os.listdir(os.path.dirname(instance)))
            self.assertTrue(wait_until(lambda: not harness.processes_mentioning(instance), 60))
            self.assertTrue(wait_until(lambda: not fake_qemus(sb["id"]), 60))
            cgroup2 = cgroup2_root()
            if cgroup2:
                # The fake jailer made the VM's cgroup like the real one; the driver removes it.
                parent = os.path.join(cgroup2, "firecracker")
                self.addCleanup(remove_shared_cgroup, parent)
                self.assertFalse(os.path.exists(os.path.join(parent, jail_id)))
        finally:
            d.stop()

    def test_by_default_each_vm_runs_jailed_as_its_own_uid_in_a_new_pid_namespace(self):
        base, env = self.jail_base()
        log = os.path.join(base, "requests.jsonl")
        # No --jailer: the one beside the firecracker binary is found and used.
        d = harness.Daemon(*FC_ARGS, *COLD, env={**env, "FAKE_FC_LOG": log})
        try:
            self.assertIn(f"using the jailer {os.path.realpath(FAKE_JAILER)} (beside the "
                          "firecracker binary)", d.read_log())
            made = [d.create(language_pack="shell") for _ in range(2)]
            try:
                uids = []
                for sb in made:
                    root = os.path.join(base, "firecracker", sb["id"].replace("_", "-"), "root")
                    uids.append(os.stat(root).st_uid)
                    self.assert_runs_as_own_uid(sb["vmm_pid"], uids[-1])
                    status, res, _ = d.exec(sb["id"], "echo own uid")
                    self.assertEqual((status, res["stdout"]), (200, "own uid\n"), res)
                self.assertNotEqual(uids[0], uids[1])
                argvs = [e["jailer"] for e in read_log(log) if "jailer" in e]
                self.assertEqual(len(argvs), 2)
                for argv, uid in zip(argvs, uids):
                    self.assertIn("--new-pid-ns", argv[:argv.index("--")])
                    self.assertEqual(argv[argv.index("--uid") + 1], str(uid))
                    self.assertEqual(argv[argv.index("--gid") + 1], str(uid))
            finally:
                for sb in made:
                    self.assertEqual(d.delete(sb["id"]), 204)
            for sb in made:
                self.assertTrue(wait_until(lambda: not harness.pid_alive(sb["vmm_pid"]), 60))
            self.assertEqual(os.listdir(os.path.join(base, "firecracker")), [])
        finally:
            d.stop()

    def test_a_symlink_planted_in_a_jail_does_not_redirect_the_chown(self):
        base, env = self.jail_base()
        # A host file a compromised VMM would like root to make its own and world-readable.
        target = os.path.join(base, "host-secret")
        with open(target, "w") as f:
            f.write("secret\n")
        os.chmod(target, 0o600)
        os.chown(target, 12345, 12345)
        d = harness.Daemon(*FC_ARGS, "--jailer", FAKE_JAILER, "--prewarm",
                           env={**env, "FAKE_FC_SNAPSHOT_SYMLINK": target})
        try:
            self.assertTrue(wait_until(lambda: "template.failed" in d.read_log(), 300),
                            "no template build failed")
            st = os.stat(target)
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (12345, 12345, 0o600))
            with open(target) as f:
                self.assertEqual(f.read(), "secret\n")
            # the symlink, moved out, was opened with O_NOFOLLOW: refused, and removed
            self.assertIn("(moved out of the jail): Too many levels of symbolic links",
                          d.read_log())
            tdir = os.path.join(d.run_dir, "templates")
            for dirpath, _, files in os.walk(tdir):
                for name in files:
                    self.assertFalse(os.path.islink(os.path.join(dirpath, name)), name)
            # creates still work: they boot cold
            sb = d.create(language_pack="shell")
            self.assertEqual(sb["boot_mode"], "cold", sb)
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()

    def test_jailed_template_and_clones_share_its_files_through_hard_links(self):
        base, env = self.jail_base()
        log = os.path.join(base, "requests.jsonl")
        d = harness.Daemon(*FC_ARGS, "--jailer", FAKE_JAILER, "--prewarm",
                           env={**env, "FAKE_FC_LOG": log})
        jails = os.path.join(base, "firecracker")
        try:
            d.wait_health(lambda h: h["templates"]["ready"] >= 2, 300, "both templates")
            # Jailed templates snapshot inside their jail; the files were moved out, made the
            # daemon's and read-only for the jailed uid, and the template jails are gone.
            creates = [e["body"] for e in read_log(log) if e.get("path") == "/snapshot/create"]
            self.assertEqual(creates, 2 * [{"snapshot_type": "Full", "snapshot_path": "/state",
                                            "mem_file_path": "/memory"}])
            tdir = os.path.join(d.run_dir, "templates")
            keys = [k for k in os.listdir(tdir) if len(k) == 64]
            self.assertEqual(len(keys), 2, os.listdir(tdir))
            # memory: the template store seals it (root's, 0400) once the template VM stopped
            for key in keys:
                for name, mode in (("memory", 0o400), ("state", 0o644)):
                    st = os.stat(os.path.join(tdir, key, name))
                    self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777),
                                     (os.geteuid(), os.getegid(), mode), name)
            self.assertTrue(wait_until(
                lambda: not [j for j in os.listdir(jails) if j.startswith("tpl-")], 60))

            made = [d.create(language_pack="shell") for _ in range(2)]
            try:
                for sb in made:
                    self.assertEqual(sb["boot_mode"], "clone", sb)
                    root = os.path.join(jails, sb["id"].replace("_", "-"), "root")
                    loads = [e for e in read_log(log) if e.get("path") == "/snapshot/load"
                             and e["api_sock"] == os.path.join(root, "fc.sock")]
                    self.assertEqual(loads[0]["body"], {
                        "snapshot_path": "/state",
                        "mem_backend": {"backend_type": "File", "backend_path": "/memory"},
                        "resume_vm": True})
                    state = os.path.join(root, "state")
                    key_dir = os.path.dirname(next(
                        os.path.join(tdir, k, "state") for k in keys
                        if os.path.samefile(os.path.join(tdir, k, "state"), state)))
                    # the sealed memory is unreadable to the clone's uid: it gets a copy,
                    # readable, not writable, with the template's RAM
                    st = os.stat(os.path.join(root, "memory"))
                    self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o444))
                    self.assertEqual(st.st_size,
                                     os.stat(os.path.join(key_dir, "memory")).st_size)
                    self.assertTrue(os.path.samefile(os.path.join(root, "pack"),
                                                     manifest_path("packs", "shell", "image")))
                    # what a clone needs and no more: the template loaded the kernel
                    self.assertFalse(os.path.exists(os.path.join(root, "vmlinux")))
                    self.assertTrue(os.path.exists(os.path.join(root, "v.sock")))
                    status, res, _ = d.exec(sb["id"], "echo jailed clone")
                    self.assertEqual((status, res["stdout"]), (200, "jailed clone\n"), res)
            finally:
                for sb in made:
                    self.assertEqual(d.delete(sb["id"]), 204)
            self.assertEqual(os.listdir(jails), [])
            for key in keys:  # the clones' jails held links only
                self.assertEqual(sorted(os.listdir(os.path.join(tdir, key))),
                                 ["digests", "memory", "state"])
        finally:
            d.stop()
            cgroup2 = cgroup2_root()
            parent = os.path.join(cgroup2, "firecracker") if cgroup2 else None
            if parent and os.path.isdir(parent):
                try:
                    os.rmdir(parent)  # the fake jailer's parent cgroup, when it made one
                except OSError:
                    pass

    def test_a_restarted_daemon_kills_a_jailed_vmm_it_cannot_reattach(self):
        base, env = self.jail_base()
        args = (*FC_ARGS, *COLD, "--jailer", FAKE_JAILER)
        d1 = harness.Daemon(*args, env=env)
        try:
            kept = d1.create(language_pack="shell", memory_mib=128)
            lost = d1.create(language_pack="shell", memory_mib=128)
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()
        # Both VMMs outlive the daemon; one record is lost, as when a daemon dies between
        # starting a VM and writing its record. A jailed VMM's command line names only its
        # jail, not the run directory, so only the driver can find it.
        lost_jail = os.path.join(base, "firecracker", lost["id"].replace("_", "-"))
        self.assertTrue(harness.pid_alive(lost["vmm_pid"]))
        self.assertTrue(os.path.isdir(lost_jail))
        with open(f"/proc/{lost['vmm_pid']}/cmdline") as f:
            self.assertNotIn(d1.run_dir, f.read())
        os.remove(os.path.join(d1.run_dir, lost["id"], "sandbox.json"))
        d2 = harness.Daemon(*args, env=env, reuse=d1)
        try:
            self.assertFalse(harness.pid_alive(lost["vmm_pid"]))
            self.assertFalse(os.path.exists(lost_jail), os.listdir(os.path.dirname(lost_jail)))
            self.assertTrue(wait_until(lambda: not fake_qemus(lost["id"]), 60))
            self.assertIn("re-attached 1 sandboxes, cleaned 1, killed 1 stray", d2.read_log())
            # the other one was re-attached, jail and all
            status, body, _ = d2.request("GET", "/sandboxes")
            self.assertEqual([s["id"] for s in body["sandboxes"]], [kept["id"]])
            status, res, _ = d2.exec(kept["id"], "echo still jailed")
            self.assertEqual((status, res["stdout"]), (200, "still jailed\n"), res)
            self.assertEqual(d2.delete(kept["id"]), 204)
        finally:
            d2.stop()

    def test_a_restarted_daemon_kills_the_jailed_vmm_of_an_unfinished_template_build(self):
        base, env = self.jail_base()
        jails = os.path.join(base, "firecracker")
        tdir = None
        d1 = harness.Daemon(*FC_ARGS, "--jailer", FAKE_JAILER, "--prewarm", env=env)
        try:
            tdir = os.path.join(d1.run_dir, "templates")

            def building_vm():
                """The jail id of a template VM whose build is under way, once its VM runs."""
                if not any(n.endswith(".building") for n in os.listdir(tdir)):
                    return None
                for jail in os.listdir(jails) if os.path.isdir(jails) else []:
                    if jail.startswith("tpl-") and fake_qemus(jail.replace("-", "_")):
                        return jail
                return None

            # the jail seen under way (asking again could find the build already finished)
            jail = wait_until(building_vm, 60)
            self.assertTrue(jail, "no template build under way")
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()
        # The daemon died mid-build: its template VM runs on, jailed, under no record at all.
        tpl_id = jail.replace("-", "_")
        self.assertTrue(fake_qemus(tpl_id))
        # No --prewarm: the restarted daemon must not build that same template (same jail)
        d2 = harness.Daemon(*FC_ARGS, "--jailer", FAKE_JAILER, env=env, reuse=d1)
        try:
            self.assertIn("killed the VMM of an unfinished template build", d2.read_log())
            self.assertTrue(wait_until(lambda: not fake_qemus(tpl_id), 60))
            self.assertFalse(os.path.exists(os.path.join(jails, jail)), os.listdir(jails))
            self.assertFalse(harness.processes_mentioning(os.path.join(jails, jail)))
            self.assertEqual([n for n in os.listdir(tdir) if n.endswith(".building")], [])
        finally:
            d2.stop()


if __name__ == "__main__":
    unittest.main()


class WedgedFakeGuestTest(unittest.TestCase):
    """harness.wedged_fake_guest, which lets create() retry the fake's known TCG fault, matches
    what the daemon says today: a cold boot's deadline (firecracker.c) and a clone's
    (fc_vsock.c). When a wording changes this fails, instead of the retry quietly stopping (a
    CI run once failed on a wedged cold boot whose newer wording the check did not know)."""

    CONSOLE = ("(guest console ends: ...emberd-init: 2409 ms: agent serving (execs as uid 1000) "
               "fake-firecracker: agent port still closed 10 s after start; RIP=ffffffff8101cf0e "
               "RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1 CR0=80050033)")

    def daemon_wording(self, source, prefix):
        with open(os.path.join(harness.REPO, "src", "vmm", source)) as f:
            # adjacent C string literals joined, as the compiler does
            text = re.sub(r'"\s*\n\s*"', "", f.read())
        start = text.index(prefix)
        return text[start:text.index('"', start)].replace("%u", "52")

    def body(self, message):
        return {"error": {"code": "guest_timeout", "message": message}}

    def test_both_deadline_wordings_are_recognised(self):
        cold = self.daemon_wording("firecracker.c", "the guest agent did not listen")
        clone = self.daemon_wording("fc_vsock.c", "no answer to `CONNECT")
        for wording in (cold, clone):
            with self.subTest(wording=wording):
                self.assertTrue(harness.wedged_fake_guest(
                    self.body(f"boot sandbox: {wording} {self.CONSOLE}")))

    def test_other_failures_are_not_retried(self):
        cold = self.daemon_wording("firecracker.c", "the guest agent did not listen")
        for message in (f"boot sandbox: {cold} (guest console ends: ...agent serving)",
                        f"boot sandbox: {cold} " + self.CONSOLE.replace("HLT=1", "HLT=0"),
                        "firecracker exited before the guest agent listened on vsock port 52 "
                        + self.CONSOLE):
            with self.subTest(message=message):
                self.assertFalse(harness.wedged_fake_guest(self.body(message)))
        self.assertFalse(harness.wedged_fake_guest("not a dict"))
