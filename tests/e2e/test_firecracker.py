"""End-to-end tests of the Firecracker driver against tests/fakes/firecracker (Firecracker itself
cannot run here: no hardware virtualization). The fake serves Firecracker's real API on its
socket, validates every request like Firecracker, boots the guest with QEMU under TCG and
emulates the hybrid vsock (docs/firecracker.md says what this does and does not prove).

- FirecrackerApiTest: the whole HTTP API suite (test_api.ApiTest) with --vmm firecracker.
- FirecrackerConfigTest: the exact configuration the driver sends, and SendCtrlAltDel on delete,
  read back from the fake's request log.
- FirecrackerFaultTest: a firecracker that never creates its socket, refuses a PUT, dies
  mid-boot or answers the vsock handshake with garbage: clean, prompt failures, nothing leaked.
- FirecrackerSelectionTest: --vmm auto never picks the fake without hardware virtualization.
- FirecrackerRestartTest: a restarted daemon re-attaches to a running Firecracker.
- FirecrackerJailerTest: --jailer with tests/fakes/jailer (chroot layout, hard links, cleanup).
"""

import json
import os
import shutil
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


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class FirecrackerApiTest(test_api.ApiTest):
    """Every test of the HTTP API suite, with the Firecracker driver."""
    daemon_args = FC_ARGS
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


class FirecrackerConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emfc.", dir="/tmp")
        cls.log = os.path.join(cls.tmp, "requests.jsonl")
        cls.d = harness.Daemon(*FC_ARGS, env={"FAKE_FC_LOG": cls.log})

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
            self.assertEqual(body["/vsock"], {"guest_cid": 3,
                                              "uds_path": os.path.join(run, "v.sock")})
            self.assertEqual(body["/entropy"], {})
            self.assertEqual(body["/actions"], {"action_type": "InstanceStart"})
            self.assertEqual(reqs[0]["api_sock"], os.path.join(run, "fc.sock"))
            # The driver retried CONNECT until the agent listened, then got OK <n>.
            vsock = [e for e in read_log(self.log) if "vsock" in e and sid in e["api_sock"]]
            self.assertEqual(vsock[-1]["vsock"], "CONNECT 1024\n")
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
        self.assertTrue(wait_until(lambda: not harness.processes_mentioning(run), 5))
        self.assertTrue(wait_until(lambda: not fake_qemus(sid), 5))

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


class FirecrackerFaultTest(unittest.TestCase):
    """One daemon per fault (the fault is chosen by the environment the VMM inherits)."""
    BOOT_TIMEOUT_MS = 6000

    def run_fault(self, env, expected_status, mentions, max_seconds):
        d = harness.Daemon(*FC_ARGS, "--boot-timeout-ms", str(self.BOOT_TIMEOUT_MS), env=env)
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
            self.assertTrue(wait_until(lambda: not d.vmm_pids(), 5), d.vmm_pids())
            self.assertTrue(wait_until(lambda: not fake_qemus() - qemus_before, 5))
            self.assertEqual(d.runtime_entries(), [])
            return body["error"]["message"]
        finally:
            d.stop()

    def test_api_socket_never_appears(self):
        # Fails at the boot deadline, then the stop grace kills the process.
        self.run_fault({"FAKE_FC_NO_SOCKET": "1"}, 504,
                       ["firecracker did not create its API socket", "fc.sock"],
                       self.BOOT_TIMEOUT_MS / 1000 + 5)

    def test_fault_message_of_a_config_call_reaches_the_api_error(self):
        self.run_fault({"FAKE_FC_FAULT": "/machine-config"}, 502,
                       ["firecracker PUT /machine-config: fake firecracker: injected fault "
                        "for PUT /machine-config (FAKE_FC_FAULT)"], 5)

    def test_fault_on_instance_start(self):
        self.run_fault({"FAKE_FC_FAULT": "/actions"}, 502,
                       ["firecracker PUT /actions: fake firecracker: injected fault"], 5)

    def test_process_dies_mid_boot(self):
        self.run_fault({"FAKE_FC_DIE_AFTER_START": "1"}, 502,
                       ["firecracker exited before the guest agent listened on vsock port "
                        "1024"], 5)

    def test_vsock_handshake_garbage(self):
        self.run_fault({"FAKE_FC_VSOCK_GARBAGE": "1"}, 502,
                       ["firecracker vsock", "answer to `CONNECT 1024` is not `OK <port>`",
                        "YES PLEASE"], 5)


class FirecrackerSelectionTest(unittest.TestCase):
    def test_missing_binary_fails_startup_clearly(self):
        proc = subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), "--images",
                               harness.IMAGES_DIR, "--addr", "127.0.0.1:0", "--vmm",
                               "firecracker", "--firecracker-bin", "/nonexistent/firecracker"],
                              capture_output=True, text=True, timeout=60)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("firecracker", proc.stderr)
        self.assertIn("/nonexistent/firecracker", proc.stderr)

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
        d1 = harness.Daemon(*FC_ARGS, env={"FAKE_FC_LOG": log})
        try:
            sb = d1.create(language_pack="shell")
            status, body, _ = d1.exec(sb["id"], "echo kept > /tmp/marker")
            self.assertEqual(status, 200, body)
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()  # its vsock stream ends; the guest ends that session
        d2 = harness.Daemon(*FC_ARGS, reuse=d1, env={"FAKE_FC_LOG": log})
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


class FirecrackerJailerTest(unittest.TestCase):
    def test_jailed_vm_boots_from_hard_links_and_its_jail_is_removed(self):
        base = tempfile.mkdtemp(prefix="emj.", dir="/tmp")
        self.addCleanup(shutil.rmtree, base, True)
        if os.stat(base).st_dev != os.stat(harness.IMAGES_DIR).st_dev:
            self.skipTest("hard links need the jail and the images on one filesystem")
        log = os.path.join(base, "requests.jsonl")
        d = harness.Daemon(*FC_ARGS, "--jailer", FAKE_JAILER,
                           env={"EMBERD_JAILER_CHROOT_BASE": base, "EMBERD_JAILER_UID": "4321",
                                "EMBERD_JAILER_GID": "4322", "FAKE_FC_LOG": log})
        try:
            status, health, _ = d.request("GET", "/healthz")
            self.assertIn("jailer", health["vmm"]["description"])
            sb = d.create(language_pack="shell", memory_mib=128)
            jail_id = sb["id"].replace("_", "-")
            instance = os.path.join(base, "firecracker", jail_id)
            root = os.path.join(instance, "root")
            try:
                self.assertEqual(os.stat(root).st_uid, 4321)
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
                    "--uid", "4321", "--gid", "4322", "--chroot-base-dir", base,
                    "--cgroup-version", "2", "--cgroup", f"memory.max={(128 + 64) << 20}",
                    "--", "--api-sock", "/fc.sock"])
                body = {r["path"]: r["body"] for r in entries
                        if r.get("api_sock") == os.path.join(root, "fc.sock") and "method" in r}
                self.assertEqual(body["/boot-source"]["kernel_image_path"], "/vmlinux")
                self.assertEqual(body["/boot-source"]["initrd_path"], "/initramfs")
                self.assertEqual(body["/drives/pack"]["path_on_host"], "/pack")
                self.assertEqual(body["/vsock"]["uds_path"], "/v.sock")
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
            self.assertFalse(os.path.exists(instance), os.listdir(os.path.dirname(instance)))
            self.assertTrue(wait_until(lambda: not harness.processes_mentioning(instance), 5))
            self.assertTrue(wait_until(lambda: not fake_qemus(sb["id"]), 5))
            cgroup2 = cgroup2_root()
            if cgroup2:
                # The fake jailer made the VM's cgroup like the real one; the driver removes it.
                parent = os.path.join(cgroup2, "firecracker")
                self.addCleanup(lambda: os.path.isdir(parent) and os.rmdir(parent))
                self.assertFalse(os.path.exists(os.path.join(parent, jail_id)))
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
