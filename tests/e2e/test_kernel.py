"""Checks emberd's minimal guest kernel (kernel/minimal/, built by `make images` from
rootfs/kernel/minimal.config) and the Debian stock kernel it falls back to: the minimal kernel's
.config holds every option the fragment asks for and nothing modular; VMs boot on it (bzImage and
the PVH ELF vmlinux) and run python and shell through ember-vm; the stock kernel still boots.
Each VM runs from a private images directory (symlinks + its own packs.json), so these tests do
not depend on which kernel IMAGES_DIR/packs.json selects.
Run: IMAGES_DIR=... python3 -m unittest discover -s tests/e2e -p 'test_kernel.py'"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EMBER_VM = os.path.join(harness.ASAN_BIN, "ember-vm")
FRAGMENT = os.path.join(harness.REPO, "rootfs", "kernel", "minimal.config")
MINIMAL = os.path.join(harness.IMAGES_DIR, "kernel", "minimal")
MANIFEST = os.path.join(harness.IMAGES_DIR, "packs.json")

# What the guest cannot do without, whatever the fragment says: a fragment edit that drops one
# of these fails here, not in a VM that half works.
REQUIRED = """
64BIT SMP PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS PROC_FS
SYSFS TMPFS TMPFS_XATTR BINFMT_ELF BINFMT_SCRIPT MULTIUSER FUTEX EPOLL SIGNALFD TIMERFD EVENTFD
SHMEM FILE_LOCKING POSIX_TIMERS UNIX98_PTYS NET UNIX INET VSOCKETS VIRTIO_VSOCKETS VIRTIO_MMIO
VIRTIO_MMIO_CMDLINE_DEVICES ACPI PCI BLOCK BLK_DEV VIRTIO_BLK VIRTIO_CONSOLE HW_RANDOM
HW_RANDOM_VIRTIO SQUASHFS SQUASHFS_ZSTD SQUASHFS_XATTR OVERLAY_FS CGROUPS MEMCG CGROUP_PIDS
SERIO SERIO_I8042 INPUT KEYBOARD_ATKBD HYPERVISOR_GUEST PVH SECCOMP SECCOMP_FILTER
STACKPROTECTOR STACKPROTECTOR_STRONG
CPU_MITIGATIONS PAGE_TABLE_ISOLATION RETPOLINE VMAP_STACK HARDENED_USERCOPY SLAB_FREELIST_HARDENED
SLAB_FREELIST_RANDOM
NETDEVICES VIRTIO_NET
""".split()
# Whole subsystems a sandbox guest has no use for: attack surface and boot time. The one NIC
# driver is virtio-net (a networked sandbox's, docs/network.md): no other NIC, no TUN.
ABSENT = """
MODULES VT IPV6 ETHERNET WLAN TUN PHYLIB WIRELESS USB_SUPPORT SOUND DRM FB EFI IO_URING BPF_SYSCALL
IA32_EMULATION X86_X32_ABI KVM MODULE_SIG DEBUG_INFO KALLSYMS
""".split()


def read_kconfig(path):
    """{CONFIG_X: value or None} for `CONFIG_X=v` and `# CONFIG_X is not set` lines."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
            if m:
                values[m.group(1)] = m.group(2)
                continue
            m = re.match(r"^# (CONFIG_\w+) is not set$", line)
            if m:
                values[m.group(1)] = None
    return values


def load_manifest():
    harness.require_images()
    with open(MANIFEST, encoding="utf-8") as f:
        return json.load(f)


def images_with_kernel(tmp, bzimage, vmlinux, release):
    """A private images dir: the real initramfs, packs and kernels via symlinks, and a packs.json
    whose `kernel` object names the given files (paths relative to IMAGES_DIR)."""
    for name in ("initramfs.cpio.gz", "packs", "kernel"):
        os.symlink(os.path.join(harness.IMAGES_DIR, name), os.path.join(tmp, name))
    manifest = load_manifest()
    manifest["kernel"] = {"bzimage": bzimage, "vmlinux": vmlinux, "release": release}
    with open(os.path.join(tmp, "packs.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return tmp


def run_vm(images, steps, pack="python"):
    """Boots a VM from `images` with --keep-dir; returns (result, stderr, console log)."""
    proc = subprocess.run([EMBER_VM, "--images", images, "--pack", pack, "--keep-dir"],
                          input=json.dumps({"steps": steps}), capture_output=True, text=True,
                          timeout=600)
    run_dir = None
    m = re.search(r'"run_dir":"([^"]+)"', proc.stdout)
    if m:
        run_dir = m.group(1)
    console = ""
    try:
        if run_dir:
            with open(os.path.join(run_dir, "console.log"), errors="replace") as f:
                console = f.read()
    finally:
        if run_dir and run_dir.startswith("/tmp/ember-vm."):
            shutil.rmtree(run_dir, ignore_errors=True)
    problems = harness.sanitizer_problems(proc.stderr)
    if proc.returncode != 0 or problems:
        raise AssertionError(f"ember-vm failed ({proc.returncode}): {proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-4000:]}\n--- console ---\n{console[-3000:]}")
    return json.loads(proc.stdout), proc.stderr, console


def exec_step(code, **fields):
    fields["code"] = code
    return {"exec": fields}


# Everything the issue says must work on the minimal kernel, checked in one exec (as the sandbox
# user, like any user code); prints one JSON object.
GUEST_CHECKS = r"""
import json, os, socket, sqlite3, threading, uuid
r = {"release": os.uname().release}
r["urandom"] = len(os.urandom(32))
r["uuid"] = uuid.UUID(str(uuid.uuid4())).version
db = sqlite3.connect("/tmp/check.db")
db.execute("create table t (x)"); db.executemany("insert into t values (?)", [(i,) for i in range(100)])
db.commit(); r["sqlite"] = db.execute("select sum(x) from t").fetchone()[0]; db.close()
out = []
threads = [threading.Thread(target=lambda i=i: out.append(sum(range(i * 1000)))) for i in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
r["threads"] = len(out)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
cli = socket.create_connection(srv.getsockname(), timeout=10); conn, _ = srv.accept()
cli.sendall(b"ping"); r["tcp"] = conn.recv(4).decode()
a, b = socket.socketpair(socket.AF_UNIX); a.sendall(b"unix"); r["unix"] = b.recv(4).decode()
u = socket.socket(socket.AF_UNIX); u.bind("/tmp/check.sock"); r["unix_path"] = os.path.exists("/tmp/check.sock")
v = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM); r["vsock"] = v.family == socket.AF_VSOCK; v.close()
with open("/home/sandbox/written", "w") as f: f.write("overlay")
r["overlay_write"] = open("/home/sandbox/written").read()
mounts = [l.split() for l in open("/proc/mounts")]
r["root_fs"] = [m[2] for m in mounts if m[1] == "/"][-1]
r["cgroup2"] = any(m[1] == "/sys/fs/cgroup" and m[2] == "cgroup2" for m in mounts)
r["controllers"] = sorted(open("/sys/fs/cgroup/cgroup.controllers").read().split())
r["lo_up"] = int(open("/sys/class/net/lo/flags").read(), 16) & 1 == 1
print(json.dumps(r))
"""


class MinimalKernelConfigTest(unittest.TestCase):
    def setUp(self):
        config = os.path.join(MINIMAL, "config")
        if not os.path.isfile(config):
            self.fail(f"{config} is missing: `make images` builds the minimal kernel "
                      "(unless KERNEL=stock)")
        self.config = read_kconfig(config)
        self.fragment = read_kconfig(FRAGMENT)

    def test_every_option_of_the_fragment_took(self):
        wrong = [f"{k}: asked {v}, got {self.config.get(k)}"
                 for k, v in self.fragment.items() if self.config.get(k) != v]
        self.assertEqual(wrong, [])

    def test_required_options_are_built_in(self):
        missing = [o for o in REQUIRED if self.config.get(f"CONFIG_{o}") != "y"]
        self.assertEqual(missing, [], "must be =y (built in, not modules)")
        for o in REQUIRED:
            self.assertIn(f"CONFIG_{o}", self.fragment, f"{o} is on only by accident of a select; "
                          "ask for it in rootfs/kernel/minimal.config")

    def test_no_modules_and_no_unneeded_subsystems(self):
        self.assertIsNone(self.config.get("CONFIG_MODULES"), "CONFIG_MODULES must be off")
        self.assertEqual([k for k, v in self.config.items() if v == "m"], [])
        present = [o for o in ABSENT if self.config.get(f"CONFIG_{o}") not in (None,)]
        self.assertEqual(present, [])

    def test_release_files_agree(self):
        with open(os.path.join(MINIMAL, "release"), encoding="utf-8") as f:
            release = f.read().strip()
        local = self.config["CONFIG_LOCALVERSION"].strip('"')
        self.assertRegex(release, r"^\d+\.\d+\.\d+" + re.escape(local) + "$")

    def test_images_are_a_bzimage_and_a_pvh_elf(self):
        with open(os.path.join(MINIMAL, "bzImage"), "rb") as f:
            self.assertEqual(f.read(0x206)[0x202:], b"HdrS")
        vmlinux = os.path.join(MINIMAL, "vmlinux")
        with open(vmlinux, "rb") as f:
            self.assertEqual(f.read(4), b"\x7fELF")
        notes = subprocess.run(["readelf", "-n", vmlinux], capture_output=True, text=True,
                               check=True).stdout
        self.assertRegex(notes, r"Xen\s+0x[0-9a-f]+\s+(Unknown note type: \(0x00000012\)|.*PHYS32)",
                         "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)")


class ManifestSelectionTest(unittest.TestCase):
    def test_manifest_selects_the_minimal_kernel_unless_kernel_stock(self):
        manifest = load_manifest()
        if os.environ.get("KERNEL") == "stock":
            want = {"bzimage": "kernel/vmlinuz", "vmlinux": "kernel/vmlinux"}
            release_file = os.path.join(harness.IMAGES_DIR, "kernel", "release")
        else:
            want = {"bzimage": "kernel/minimal/bzImage", "vmlinux": "kernel/minimal/vmlinux"}
            release_file = os.path.join(MINIMAL, "release")
        with open(release_file, encoding="utf-8") as f:
            want["release"] = f.read().strip()
        self.assertEqual(manifest["kernel"], want)


# What a sandbox user gets from unshare(CLONE_NEWUSER), and the sysctl that decides it.
USERNS_CHECK = (
    "import ctypes, errno, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "p = '/proc/sys/user/max_user_namespaces'\n"
    "m = open(p).read().strip() if os.path.exists(p) else 'absent'\n"
    "r = libc.unshare(0x10000000)\n"
    "print(f'max={m} unshare={r} errno={errno.errorcode.get(ctypes.get_errno(), 0)}')\n")


class KernelBootTest(unittest.TestCase):
    def setUp(self):
        harness.require_images()
        self.tmp = tempfile.mkdtemp(prefix="emberd-kernel-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        with open(os.path.join(harness.IMAGES_DIR, "kernel", "release"), encoding="utf-8") as f:
            self.stock_release = f.read().strip()

    def minimal_images(self, entry="bzImage"):
        if not os.path.isfile(os.path.join(MINIMAL, "release")):
            self.fail(f"no minimal kernel in {MINIMAL}: run `make images`")
        with open(os.path.join(MINIMAL, "release"), encoding="utf-8") as f:
            self.release = f.read().strip()
        # ember-vm's QEMU driver passes `bzimage` to -kernel; QEMU boots an ELF through its PVH
        # entry, so naming the vmlinux there tests the path Firecracker uses.
        return images_with_kernel(self.tmp, f"kernel/minimal/{entry}", "kernel/minimal/vmlinux",
                                  self.release)

    def assert_modules_skipped(self, console, release):
        self.assertIn(f"loaded 0 kernel module(s) from /lib/modules/{release}", console)

    def test_minimal_kernel_runs_python_with_everything_the_guest_needs(self):
        out, _, console = run_vm(self.minimal_images(), [
            exec_step("print(6*7)"),
            exec_step(GUEST_CHECKS, timeout_ms=120000),  # many imports in a cold TCG guest
            exec_step("while True: pass", timeout_ms=1500),
            exec_step("print('after timeout')"),
        ])
        r = out["results"]
        self.assertEqual(r[0]["stdout"], "42\n")
        self.assertEqual(r[1]["exit_code"], 0, r[1]["stderr"])
        checks = json.loads(r[1]["stdout"])
        self.assertEqual(checks, {
            "release": self.release, "urandom": 32, "uuid": 4, "sqlite": 4950, "threads": 4,
            "tcp": "ping", "unix": "unix", "unix_path": True, "vsock": True,
            "overlay_write": "overlay", "root_fs": "overlay", "cgroup2": True,
            "controllers": checks["controllers"], "lo_up": True})
        self.assertTrue({"memory", "pids"} <= set(checks["controllers"]), checks["controllers"])
        self.assertTrue(r[2]["timed_out"])
        self.assertEqual(r[2]["signal"], 9)
        self.assertEqual(r[3]["stdout"], "after timeout\n")
        # The initramfs carries the stock kernel's modules; emberd-init finds none for this
        # kernel's release and loads nothing.
        self.assert_modules_skipped(console, self.release)
        self.assertNotIn("load kernel modules", console)
        self.assertIn("root is the pack overlay", console)

    def test_minimal_kernel_runs_shell(self):
        out, _, _ = run_vm(self.minimal_images(), [
            exec_step("echo hi; uname -r; exit 3"),
            exec_step("awk '{ print $NF }' /proc/filesystems | "
                      "grep -x -E 'squashfs|overlay|tmpfs|cgroup2' | sort | tr '\\n' ' '"),
        ], pack="shell")
        r = out["results"]
        self.assertEqual(r[0]["stdout"], f"hi\n{self.release}\n")
        self.assertEqual(r[0]["exit_code"], 3)
        self.assertEqual(r[1]["stdout"], "cgroup2 overlay squashfs tmpfs ")

    def test_minimal_kernel_boots_through_its_pvh_entry(self):
        out, _, console = run_vm(self.minimal_images("vmlinux"), [
            exec_step("import os; print(6*7, os.uname().release)")])
        self.assertEqual(out["results"][0]["stdout"], f"42 {self.release}\n")
        self.assert_modules_skipped(console, self.release)

    def test_stock_kernel_fallback_still_boots(self):
        images = images_with_kernel(self.tmp, "kernel/vmlinuz", "kernel/vmlinux",
                                    self.stock_release)
        out, _, console = run_vm(images, [
            exec_step("import os, socket; socket.socket(socket.AF_VSOCK); "
                      "print(6*7, os.uname().release)"),
            exec_step(USERNS_CHECK)])
        self.assertEqual(out["results"][0]["stdout"], f"42 {self.stock_release}\n")
        # This kernel has user namespaces; the agent turns them off for the sandbox user.
        self.assertEqual(out["results"][1]["stdout"], "max=0 unshare=-1 errno=ENOSPC\n")
        self.assertRegex(console, r"loaded [1-9]\d* kernel module\(s\) from /lib/modules/"
                         + re.escape(self.stock_release))
        out, _, _ = run_vm(images, [exec_step("uname -r")], pack="shell")
        self.assertEqual(out["results"][0]["stdout"], f"{self.stock_release}\n")


if __name__ == "__main__":
    unittest.main()
