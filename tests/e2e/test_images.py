"""Checks the artifacts `make images` (rootfs/build.sh) put in IMAGES_DIR: the manifest, the kernels,
the initramfs and every pack image. Read-only: never builds or changes anything.
(tests/e2e/test_kernel.py checks the minimal kernel's config and boots both kernels.)
Run: IMAGES_DIR=... python3 -m unittest discover -s tests/e2e -p 'test_images.py'"""

import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOTFS = os.path.join(REPO, "rootfs")
IMAGES_DIR = os.environ.get("IMAGES_DIR") or "/var/lib/emberd/images"
MANIFEST = os.path.join(IMAGES_DIR, "packs.json")
NO_IMAGES = (f"no images in IMAGES_DIR={IMAGES_DIR} ({MANIFEST} is missing): "
             "run `make images` (or rootfs/build.sh) first, or point IMAGES_DIR at a built directory")

DEFAULT_KEYS = ["exec_timeout_ms", "output_limit_bytes", "memory_mib", "vcpus", "overlay_mib"]
PACK_KEYS = ["name", "image", "sha256", "interpreter", "code", "description", "defaults"]
EXPECTED_INTERPRETERS = {"python": ["/usr/bin/python3"], "shell": ["/bin/sh"]}
# packs.json names one of these two kernels: emberd's minimal one (default) or Debian's stock one.
KERNELS = {
    "minimal": {"bzimage": "kernel/minimal/bzImage", "vmlinux": "kernel/minimal/vmlinux",
                "release_file": "kernel/minimal/release", "release": r"^\d+\.\d+\.\d+-emberd$"},
    "stock": {"bzimage": "kernel/vmlinuz", "vmlinux": "kernel/vmlinux",
              "release_file": "kernel/release", "release": r"^\d+\.\d+\.\d+-\d+-cloud-amd64$"},
}


def selected_kernel(manifest):
    """(name, facts) of the kernel packs.json points at, or (None, None)."""
    for name, facts in KERNELS.items():
        if manifest["kernel"]["bzimage"] == facts["bzimage"]:
            return name, facts
    return None, None


def stock_release():
    with open(os.path.join(IMAGES_DIR, "kernel", "release"), encoding="utf-8") as f:
        return f.read().strip()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def strict_pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys in {keys}")
    return dict(pairs)


def load_manifest():
    with open(MANIFEST, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=strict_pairs)


def module_name(path):
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def read_cpio_newc(data):
    """{name: (mode, filesize, data, rdevmajor, rdevminor)} of a newc archive, names without ./"""
    entries = {}
    pos = 0
    while True:
        header = data[pos:pos + 110]
        if len(header) != 110 or header[:6] != b"070701":
            raise AssertionError(f"bad newc header at offset {pos}")
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        pos = (name_start + namesize + 3) & ~3
        body = data[pos:pos + filesize]
        pos = (pos + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        name = name[2:] if name.startswith("./") else name.lstrip("/")
        if name in entries:
            raise AssertionError(f"{name} appears twice in the initramfs")
        entries[name] = (mode, filesize, body, rmaj, rmin)


def elf_header(data):
    """(class, data, type, machine, has PT_INTERP) of an ELF image, or None."""
    if data[:4] != b"\x7fELF":
        return None
    ei_class, ei_data = data[4], data[5]
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    has_interp = False
    if ei_class == 2 and ei_data == 1:
        e_phoff, = struct.unpack_from("<Q", data, 32)
        e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
        for i in range(e_phnum):
            p_type, = struct.unpack_from("<I", data, e_phoff + i * e_phentsize)
            has_interp |= p_type == 3
    return ei_class, ei_data, e_type, e_machine, has_interp


class ImagesTestCase(unittest.TestCase):
    def setUp(self):
        if not os.path.isfile(MANIFEST):
            self.fail(NO_IMAGES)
        self.manifest = load_manifest()

    def path(self, rel):
        self.assertFalse(rel.startswith("/") or ".." in rel.split("/"),
                         f"manifest path `{rel}` must be relative to IMAGES_DIR")
        full = os.path.join(IMAGES_DIR, rel)
        self.assertTrue(os.path.isfile(full), f"{full} (named in packs.json) is missing")
        return full

    def packs(self):
        return {p["name"]: p for p in self.manifest["packs"]}


class ManifestTest(ImagesTestCase):
    def test_manifest_has_exactly_the_documented_keys(self):
        m = self.manifest
        self.assertEqual(list(m), ["version", "kernel", "initramfs", "packs"])
        self.assertEqual(m["version"], 1)
        self.assertEqual(list(m["kernel"]), ["bzimage", "vmlinux", "release"])
        name, facts = selected_kernel(m)
        self.assertIsNotNone(name, f"packs.json names an unknown kernel: {m['kernel']}")
        self.assertEqual(m["kernel"]["vmlinux"], facts["vmlinux"])
        self.assertRegex(m["kernel"]["release"], facts["release"])
        self.assertEqual(m["initramfs"], "initramfs.cpio.gz")
        self.assertIsInstance(m["packs"], list)
        for pack in m["packs"]:
            self.assertEqual(list(pack), PACK_KEYS, f"keys of pack {pack.get('name')}")
            self.assertEqual(list(pack["defaults"]), DEFAULT_KEYS, f"defaults of {pack['name']}")
            for key, value in pack["defaults"].items():
                self.assertTrue(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                                f"{pack['name']}.defaults.{key} = {value!r}")
            # built-in packs, or packs imported with `emberctl pack import` (docs/packs.md)
            self.assertIn(pack["image"], (f"packs/{pack['name']}.squashfs",
                                          f"packs/user/{pack['name']}.squashfs"))
            self.assertRegex(pack["sha256"], r"^[0-9a-f]{64}$")
            self.assertTrue(pack["interpreter"] and all(isinstance(a, str) for a in pack["interpreter"]))
            self.assertTrue(pack["interpreter"][0].startswith("/"))
            self.assertIsInstance(pack["description"], str)
            self.assertTrue(pack["description"])
        names = [p["name"] for p in m["packs"]]
        self.assertEqual(names, sorted(set(names)), "packs sorted by name, no duplicates")

    def test_manifest_lists_python_and_shell_with_their_interpreters(self):
        packs = self.packs()
        for name, argv in EXPECTED_INTERPRETERS.items():
            self.assertIn(name, packs, f"pack `{name}` missing from packs.json")
            self.assertEqual(packs[name]["interpreter"], argv)

    def test_manifest_merges_each_pack_json(self):
        for name, pack in self.packs().items():
            if pack["image"].startswith("packs/user/"):
                continue  # imported: no spec in the tree (test_oci_import)
            src = os.path.join(ROOTFS, "packs", name, "pack.json")
            self.assertTrue(os.path.isfile(src), f"packs.json lists `{name}` but {src} does not exist")
            with open(src, encoding="utf-8") as f:
                recipe = json.load(f)
            for key in ("name", "interpreter", "code", "description", "defaults"):
                self.assertEqual(pack[key], recipe[key], f"{name}.{key} differs from {src}")

    def test_every_pack_image_matches_its_sha256(self):
        for name, pack in self.packs().items():
            self.assertEqual(sha256_file(self.path(pack["image"])), pack["sha256"],
                             f"{pack['image']} does not match the sha256 in packs.json")


class KernelTest(ImagesTestCase):
    def test_release_file_matches_manifest(self):
        _, facts = selected_kernel(self.manifest)
        with open(self.path(facts["release_file"]), encoding="utf-8") as f:
            self.assertEqual(f.read().strip(), self.manifest["kernel"]["release"])

    def test_stock_kernel_is_always_there_as_the_fallback(self):
        for rel in ("kernel/vmlinuz", "kernel/vmlinux", "kernel/release", "kernel/kernel.stamp"):
            self.path(rel)
        self.assertRegex(stock_release(), KERNELS["stock"]["release"])

    def test_bzimage_has_a_boot_header(self):
        with open(self.path(self.manifest["kernel"]["bzimage"]), "rb") as f:
            head = f.read(0x210)
        self.assertEqual(head[0x202:0x206], b"HdrS", "kernel/vmlinuz is not a bzImage")

    def test_vmlinux_is_an_x86_64_elf_executable(self):
        path = self.path(self.manifest["kernel"]["vmlinux"])
        with open(path, "rb") as f:
            head = f.read(4096)
        ident = elf_header(head)
        self.assertIsNotNone(ident, "kernel/vmlinux has no ELF magic")
        ei_class, ei_data, e_type, e_machine, _ = ident
        self.assertEqual((ei_class, ei_data, e_type, e_machine), (2, 1, 2, 62),
                         "want ELF64, little-endian, ET_EXEC, EM_X86_64")
        if shutil.which("readelf"):
            out = subprocess.run(["readelf", "-h", path], capture_output=True, text=True, check=True)
            self.assertIn("X86-64", out.stdout)
        self.assertGreater(os.path.getsize(path),
                           os.path.getsize(self.path(self.manifest["kernel"]["bzimage"])),
                           "vmlinux should be the decompressed kernel, larger than the bzImage")


class InitramfsTest(ImagesTestCase):
    def setUp(self):
        super().setUp()
        with gzip.open(self.path(self.manifest["initramfs"])) as f:
            self.entries = read_cpio_newc(f.read())
        # The modules are the stock kernel's, whichever kernel packs.json selects: the minimal
        # kernel has none, and emberd-init skips loading when its release has no modules.dep.
        self.release = stock_release()
        self.moddir = f"lib/modules/{self.release}"

    def modules_dep(self):
        self.assertIn(f"{self.moddir}/modules.dep", self.entries)
        deps = {}
        for line in self.entries[f"{self.moddir}/modules.dep"][2].decode().splitlines():
            key, sep, rest = line.partition(":")
            self.assertTrue(sep, f"bad modules.dep line `{line}`")
            deps[key] = rest.split()
        return deps

    def wanted_modules(self):
        names = []
        with open(os.path.join(ROOTFS, "initramfs", "modules.list"), encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    names.append(line.replace("-", "_"))
        return names

    def test_init_is_a_static_executable(self):
        self.assertIn("init", self.entries)
        mode, size, body, _, _ = self.entries["init"]
        self.assertEqual(mode, 0o100755, f"/init mode is {oct(mode)}")
        ident = elf_header(body)
        self.assertIsNotNone(ident, "/init is not an ELF binary")
        self.assertEqual(ident[3], 62, "/init is not x86-64")
        self.assertFalse(ident[4], "/init asks for a dynamic loader; it must be static")

    def test_mount_points_and_console_exist(self):
        for d in ("dev", "proc", "sys", "newroot", "mnt"):
            self.assertIn(d, self.entries)
            self.assertEqual(self.entries[d][0] & 0o170000, 0o040000, f"/{d} is not a directory")
        mode, _, _, major, minor = self.entries["dev/console"]
        self.assertEqual((mode & 0o170000, major, minor), (0o020000, 5, 1), "/dev/console is not c 5 1")

    def test_modules_are_exactly_the_list_and_its_dependencies(self):
        deps = self.modules_dep()
        by_name = {module_name(k): k for k in deps}
        closure, stack = set(), []
        for name in self.wanted_modules():
            self.assertIn(name, by_name, f"module `{name}` from modules.list is not in the initramfs")
            stack.append(by_name[name])
        while stack:
            key = stack.pop()
            if key not in closure:
                self.assertIn(key, deps, f"dependency {key} has no line in modules.dep")
                closure.add(key)
                stack.extend(deps[key])
        self.assertEqual(set(deps), closure, "modules.dep holds modules nobody asked for")
        kos = {n[len(self.moddir) + 1:] for n in self.entries
               if n.startswith(self.moddir + "/") and re.search(r"\.ko(\.\w+)?$", n)}
        self.assertEqual(kos, closure, ".ko files in the initramfs differ from modules.dep")
        # Facts of Debian's virtio stack: the closure must have pulled in the shared cores.
        for core in ("virtio", "virtio_ring", "vsock"):
            self.assertIn(core, {module_name(k) for k in closure})

    def test_modules_are_built_for_this_kernel(self):
        for key in self.modules_dep():
            body = self.entries[f"{self.moddir}/{key}"][2]
            self.assertIn(f"vermagic={self.release} ".encode(), body, f"{key} is not built for {self.release}")

    def test_nothing_unrelated_is_in_the_initramfs(self):
        deps = self.modules_dep()
        allowed = {"init", "dev", "dev/console", "proc", "sys", "newroot", "mnt",
                   f"{self.moddir}/modules.dep"}
        allowed |= {f"{self.moddir}/{k}" for k in deps}
        for path in list(allowed):  # and the directories leading to them
            parts = path.split("/")
            allowed |= {"/".join(parts[:i]) for i in range(1, len(parts))}
        self.assertEqual(set(self.entries) - allowed, set())
        for name, (mode, *_rest) in self.entries.items():
            self.assertIn(mode & 0o170000, (0o040000, 0o100000, 0o020000),
                          f"{name} has an unexpected file type {oct(mode)}")


class PackImageTest(ImagesTestCase):
    """Looks inside each squashfs with unsquashfs (squashfs-tools)."""

    listings = {}

    def setUp(self):
        super().setUp()
        if not shutil.which("unsquashfs"):
            self.fail("unsquashfs not found: install squashfs-tools (scripts/install-deps.sh)")

    def listing(self, name):
        """{path: (mode string, uid, gid, link target or None)} of pack `name`."""
        if name not in self.listings:
            image = self.path(self.packs()[name]["image"])
            out = subprocess.run(["unsquashfs", "-lln", image], capture_output=True, text=True, check=True)
            entries = {}
            for line in out.stdout.splitlines():
                m = re.match(r"^([-dlcbps][-rwxsStT]{9}) (\d+)/(\d+) +.*? \d{4}-\d\d-\d\d \d\d:\d\d "
                             r"squashfs-root(/.*)?$", line)
                if not m:
                    continue
                mode, uid, gid, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4) or "/"
                target = None
                if mode[0] == "l":
                    rest, _, target = rest.partition(" -> ")
                entries[rest] = (mode, uid, gid, target)
            self.assertIn("/etc", entries, f"could not list {image}")
            self.listings[name] = entries
        return self.listings[name]

    def cat(self, name, path):
        image = self.path(self.packs()[name]["image"])
        out = subprocess.run(["unsquashfs", "-cat", image, path], capture_output=True, check=True)
        return out.stdout.decode()

    def resolve(self, entries, path, depth=0):
        """Follows symlinks inside the image, like the guest would."""
        self.assertLess(depth, 40, f"symlink loop at {path}")
        parts = [p for p in path.split("/") if p]
        current = ""
        for i, part in enumerate(parts):
            current = f"{current}/{part}"
            self.assertIn(current, entries, f"{path}: {current} does not exist in the image")
            mode, _, _, target = entries[current]
            if mode[0] == "l":
                base = "" if target.startswith("/") else current.rsplit("/", 1)[0]
                rest = "/".join(parts[i + 1:])
                return self.resolve(entries, os.path.normpath(f"{base}/{target}/{rest}"), depth + 1)
        return current

    def test_interpreter_is_an_executable_file(self):
        for name, pack in self.packs().items():
            entries = self.listing(name)
            real = self.resolve(entries, pack["interpreter"][0])
            mode = entries[real][0]
            self.assertEqual(mode[0], "-", f"{name}: {real} is not a regular file")
            self.assertEqual(mode[3], "x", f"{name}: {real} is not executable")

    def test_sandbox_user_and_home(self):
        for name in self.packs():
            entries = self.listing(name)
            self.assertIn("/home/sandbox", entries, f"{name}: no /home/sandbox")
            mode, uid, gid, _ = entries["/home/sandbox"]
            self.assertEqual((mode, uid, gid), ("drwxr-xr-x", 1000, 1000), f"{name}: /home/sandbox")
            passwd = self.cat(name, "/etc/passwd").splitlines()
            self.assertIn("sandbox:x:1000:1000:emberd sandbox:/home/sandbox:/bin/sh", passwd)
            self.assertIn("sandbox:x:1000:", self.cat(name, "/etc/group").splitlines())
            # The E2B alias (docs/e2b.md "Users"): the same uid under the name the E2B SDKs use,
            # listed after `sandbox`, with bash and /home/user -> sandbox.
            user = "user:x:1000:1000:emberd sandbox (E2B name):/home/user:/bin/bash"
            self.assertIn(user, passwd, f"{name}: no E2B `user` alias")
            self.assertLess(passwd.index("sandbox:x:1000:1000:emberd sandbox:/home/sandbox:/bin/sh"),
                            passwd.index(user), f"{name}: `user` listed before `sandbox`")
            link = entries.get("/home/user")
            self.assertIsNotNone(link, f"{name}: no /home/user")
            self.assertEqual((link[0][0], link[3]), ("l", "sandbox"),
                             f"{name}: /home/user is not a symlink to sandbox")
            self.assertEqual(self.resolve(entries, "/bin/bash"), "/usr/bin/bash")
            others = [l for l in passwd if l.split(":")[2] == "1000"
                      and not l.startswith(("sandbox:", "user:"))]
            self.assertEqual(others, [], f"{name}: uid 1000 used by another account")

    def test_mount_points_are_empty_and_tmp_is_sticky(self):
        for name in self.packs():
            entries = self.listing(name)
            for d in ("/dev", "/proc", "/sys", "/run", "/tmp"):
                self.assertIn(d, entries, f"{name}: {d} missing")
                self.assertEqual(entries[d][0][0], "d", f"{name}: {d} is not a directory")
                children = [p for p in entries if p.startswith(d + "/")]
                self.assertEqual(children, [], f"{name}: {d} is not empty")
            self.assertEqual(entries["/tmp"][0], "drwxrwxrwt", f"{name}: /tmp mode")

    def test_identity_files(self):
        for name in self.packs():
            self.assertEqual(self.cat(name, "/etc/hostname"), "emberd\n")
            hosts = self.cat(name, "/etc/hosts")
            self.assertRegex(hosts, r"(?m)^127\.0\.0\.1\s+localhost\b")

    def test_no_docs_man_pages_caches_or_logs(self):
        for name in self.packs():
            entries = self.listing(name)
            for d in ("/usr/share/doc", "/usr/share/man", "/usr/share/info", "/usr/share/locale",
                      "/var/cache", "/var/log", "/var/lib/apt/lists"):
                inside = [p for p in entries if p.startswith(d + "/")]
                self.assertEqual(inside, [], f"{name}: {d} has content, e.g. {inside[:3]}")

    def test_c_utf8_locale_is_kept(self):
        for name in self.packs():
            self.assertIn("/usr/lib/locale/C.utf8/LC_CTYPE", self.listing(name), f"{name}: no C.UTF-8")

    def python_lib(self, entries):
        libs = sorted(p for p in entries if re.fullmatch(r"/usr/lib/python3\.\d+", p))
        self.assertTrue(libs, "no /usr/lib/python3.X in the python image")
        return libs[-1]

    def test_python_has_its_standard_library(self):
        self.assertIn("python", self.packs())
        entries = self.listing("python")
        lib = self.python_lib(entries)
        for module in ("json/__init__.py", "sqlite3/__init__.py", "uuid.py", "ssl.py",
                       "asyncio/__init__.py", "zoneinfo/__init__.py"):
            self.assertIn(f"{lib}/{module}", entries, f"python image lacks {module}")
        dynload = [p for p in entries if p.startswith(f"{lib}/lib-dynload/_sqlite3.")]
        self.assertTrue(dynload, "python image lacks the _sqlite3 extension")

    def test_python_bytecode_is_precompiled_and_never_stale(self):
        entries = self.listing("python")
        lib = self.python_lib(entries)
        tag = "cpython-" + lib.rsplit("python", 1)[1].replace(".", "")
        missing = []
        for path in entries:
            if path.startswith(lib + "/") and path.endswith(".py") and entries[path][0][0] == "-":
                folder, base = path.rsplit("/", 1)
                pyc = f"{folder}/__pycache__/{base[:-3]}.{tag}.pyc"
                if pyc not in entries:
                    missing.append(path)
        self.assertEqual(missing[:5], [], f"{len(missing)} stdlib modules have no .pyc")
        # Image mtimes are all SOURCE_DATE_EPOCH: only hash-based pycs stay valid (flags bit 0).
        pyc = self.raw("python", f"{lib}/json/__pycache__/__init__.{tag}.pyc")
        flags, = struct.unpack_from("<I", pyc, 4)
        self.assertTrue(flags & 1, "json's .pyc is timestamp-based; python would rewrite it in every guest")

    def raw(self, name, path):
        image = self.path(self.packs()[name]["image"])
        return subprocess.run(["unsquashfs", "-cat", image, path], capture_output=True, check=True).stdout


class PackRunsTest(ImagesTestCase):
    """Unpacks each image and runs its interpreter in a chroot (a user namespace when not root):
    proves the image works, not just that files are there."""

    @staticmethod
    def snapshot(root):
        """{path inside root: (inode, mtime, size)} of every file and directory."""
        state = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for entry in dirnames + filenames:
                full = os.path.join(dirpath, entry)
                st = os.lstat(full)
                state[full[len(root):]] = (st.st_ino, st.st_mtime_ns, st.st_size)
        return state

    def run_in_image(self, name, argv, user=None, home="/root"):
        """user: "UID:GID" to run as (needs root; chroot --userspec)."""
        image = self.path(self.packs()[name]["image"])
        tmp = tempfile.mkdtemp(prefix=f"emberd-{name}-")
        try:
            root = os.path.join(tmp, "root")
            subprocess.run(["unsquashfs", "-q", "-n", "-d", root, image], check=True,
                           stdout=subprocess.DEVNULL)
            before = self.snapshot(root)
            sbin = "/usr/sbin:/usr/bin:/sbin:/bin"
            chroot, unshare = shutil.which("chroot", path=sbin), shutil.which("unshare", path=sbin)
            self.assertTrue(chroot and unshare, "chroot/unshare (coreutils, util-linux) not found")
            prefix = [chroot, root] if os.geteuid() == 0 else [unshare, "-r", chroot, root]
            if user is not None:
                prefix[1:1] = [f"--userspec={user}"]
            out = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=300,
                                 env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home})
            after = self.snapshot(root)
            changed = [p for p in after if p not in before or (after[p] != before[p] and
                                                               not os.path.isdir(root + p))]
            return out, sorted(changed)
        finally:
            subprocess.run(["rm", "-rf", "--one-file-system", tmp], check=False)

    def test_python_imports_the_standard_library_without_writing_bytecode(self):
        out, written = self.run_in_image("python", [
            "/usr/bin/python3", "-c",
            "import json, sqlite3, uuid, ssl, asyncio, zoneinfo; "
            "sqlite3.connect(':memory:').execute('select 1'); print(json.dumps([6 * 7]))"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "[42]\n")
        self.assertEqual(written, [], "python wrote files into the image at run time (stale or missing .pyc?)")

    def test_python_data_plots_without_writing_bytecode_or_a_font_cache(self):
        if "python-data" not in self.packs():
            self.skipTest("no python-data pack in IMAGES_DIR")
        if os.geteuid() != 0:
            self.skipTest("running as the sandbox user needs root (chroot --userspec)")
        out, written = self.run_in_image("python-data", [
            "/usr/bin/python3", "-c",
            "import io, numpy, pandas, scipy.stats, matplotlib.pyplot as plt; "
            "plt.plot(numpy.arange(3)); plt.title('fonts'); plt.savefig(io.BytesIO()); "
            "print(plt.get_backend(), pandas.Series([1, 3]).mean())"],
            user="1000:1000", home="/home/sandbox")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "agg 2.0\n")
        self.assertEqual(written, [], "python-data wrote files at run time (stale .pyc? font cache "
                                      "rebuilt?)")

    def test_shell_runs_coreutils(self):
        out, _ = self.run_in_image("shell", ["/bin/sh", "-c", "printf 'a\\nb\\n' | wc -l; id -un 1000"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), ["2", "sandbox"])


if __name__ == "__main__":
    unittest.main()
