"""Install and run as a service (issue 16; docs/operations.md "Install as a service"):
`make install` with PREFIX and DESTDIR lays out the programs, the image build tree, man pages,
docs, the config file and the systemd unit; the man pages render; `systemd-analyze verify`
passes on the installed unit; `scripts/build-deb.sh` (`make deb`: dpkg-buildpackage -us -uc -b
on a copy of the tree) builds a .deb whose metadata and contents are checked, which unpacks into
a scratch root with dpkg --root, and whose programs run from there. Last, the daemon runs under
the unit's own capability bounding set and NoNewPrivileges and still boots a jailed VM (the one
VM here).

Nothing is installed on this machine itself: every install goes below a temporary directory.
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

REPO = harness.REPO


def makefile_version():
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        return re.search(r"^VERSION := (\S+)$", f.read(), re.M).group(1)


VERSION = makefile_version()


def run(argv, timeout=600, check=True, env=None, cwd=None):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def clean_env():
    """The environment without the variables that change the programs' defaults (make e2e
    sets IMAGES_DIR), so the installed programs show their own."""
    env = dict(os.environ)
    for var in ("IMAGES_DIR", "EMBERD_ADDR", "EMBER_LIBEXEC", "MANPATH"):
        env.pop(var, None)
    return env


def tree(root):
    """Every file and symlink below root, as absolute paths of the installed system."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.add("/" + os.path.relpath(os.path.join(dirpath, name), root))
    return found


def rootfs_files():
    """The image build tree's files, as git knows them (what make install must copy)."""
    out = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "rootfs"],
              cwd=REPO).stdout.split()
    return {f for f in out if os.path.isfile(os.path.join(REPO, f))}


def expected_files(prefix):
    docs = [f for f in os.listdir(os.path.join(REPO, "docs"))
            if f.endswith(".md") or f in ("openapi.yaml", "emberd.conf.example")]
    lib, man = f"{prefix}/lib/emberd", f"{prefix}/share/man"
    return ({f"{prefix}/sbin/emberd", f"{prefix}/sbin/emberd-setup-images",
             f"{prefix}/bin/emberctl", f"{lib}/bin/emberctl", f"{lib}/bin/ember-vm",
             f"{lib}/bin/emberd-init", f"{man}/man8/emberd.8", f"{man}/man1/emberctl.1",
             f"{man}/man8/emberd-setup-images.8", f"{prefix}/share/doc/emberd/README.md",
             f"{prefix}/lib/systemd/system/emberd.service", "/etc/emberd/emberd.conf"}
            | {f"{prefix}/share/doc/emberd/docs/{d}" for d in docs}
            | {f"{lib}/{f}" for f in rootfs_files()})


def unit_directives(path):
    directives = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                directives.setdefault(key, []).append(value)
    return directives


def check_programs_run(test, root, prefix):
    """The installed emberd, emberctl (through its link) and emberd-setup-images start from
    root and find what they need there."""
    env = clean_env()
    sbin, bindir = f"{root}{prefix}/sbin", f"{root}{prefix}/bin"
    help_text = run([f"{sbin}/emberd", "--help"], env=env).stdout
    test.assertEqual(help_text, run([os.path.join(harness.BIN, "emberd"), "--help"]).stdout)
    test.assertIn(f"emberd {VERSION}", run([f"{sbin}/emberd", "--version"], env=env).stdout)
    # Its defaults are the installed layout's (what the unit relies on: no flags).
    config = run([f"{sbin}/emberd", "--print-config", "--config", "none"], env=env).stdout
    test.assertRegex(config, r"(?m)^images = /var/lib/emberd/images +; default$")
    test.assertRegex(config, r"(?m)^run-dir = /run/emberd +; default$")
    test.assertIn("usage: emberctl", run([f"{bindir}/emberctl", "--help"], env=env).stdout)
    # The link leads emberctl to the image build tree: `pack list` runs its packctl.py.
    images = tempfile.mkdtemp(prefix="emberd-install-images.", dir="/tmp")
    try:
        listed = run([f"{bindir}/emberctl", "pack", "list", "--images", images], env=env,
                     check=False)
        test.assertNotIn("cannot read", listed.stderr)
        test.assertNotIn("cannot locate", listed.stderr)
        test.assertIn("packs.json", listed.stdout + listed.stderr)
    finally:
        shutil.rmtree(images, ignore_errors=True)
    setup = run([f"{sbin}/emberd-setup-images", "--help"], env=env).stdout
    test.assertIn(f"{prefix}/lib/emberd/rootfs/build.sh", setup)
    test.assertIn("IMAGES_DIR", setup)


class MakeInstall(unittest.TestCase):
    """make install DESTDIR=<tmp> with the default PREFIX (/usr/local)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emberd-install.", dir="/tmp")
        cls.root = os.path.join(cls.tmp, "root")
        cls.prefix = "/usr/local"
        try:
            run(["make", "-C", REPO, "install", f"DESTDIR={cls.root}"], timeout=900)
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)  # tearDownClass will not run
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, installed):
        return self.root + installed

    def test_install_puts_every_file_in_its_place(self):
        self.assertEqual(tree(self.root), expected_files(self.prefix))
        for prog in ("sbin/emberd", "sbin/emberd-setup-images", "lib/emberd/bin/ember-vm",
                     "lib/emberd/bin/emberd-init", "lib/emberd/rootfs/build.sh"):
            self.assertTrue(os.access(self.path(f"{self.prefix}/{prog}"), os.X_OK), prog)
        link = self.path(f"{self.prefix}/bin/emberctl")
        self.assertEqual(os.readlink(link), "../lib/emberd/bin/emberctl")
        self.assertEqual(os.stat(self.path("/etc/emberd/emberd.conf")).st_mode & 0o777, 0o644)

    def test_install_keeps_an_existing_config_file(self):
        conf = self.path("/etc/emberd/emberd.conf")
        with open(conf, "a", encoding="utf-8") as f:
            f.write("pool-size = 2\n")
        run(["make", "-C", REPO, "install", f"DESTDIR={self.root}"], timeout=900)
        with open(conf, encoding="utf-8") as f:
            self.assertTrue(f.read().endswith("pool-size = 2\n"))

    def test_installed_programs_run_from_the_tree(self):
        check_programs_run(self, self.root, self.prefix)

    def test_man_pages_render(self):
        for page, words in (("man8/emberd.8", ["emberd - runs untrusted code", "--images",
                                               "FILES", "/etc/emberd/emberd.conf",
                                               "emberd-setup-images"]),
                            ("man1/emberctl.1", ["emberctl - command-line client", "--addr",
                                                 "EMBERD_ADDR", "pack import"]),
                            ("man8/emberd-setup-images.8", ["emberd-setup-images - build the",
                                                            "KERNEL", "IMAGES_DIR"])):
            path = self.path(f"{self.prefix}/share/man/{page}")
            env = dict(clean_env(), MANWIDTH="100", MAN_KEEP_FORMATTING="")
            text = run(["man", "--nh", "--nj", "-l", "-Tutf8", path], env=env).stdout
            # bold/underline overstrikes and hyphenation aside
            plain = re.sub(r".\x08", "", text).replace("\u2010", "-").replace("\u2212", "-")
            for word in words:
                self.assertIn(word, plain, page)
            warnings = run(["groff", "-man", "-Tutf8", "-ww", "-z", path]).stderr
            self.assertEqual(warnings, "", page)

    def test_systemd_analyze_verifies_the_unit(self):
        unit = self.path(f"{self.prefix}/lib/systemd/system/emberd.service")
        directives = unit_directives(unit)
        self.assertEqual(directives["ExecStart"], [f"{self.prefix}/sbin/emberd"])
        # emberd has no sd_notify: Type=notify would never become ready.
        self.assertEqual(directives["Type"], ["exec"])
        for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                           ("PrivateTmp", "yes"), ("StateDirectory", "emberd"),
                           ("RuntimeDirectory", "emberd emberd-vmm-root")):
            self.assertEqual(directives[key], [value], key)
        # Directives that would break a jailed VMM (the unit's comment says why).
        for key in ("PrivateDevices", "PrivateNetwork", "RestrictNamespaces",
                    "MemoryDenyWriteExecute", "ProtectClock", "ProtectControlGroups",
                    "ProtectKernelTunables", "SystemCallFilter", "DeviceAllow", "User"):
            self.assertNotIn(key, directives)
        # verify checks that ExecStart exists: point it at the DESTDIR copy.
        check_dir = os.path.join(self.tmp, "verify")
        os.makedirs(check_dir, exist_ok=True)
        with open(unit, encoding="utf-8") as f:
            text = f.read().replace(f"ExecStart={self.prefix}/sbin/emberd",
                                    f"ExecStart={self.root}{self.prefix}/sbin/emberd")
        with open(os.path.join(check_dir, "emberd.service"), "w", encoding="utf-8") as f:
            f.write(text)
        # Documentation=man:... is checked with man(1): the installed pages.
        env = dict(clean_env(), MANPATH=self.path(f"{self.prefix}/share/man"))
        proc = run(["systemd-analyze", "verify", os.path.join(check_dir, "emberd.service")],
                   env=env, check=False)
        self.assertEqual((proc.returncode, proc.stdout, proc.stderr), (0, "", ""))


class DebianPackage(unittest.TestCase):
    """scripts/build-deb.sh (make deb): dpkg-buildpackage -us -uc -b, then the .deb."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emberd-deb.", dir="/tmp")
        status = run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                     cwd=REPO).stdout
        cls.outside_build = sorted(line for line in status.splitlines()
                                   if not re.search(r" (build|bin)/", line))
        try:
            run([os.path.join(REPO, "scripts", "build-deb.sh"), os.path.join(cls.tmp, "out")],
                timeout=1800)
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)  # tearDownClass will not run
            raise
        cls.deb = os.path.join(cls.tmp, "out", f"emberd_{VERSION}_amd64.deb")
        cls.root = os.path.join(cls.tmp, "root")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_build_leaves_the_tree_alone(self):
        status = run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                     cwd=REPO).stdout
        after = sorted(line for line in status.splitlines()
                       if not re.search(r" (build|bin)/", line))
        self.assertEqual(after, self.outside_build)

    def test_deb_metadata(self):
        info = run(["dpkg-deb", "-I", self.deb]).stdout
        fields = dict(re.findall(r"(?m)^ ([A-Z][\w-]+): (.*)$", info))
        self.assertEqual(fields["Package"], "emberd")
        self.assertEqual(fields["Version"], VERSION)
        self.assertEqual(fields["Architecture"], "amd64")
        for dep in ("libmicrohttpd12", "libjansson4", "libnftables1", "qemu-system-x86",
                    "mmdebstrap", "squashfs-tools", "python3"):
            self.assertIn(dep, fields["Depends"])
        self.assertIn("conffiles", info)
        scripts = os.path.join(self.tmp, "control")
        run(["dpkg-deb", "-e", self.deb, scripts])
        with open(os.path.join(scripts, "conffiles"), encoding="utf-8") as f:
            self.assertEqual(f.read().split(), ["/etc/emberd/emberd.conf"])
        with open(os.path.join(scripts, "postinst"), encoding="utf-8") as f:
            postinst = f.read()
        # The unit is enabled and started by dh_installsystemd's snippet; the images are not
        # built there (minutes), the admin is told how.
        self.assertIn("deb-systemd-helper", postinst)
        self.assertIn("emberd.service", postinst)
        self.assertIn("emberd-setup-images", postinst)
        self.assertNotIn("build.sh", postinst)

    def test_deb_contents(self):
        listing = run(["dpkg-deb", "-c", self.deb]).stdout
        paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
        want = (expected_files("/usr") - {"/usr/lib/systemd/system/emberd.service"}) | {
            "/lib/systemd/system/emberd.service"}
        # dh_compress compresses the man pages; debian/rules keeps the docs plain.
        want = {p + ".gz" if p.startswith("/usr/share/man/") else p for p in want}
        self.assertEqual(want - paths, set())
        self.assertIn("/usr/share/doc/emberd/copyright", paths)
        self.assertIn("/usr/share/doc/emberd/changelog.gz", paths)
        link = [line for line in listing.splitlines()
                if line.endswith("./usr/bin/emberctl -> ../lib/emberd/bin/emberctl")]
        self.assertEqual(len(link), 1, listing)

    def test_deb_unpacks_into_a_scratch_root_and_runs(self):
        admin = os.path.join(self.root, "var", "lib", "dpkg")
        for sub in ("info", "updates", "triggers"):
            os.makedirs(os.path.join(admin, sub), exist_ok=True)
        open(os.path.join(admin, "status"), "a").close()
        # --unpack: the maintainer scripts would run chrooted into a root without a shell
        # (and configure would enable the unit); the files are what is tested here.
        run(["dpkg", f"--root={self.root}", "--force-depends", "--unpack", self.deb])
        listed = run(["dpkg", f"--root={self.root}", "-L", "emberd"]).stdout.split()
        self.assertIn("/usr/sbin/emberd", listed)
        self.assertIn("/lib/systemd/system/emberd.service", listed)
        check_programs_run(self, self.root, "/usr")
        unit = unit_directives(os.path.join(self.root, "lib/systemd/system/emberd.service"))
        self.assertEqual(unit["ExecStart"], ["/usr/sbin/emberd"])


class UnitCapabilities(unittest.TestCase):
    """The daemon under the unit's CapabilityBoundingSet and NoNewPrivileges (setpriv, as
    systemd would set them) still jails and boots a VM, runs code in it and builds the pack's
    template (the snapshot a clone starts from)."""

    @classmethod
    def setUpClass(cls):
        unit = unit_directives(os.path.join(REPO, "packaging", "emberd.service.in"))
        caps = " ".join(unit["CapabilityBoundingSet"]).split()  # the lines add up
        cls.assert_nnp = unit["NoNewPrivileges"] == ["yes"]
        bounding = ",".join(["-all"] + ["+" + c.lower().removeprefix("cap_") for c in caps])
        cls.tmp = tempfile.mkdtemp(prefix="emberd-caps.", dir="/tmp")
        wrapper = os.path.join(cls.tmp, "emberd")
        with open(wrapper, "w", encoding="utf-8") as f:
            f.write("#!/bin/sh\nexec setpriv --bounding-set %s --no-new-privs -- %s \"$@\"\n"
                    % (bounding, os.path.join(harness.ASAN_BIN, "emberd")))
        os.chmod(wrapper, 0o755)
        try:
            cls.daemon = harness.Daemon(binary=wrapper)
        except Exception:
            shutil.rmtree(cls.tmp, ignore_errors=True)  # tearDownClass will not run
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_jailed_vm_boots_under_the_units_capabilities(self):
        self.assertTrue(self.assert_nnp)
        with open(f"/proc/{self.daemon.proc.pid}/status", encoding="utf-8") as f:
            status = f.read()
        self.assertRegex(status, r"NoNewPrivs:\s+1")
        self.assertNotRegex(status, r"CapBnd:\s+000001ffffffffff")
        _, health, _ = self.daemon.request("GET", "/healthz")
        self.assertIn("; jailed: uid/gid", health["vmm"]["description"])
        sandbox = self.daemon.create(language_pack="shell")
        try:
            status, result, _ = self.daemon.exec(sandbox["id"], "echo jailed-ok")
            self.assertEqual(status, 200, result)
            self.assertEqual(result["stdout"], "jailed-ok\n")
        finally:
            self.assertEqual(self.daemon.delete(sandbox["id"]), 204)
        # The create left a template build behind (a VMM of its own, then idle at a lower
        # priority): it must succeed too.
        health = self.daemon.wait_health(
            lambda h: h["templates"]["ready"] + h["templates"]["failed"] > 0, 600,
            "the shell template")
        self.assertEqual(health["templates"]["failed"], 0, health["templates"])
        # A missing capability may only cost a warning (CAP_SYS_NICE: vmm.priority_failed of
        # the template's VMM): none but the one about TCG may appear.
        warnings = [line for line in self.daemon.read_log().splitlines()
                    if ("level=warn" in line or "level=error" in line)
                    and "event=daemon.accel" not in line]
        self.assertEqual(warnings, [])


if __name__ == "__main__":
    unittest.main()
