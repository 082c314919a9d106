"""End-to-end tests of host directories in sandboxes (issue 20, docs/api.md "Mounts"): the
`mounts` of POST /sandboxes under QEMU (virtio-9p from the jailed VMM through an id-mapped bind)
and under the fake Firecracker (read-only squashfs images), and --allow-mount's rules.

- MountsTest (QEMU, jailed, one daemon with --allow-mount on a private directory):
  a ro mount is readable from the guest and unwritable (and the host tree unchanged); an rw
  mount round-trips both ways and the guest's files land on the host owned by the directory's
  owner, or by the uid/gid the create gave; a symlink inside the tree that points outside it
  (to a directory holding a marker) is resolved in the guest, never on the host; the path rules
  (outside the allowed directory, through a symlink out of it, missing, a file, too many, guest
  path clash or system path, rw of a root-owned directory, the daemon's own run dir) are 400s
  naming the field, with nothing created; the sandbox object lists the resolved mounts;
  `emberctl create --mount HOST:GUEST:rw` sends one; after delete nothing is left mounted or
  running.
- MountsRefusedTest: a daemon without --allow-mount, and one with --no-jail, refuse every mount.
- MountsFirecrackerTest (fake Firecracker): a ro mount is a squashfs disk the guest reads; rw is
  refused with a 400 that says why; a root-owned directory without uid/gid (its image would be
  built as root) and a directory over --max-mount-image-mib are refused.
- MountsConfigTest: allow-mount in a config file works, repeats, shows in --print-config, and a
  command-line --allow-mount replaces the file's list.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")
OWNER = 4242        # host owner of the test trees (no such account needed)
OTHER = 5151        # a uid/gid a create names explicitly


def make_tree(root, name, uid, gid, mode=0o755):
    path = os.path.join(root, name)
    os.mkdir(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def write_file(path, text, uid, gid, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def host_mounts_mentioning(text):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


class MountsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="emt-mounts.", dir="/var/tmp")
        os.chmod(cls.base, 0o755)
        cls.allowed = make_tree(cls.base, "allowed", 0, 0)
        cls.outside = make_tree(cls.base, "outside", 0, 0)
        write_file(os.path.join(cls.outside, "marker"), "host-secret\n", 0, 0, 0o644)
        cls.d = harness.Daemon("--allow-mount", cls.allowed)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.base, ignore_errors=True)

    def tree(self, name, uid=OWNER, gid=OWNER, mode=0o755):
        return make_tree(self.allowed, name, uid, gid, mode)

    def create(self, mounts, **fields):
        sb = self.d.create(language_pack="shell", mounts=mounts, **fields)
        self.addCleanup(self.d.delete, sb["id"])
        return sb

    def sh(self, sandbox_id, script):
        status, body, raw = self.d.exec(sandbox_id, script)
        self.assertEqual(status, 200, raw)
        return body

    def refused(self, mounts, field):
        before = set(os.listdir(self.d.run_dir))
        status, body, raw = self.d.request("POST", "/sandboxes",
                                           {"language_pack": "shell", "mounts": mounts})
        self.assertEqual(status, 400, raw)
        self.assertEqual(body["error"]["code"], "invalid_argument")
        self.assertIn(f"field `{field}`", body["error"]["message"])
        self.assertEqual(set(os.listdir(self.d.run_dir)), before, "a refused create left files")
        return body["error"]["message"]

    def test_ro_mount_readable_not_writable(self):
        data = self.tree("ro-data")
        write_file(os.path.join(data, "hello.txt"), "hello from the host\n", OWNER, OWNER)
        os.mkdir(os.path.join(data, "sub"))
        write_file(os.path.join(data, "sub", "deep.txt"), "deep\n", OWNER, OWNER, 0o644)
        sb = self.create([{"host": data, "guest": "/mnt/data"}])
        self.assertEqual(sb["mounts"], [{"host": data, "guest": "/mnt/data", "mode": "ro",
                                         "uid": OWNER, "gid": OWNER}])
        out = self.sh(sb["id"], "cat /mnt/data/hello.txt /mnt/data/sub/deep.txt")
        self.assertEqual(out["exit_code"], 0, out)
        self.assertEqual(out["stdout"], "hello from the host\ndeep\n")
        for script in ("echo x > /mnt/data/new.txt", "echo x >> /mnt/data/hello.txt",
                       "rm /mnt/data/hello.txt", "mkdir /mnt/data/d", "touch /mnt/data/sub/t"):
            out = self.sh(sb["id"], script)
            self.assertNotEqual(out["exit_code"], 0, f"{script}: {out}")
            self.assertIn("Read-only file system", out["stderr"], script)
        self.assertEqual(sorted(os.listdir(data)), ["hello.txt", "sub"])
        with open(os.path.join(data, "hello.txt")) as f:
            self.assertEqual(f.read(), "hello from the host\n")

    def test_rw_round_trip_owned_by_directory_owner(self):
        work = self.tree("rw-work")
        write_file(os.path.join(work, "in.txt"), "to the guest\n", OWNER, OWNER, 0o644)
        sb = self.create([{"host": work, "guest": "/workspace", "mode": "rw"}])
        out = self.sh(sb["id"], "cat /workspace/in.txt && printf 'from the guest\\n' > "
                      "/workspace/out.txt && mkdir /workspace/made && "
                      "echo more >> /workspace/in.txt && ls -ln /workspace/out.txt")
        self.assertEqual(out["exit_code"], 0, out)
        self.assertTrue(out["stdout"].startswith("to the guest\n"), out)
        st = os.stat(os.path.join(work, "out.txt"))
        with open(os.path.join(work, "out.txt")) as f:
            self.assertEqual(f.read(), "from the guest\n")
        self.assertEqual((st.st_uid, st.st_gid), (OWNER, OWNER))
        st = os.stat(os.path.join(work, "made"))
        self.assertEqual((st.st_uid, st.st_gid), (OWNER, OWNER))
        with open(os.path.join(work, "in.txt")) as f:
            self.assertEqual(f.read(), "to the guest\nmore\n")
        # A change on the host is seen by the guest at once.
        write_file(os.path.join(work, "later.txt"), "written later\n", OWNER, OWNER, 0o644)
        out = self.sh(sb["id"], "cat /workspace/later.txt")
        self.assertEqual(out["stdout"], "written later\n", out)

    def test_rw_owner_given_in_the_request(self):
        # A root-owned directory needs uid and gid; the sandbox then acts as them there: it
        # writes where they may (their subdirectory), and what it writes is theirs.
        shared = self.tree("rw-shared", uid=0, gid=0)
        theirs = make_tree(shared, "theirs", OTHER, OTHER)
        sb = self.create([{"host": shared, "guest": "/mnt/out", "mode": "rw", "uid": OTHER,
                           "gid": OTHER}])
        self.assertEqual((sb["mounts"][0]["uid"], sb["mounts"][0]["gid"]), (OTHER, OTHER))
        out = self.sh(sb["id"], "echo result > /mnt/out/theirs/r.txt")
        self.assertEqual(out["exit_code"], 0, out)
        st = os.stat(os.path.join(theirs, "r.txt"))
        self.assertEqual((st.st_uid, st.st_gid), (OTHER, OTHER))
        out = self.sh(sb["id"], "echo x > /mnt/out/top.txt")
        self.assertNotEqual(out["exit_code"], 0, out)
        self.assertEqual(os.listdir(shared), ["theirs"])

    def test_symlink_out_of_the_tree_is_not_followed_on_the_host(self):
        data = self.tree("links")
        os.symlink(self.outside, os.path.join(data, "escape"))
        os.symlink("/etc", os.path.join(data, "etc-link"))
        sb = self.create([{"host": data, "guest": "/mnt/links", "mode": "rw"}])
        out = self.sh(sb["id"], "cat /mnt/links/escape/marker; echo rc=$?; "
                      "readlink /mnt/links/etc-link; cat /mnt/links/etc-link/hostname")
        self.assertNotIn("host-secret", out["stdout"], out)
        self.assertIn("rc=1", out["stdout"], out)
        self.assertIn("/etc\n", out["stdout"], out)
        with open("/etc/hostname") as f:
            host_name = f.read().strip()
        guest_name = self.sh(sb["id"], "cat /etc/hostname")["stdout"].strip()
        if host_name != guest_name:
            self.assertNotIn(host_name, out["stdout"], out)
        # Writing through the link lands in the guest's /etc side, never the host's.
        self.sh(sb["id"], "echo pwned > /mnt/links/escape/marker")
        with open(os.path.join(self.outside, "marker")) as f:
            self.assertEqual(f.read(), "host-secret\n")
        # A host path that is itself a link out of the allowed directory is refused.
        link = os.path.join(self.allowed, "to-outside")
        os.symlink(self.outside, link)
        message = self.refused([{"host": link, "guest": "/mnt/x"}], "mounts[0].host")
        self.assertIn("--allow-mount", message)

    def test_path_rules(self):
        ok = self.tree("rules")
        self.refused([{"host": self.outside, "guest": "/mnt/x"}], "mounts[0].host")
        self.refused([{"host": "/proc", "guest": "/mnt/x"}], "mounts[0].host")
        self.refused([{"host": "/usr/share", "guest": "/mnt/x"}], "mounts[0].host")
        self.refused([{"host": os.path.join(self.allowed, "missing"), "guest": "/mnt/x"}],
                     "mounts[0].host")
        afile = os.path.join(self.allowed, "a-file")
        write_file(afile, "x", OWNER, OWNER)
        self.refused([{"host": afile, "guest": "/mnt/x"}], "mounts[0].host")
        self.refused([{"host": "relative/path", "guest": "/mnt/x"}], "mounts[0].host")
        self.refused([{"host": ok, "guest": "/mnt/%d" % i} for i in range(9)], "mounts")
        self.refused([{"host": ok, "guest": "/mnt/a"}, {"host": ok, "guest": "/mnt/a/b"}],
                     "mounts[1].guest")
        sub = os.path.join(ok, "sub")
        os.mkdir(sub)
        self.refused([{"host": ok, "guest": "/mnt/a"}, {"host": sub, "guest": "/mnt/b"}],
                     "mounts[1].host")
        self.refused([{"host": ok, "guest": "/mnt/a"}, {"host": ok, "guest": "/mnt/b"}],
                     "mounts[1].host")
        for guest in ("/", "/etc/x", "/proc", "/usr/lib/x", "/mnt/../etc", "mnt",
                      "/mnt/a b", "/lib64"):
            self.refused([{"host": ok, "guest": guest}], "mounts[0].guest")
        self.refused([{"host": ok, "guest": "/mnt/x", "mode": "wr"}], "mounts[0].mode")
        # A guest path the pack's tree has as a symlink or a file: the guest refuses it.
        for guest in ("/var/lock", "/var/lock/x"):
            status, body, raw = self.d.request("POST", "/sandboxes", {
                "language_pack": "shell", "mounts": [{"host": ok, "guest": guest}]})
            self.assertEqual(status, 400, raw)
            self.assertIn("guest refused", body["error"]["message"])
        self.refused([{"host": ok, "guest": "/mnt/x", "uid": 0}], "mounts[0].uid")
        self.refused([{"host": ok, "guest": "/mnt/x", "owner": 1}], "mounts[0]")
        rootdir = self.tree("root-owned", uid=0, gid=0)
        message = self.refused([{"host": rootdir, "guest": "/mnt/x", "mode": "rw"}],
                               "mounts[0]")
        self.assertIn("root", message)

    def test_daemon_files_never_mountable(self):
        # A daemon whose run directory lies inside the allowed one.
        base = tempfile.mkdtemp(prefix="emt-m2.", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, base, True)
        d = harness.Daemon("--allow-mount", base, "--run-dir", os.path.join(base, "run"))
        try:
            for host in (base, os.path.join(base, "run")):
                status, body, raw = d.request("POST", "/sandboxes", {
                    "language_pack": "shell", "mounts": [{"host": host, "guest": "/mnt/x"}]})
                self.assertEqual(status, 400, raw)
                self.assertIn("never mountable", body["error"]["message"])
        finally:
            d.stop()

    def test_emberctl_create_mount(self):
        data = self.tree("ctl")
        ctl = os.path.join(harness.ASAN_BIN, "emberctl")
        out = subprocess.run([ctl, "--addr", self.d.addr, "create", "--pack", "shell",
                              "--mount", f"{data}:/mnt/ctl:rw"],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        sandbox_id = out.stdout.strip()
        self.addCleanup(self.d.delete, sandbox_id)
        status, sb, raw = self.d.request("GET", f"/sandboxes/{sandbox_id}")
        self.assertEqual(sb["mounts"], [{"host": data, "guest": "/mnt/ctl", "mode": "rw",
                                         "uid": OWNER, "gid": OWNER}])
        out = subprocess.run([ctl, "--addr", self.d.addr, "create", "--mount", "/no-guest"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("HOST:GUEST", out.stderr)

    def test_mounts_leave_nothing_behind(self):
        data = self.tree("leak-check")
        sb = self.d.create(language_pack="shell",
                           mounts=[{"host": data, "guest": "/mnt/a", "mode": "rw"}])
        self.assertEqual(sb["boot_mode"], "cold")
        pid = sb["vmm_pid"]
        self.assertEqual(self.d.delete(sb["id"]), 204)
        harness.wait_for(lambda: not harness.pid_alive(pid), 30, "the VMM to exit")
        self.assertEqual(host_mounts_mentioning(data), [])
        self.assertFalse(os.path.exists(os.path.join(self.d.run_dir, sb["id"])))
        self.assertEqual(os.listdir(data), [])


class MountsRefusedTest(unittest.TestCase):
    def test_without_allow_mount(self):
        d = harness.Daemon()
        try:
            status, body, raw = d.request("POST", "/sandboxes", {
                "mounts": [{"host": "/var/tmp", "guest": "/mnt/x"}]})
            self.assertEqual(status, 400, raw)
            self.assertIn("--allow-mount", body["error"]["message"])
        finally:
            d.stop()

    def test_unjailed_vmm_gets_no_mounts(self):
        base = tempfile.mkdtemp(prefix="emt-m3.", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, base, True)
        d = harness.Daemon("--allow-mount", base, "--no-jail")
        try:
            status, body, raw = d.request("POST", "/sandboxes", {
                "mounts": [{"host": base, "guest": "/mnt/x"}]})
            self.assertEqual(status, 400, raw)
            self.assertIn("--no-jail", body["error"]["message"])
        finally:
            d.stop()


class MountsFirecrackerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="emt-mfc.", dir="/var/tmp")
        os.chmod(cls.base, 0o755)
        cls.data = make_tree(cls.base, "data", OWNER, OWNER)
        write_file(os.path.join(cls.data, "hello.txt"), "hello firecracker\n", OWNER, OWNER)
        os.symlink("/etc", os.path.join(cls.data, "etc-link"))
        cls.big = make_tree(cls.base, "big", OWNER, OWNER)
        with open(os.path.join(cls.big, "blob"), "wb") as f:
            f.write(os.urandom(2 << 20))
        cls.d = harness.Daemon("--vmm", "firecracker", "--firecracker-bin", FAKE_FC,
                               "--no-jail", "--no-snapshots", "--allow-mount", cls.base,
                               "--max-mount-image-mib", "1")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.base, ignore_errors=True)

    def test_ro_mount_is_a_readable_read_only_disk(self):
        sb = self.d.create(language_pack="shell",
                           mounts=[{"host": self.data, "guest": "/mnt/data"}])
        self.addCleanup(self.d.delete, sb["id"])
        status, out, raw = self.d.exec(sb["id"], "cat /mnt/data/hello.txt; readlink "
                                       "/mnt/data/etc-link; echo x > /mnt/data/new; echo rc=$?")
        self.assertEqual(status, 200, raw)
        self.assertIn("hello firecracker\n/etc\n", out["stdout"], out)
        self.assertNotIn("rc=0", out["stdout"], out)
        self.assertIn("Read-only file system", out["stderr"], out)
        self.assertEqual(sorted(os.listdir(self.data)), ["etc-link", "hello.txt"])

    def test_rw_refused_with_the_reason(self):
        status, body, raw = self.d.request("POST", "/sandboxes", {
            "language_pack": "shell", "mounts": [{"host": self.data, "guest": "/mnt/x",
                                                  "mode": "rw"}]})
        self.assertEqual(status, 400, raw)
        self.assertIn("field `mounts[0].mode`", body["error"]["message"])
        self.assertIn("firecracker", body["error"]["message"])

    def test_root_owned_directory_needs_ids(self):
        rootdir = make_tree(self.base, "root-owned", 0, 0)
        status, body, raw = self.d.request("POST", "/sandboxes", {
            "language_pack": "shell", "mounts": [{"host": rootdir, "guest": "/mnt/r"}]})
        self.assertEqual(status, 400, raw)
        self.assertIn("field `mounts[0]`", body["error"]["message"])
        self.assertIn("never as root", body["error"]["message"])

    def test_image_over_the_limit_refused(self):
        before = len(self.d.request("GET", "/sandboxes")[1]["sandboxes"])
        status, body, raw = self.d.request("POST", "/sandboxes", {
            "language_pack": "shell", "mounts": [{"host": self.big, "guest": "/mnt/big"}]})
        self.assertEqual(status, 400, raw)
        self.assertIn("mounts[0].host", body["error"]["message"])
        self.assertIn("--max-mount-image-mib", body["error"]["message"])
        self.assertEqual(len(self.d.request("GET", "/sandboxes")[1]["sandboxes"]), before)
        self.assertEqual([e for e in os.listdir(self.d.run_dir) if e.startswith("sb_")], [])


class MountsConfigTest(unittest.TestCase):
    def emberd(self, *args):
        return subprocess.run([os.path.join(harness.ASAN_BIN, "emberd"), *args],
                              capture_output=True, text=True, timeout=60)

    def assertSetting(self, text, key, value, source):
        self.assertRegex(text, re.compile(rf"^{re.escape(key)} = {re.escape(value)}\s+; "
                                          rf"{re.escape(source)}$", re.M))

    def test_config_file_precedence_and_print_config(self):
        base = tempfile.mkdtemp(prefix="emt-mcf.", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, base, True)
        a, b, c = (make_tree(base, n, 0, 0) for n in ("a", "b", "c"))
        conf = os.path.join(base, "emberd.conf")
        with open(conf, "w") as f:
            f.write(f"allow-mount = {a}\nallow-mount = {b}\nmax-mount-image-mib = 7\n")
        os.chmod(conf, 0o600)
        out = self.emberd("--config", conf, "--print-config")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertSetting(out.stdout, "allow-mount", a, f"{conf}:1")
        self.assertSetting(out.stdout, "allow-mount", b, f"{conf}:2")
        self.assertSetting(out.stdout, "max-mount-image-mib", "7", f"{conf}:3")
        out = self.emberd("--config", conf, "--allow-mount", c, "--print-config")
        self.assertSetting(out.stdout, "allow-mount", c, "flag")
        self.assertNotIn(f"allow-mount = {a}", out.stdout)
        out = self.emberd("--config", "none", "--allow-mount", "relative", "--print-config")
        self.assertEqual(out.returncode, 2)
        self.assertIn("absolute", out.stderr)
        with open(conf, "w") as f:
            f.write("allow-mounts = /srv\n")
        out = self.emberd("--config", conf, "--print-config")
        self.assertEqual(out.returncode, 2)
        self.assertIn(f"{conf}:1", out.stderr)
        self.assertIn("allow-mounts", out.stderr)


if __name__ == "__main__":
    unittest.main()
