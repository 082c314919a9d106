"""The jailed VMM (issue 10, docs/security.md): every QEMU the daemon starts runs as its own uid
from the daemon's range, without capabilities, under no_new_privs and seccomp, in its own mount,
PID and network namespaces that show it only its own files; a clone cannot write its template's
memory; a restart's stray sweep kills VMMs by identity, never a process that merely names the
run directory. Needs root (as the daemon does) and QEMU (TCG here).
"""

import errno
import fcntl
import mmap
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

UID_BASE = 1900000000  # --vmm-uid-base default
UID_RANGE = 8192


def status_fields(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def as_uid(uid, fn):
    """Runs fn() in a child process with all uids and gids set to uid and no groups (what a
    compromised VMM of that uid could do outside its jail, at best); returns its result, a
    string, or the exception text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                out = fn()
            except OSError as e:
                out = f"OSError {errno.errorcode.get(e.errno, e.errno)}"
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def memfds(pid):
    """{fd: target} for the memfds a process holds."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/memfd:"):
            found[int(fd)] = target
    return found


class JailTest(unittest.TestCase):
    """One daemon with both templates ready; a cold-booted sandbox (a shape without a template)
    and a clone, alive for every test."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--prewarm")
        try:
            cls.d.wait_health(lambda h: h["templates"]["ready"] >= 2, 300, "both templates")
            cls.cold = cls.d.create(language_pack="shell", memory_mib=160)
            cls.clone = cls.d.create(language_pack="shell")
        except Exception:
            cls.d.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for sb in (cls.cold, cls.clone):
                cls.d.delete(sb["id"])
        finally:
            cls.d.stop()

    def vmms(self):
        self.assertEqual(self.cold["boot_mode"], "cold")
        self.assertEqual(self.clone["boot_mode"], "clone")
        return [self.cold, self.clone]

    def test_healthz_says_vmms_are_jailed(self):
        status, health, _ = self.d.request("GET", "/healthz")
        self.assertIn(f"jailed: uid/gid {UID_BASE}-{UID_BASE + UID_RANGE - 1}",
                      health["vmm"]["description"])

    def test_each_vmm_runs_as_its_own_unprivileged_uid(self):
        uids = []
        for sb in self.vmms():
            st = status_fields(sb["vmm_pid"])
            ids = st["Uid"].split() + st["Gid"].split()
            self.assertEqual(len(set(ids)), 1, st["Uid"] + " / " + st["Gid"])
            uid = int(ids[0])
            self.assertTrue(UID_BASE <= uid < UID_BASE + UID_RANGE, uid)
            self.assertEqual(st["Groups"].strip(), "")
            for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, f"{cap} {st[cap]}")
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(st["Seccomp"], "2")  # QEMU's -sandbox filter
            # its run directory is its own, and no one else's
            run_dir = os.path.join(self.d.run_dir, sb["id"])
            info = os.lstat(run_dir)
            self.assertEqual((info.st_uid, info.st_gid, info.st_mode & 0o7777),
                             (uid, uid, 0o700))
            uids.append(uid)
        self.assertNotEqual(uids[0], uids[1])

    def test_each_vmm_has_its_own_namespaces(self):
        for sb in self.vmms():
            pid = sb["vmm_pid"]
            for ns in ("mnt", "pid", "net", "ipc", "uts"):
                self.assertNotEqual(os.readlink(f"/proc/{pid}/ns/{ns}"),
                                    os.readlink(f"/proc/{self.d.proc.pid}/ns/{ns}"), ns)
            with open(f"/proc/{pid}/net/dev") as f:
                interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
            self.assertEqual(interfaces, ["lo"])
        self.assertNotEqual(os.readlink(f"/proc/{self.cold['vmm_pid']}/ns/mnt"),
                            os.readlink(f"/proc/{self.clone['vmm_pid']}/ns/mnt"))

    def test_each_vmm_sees_only_its_own_files(self):
        for sb, other in ((self.cold, self.clone), (self.clone, self.cold)):
            root = f"/proc/{sb['vmm_pid']}/root"
            for hidden in ("/home", "/root", "/etc/shadow", "/etc/passwd",
                           os.path.join(harness.IMAGES_DIR, "packs.json"),
                           os.path.join(self.d.run_dir, other["id"]), self.d.log_path):
                self.assertFalse(os.path.lexists(root + hidden), hidden)
            self.assertTrue(os.path.exists(root + "/usr/bin"))
            # of the run directory: its own sandbox's, and (a clone) its template's pack
            seen = set(os.listdir(root + self.d.run_dir))
            if sb is self.cold:
                self.assertEqual(seen, {sb["id"]})
            else:
                self.assertEqual(seen, {sb["id"], "templates"})
                packs = os.listdir(root + os.path.join(self.d.run_dir, "templates"))
                self.assertEqual(len(packs), 1, packs)
                self.assertRegex(packs[0], r"^[0-9a-f]{64}\.pack$")
            # the root and what the VMM does not write are read-only
            for path in ("/", "/usr"):
                self.assertTrue(os.statvfs(root + path).f_flag & os.ST_RDONLY, path)

    def test_a_clone_cannot_write_its_template_memory(self):
        pid = self.clone["vmm_pid"]
        uid = int(status_fields(pid)["Uid"].split()[0])
        fds = memfds(pid)
        self.assertTrue(fds, "the clone holds no memfd")
        key = re.search(r"emberd-template-([0-9a-f]{64})", next(iter(fds.values()))).group(1)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode()
        self.assertIn("mem-path=/proc/self/fd/", cmdline)
        self.assertIn("share=off", cmdline)
        tdir = os.path.join(self.d.run_dir, "templates", key)
        memory = os.path.join(tdir, "memory")
        info = os.stat(memory)
        self.assertEqual((info.st_uid, info.st_mode & 0o7777), (0, 0o400))
        info = os.stat(tdir)
        self.assertEqual((info.st_uid, info.st_mode & 0o7777), (0, 0o700))

        def open_file():
            os.open(memory, os.O_RDWR)
            return "opened"

        self.assertEqual(as_uid(uid, open_file), "OSError EACCES")

        fd_path = f"/proc/{pid}/fd/{next(iter(fds))}"

        def write_through_the_vmm():
            # the reopen works (QEMU does it too); every write does not
            fd = os.open(fd_path, os.O_RDWR)
            results = []
            for what, op in (("write", lambda: os.pwrite(fd, b"\xff", 4096)),
                             ("truncate", lambda: os.ftruncate(fd, 0)),
                             ("shared map", lambda: mmap.mmap(fd, 4096, mmap.MAP_SHARED,
                                                              mmap.PROT_READ | mmap.PROT_WRITE))):
                try:
                    op()
                    results.append(f"{what} ok")
                except OSError as e:
                    results.append(f"{what} {errno.errorcode.get(e.errno, e.errno)}")
            return ", ".join(results)

        self.assertEqual(as_uid(uid, write_through_the_vmm),
                         "write EPERM, truncate EPERM, shared map EPERM")
        # /proc/<pid>/fdinfo does not show a memfd's seals (this kernel lists pos, flags,
        # mnt_id, ino); F_GET_SEALS on a reopened fd does, and root is refused the same way.
        with open(f"/proc/{pid}/fdinfo/{next(iter(fds))}") as f:
            self.assertNotIn("seals", f.read())
        fd = os.open(fd_path, os.O_RDWR)
        try:
            F_GET_SEALS = 1034
            seals = fcntl.fcntl(fd, F_GET_SEALS)
            self.assertEqual(seals, 0x1 | 0x2 | 0x4 | 0x8)  # SEAL, SHRINK, GROW, WRITE
            with self.assertRaises(PermissionError):
                os.pwrite(fd, b"\xff", 0)
        finally:
            os.close(fd)
        # and the clone still works, on its private copy
        status, res, _ = self.d.exec(self.clone["id"], "echo alive")
        self.assertEqual((status, res["stdout"]), (200, "alive\n"))


class StrayTest(unittest.TestCase):
    def test_restart_kills_a_jailed_stray_but_not_a_process_naming_the_run_dir(self):
        d1 = harness.Daemon("--no-snapshots")
        try:
            kept = d1.create(language_pack="shell")
            lost = d1.create(language_pack="shell")
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()
        # lost's record is gone (a daemon that died before writing it): its VMM is a stray
        os.remove(os.path.join(d1.run_dir, lost["id"], "sandbox.json"))
        # an admin watching a console, and a root process whose argv names a sandbox
        # directory (what the old command-line sweep killed)
        fake = os.path.join(d1.run_dir, "sb_x")
        os.mkdir(fake)
        with open(os.path.join(fake, "console.log"), "w") as f:
            f.write("boot\n")
        tail = subprocess.Popen(["tail", "-f", os.path.join(fake, "console.log")],
                                stdout=subprocess.DEVNULL)
        sh = subprocess.Popen(["/bin/sh", "-c", "read line; true",
                               os.path.join(d1.run_dir, "sb_" + "f" * 32, "agent.sock")],
                              stdin=subprocess.PIPE)
        d2 = harness.Daemon(reuse=d1)
        try:
            log = d2.read_log()
            self.assertIn("re-attached 1 sandboxes, cleaned 1, killed 1 stray", log)
            deadline = time.monotonic() + 30
            while harness.pid_alive(lost["vmm_pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertFalse(harness.pid_alive(lost["vmm_pid"]))
            self.assertIsNone(tail.poll())
            self.assertIsNone(sh.poll())
            self.assertTrue(harness.pid_alive(kept["vmm_pid"]))
            status, res, _ = d2.exec(kept["id"], "echo kept")
            self.assertEqual((status, res["stdout"]), (200, "kept\n"))
            # the re-attached VMM keeps its uid, and a new one gets another
            new = d2.create(language_pack="shell")
            uids = {int(status_fields(sb["vmm_pid"])["Uid"].split()[0]) for sb in (kept, new)}
            self.assertEqual(len(uids), 2)
            self.assertEqual(d2.delete(new["id"]), 204)
        finally:
            sh.stdin.close()
            for p in (tail, sh):
                p.kill()
                p.wait()
            os.remove(os.path.join(fake, "console.log"))
            os.rmdir(fake)
            d2.stop()


if __name__ == "__main__":
    unittest.main()
