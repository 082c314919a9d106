"""End-to-end tests of emberd's config file (issue 20, "Config file"; docs/operations.md "Config
file"): `emberd --config FILE` and `emberd --print-config`, run directly (no VM, no images),
and one daemon that serves with settings from a file.

- PrintConfigTest: every key --help documents is listed with its source (default, env,
  FILE:LINE, flag); the command line overrides the file, a repeated flag replaces the file's
  list; the listing loads back as a config file.
- ExampleFileTest: docs/emberd.conf.example names every key with its default, and its
  defaults, uncommented, load as a config file that changes nothing.
- ConfigErrorsTest: unknown key, bad value (the flag's own message), a key set twice, a
  command-line-only key, a missing explicit --config, a file others may write: exit 2 and a
  message naming FILE:LINE and the key; nothing starts.
- ConfigDaemonTest: a daemon started with --config uses the file's settings (GET /healthz) and
  says so in its log; a flag still wins over the file.
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
import test_docs_flags  # noqa: E402

SOURCE = re.compile(r"^(#\s*)?([a-z0-9-]+) = (.*?)\s+; (.+)$")


def emberd():
    return test_docs_flags.program_path("emberd")


def clean_env(**extra):
    """The environment without the variables emberd takes defaults from."""
    env = {k: v for k, v in os.environ.items() if k not in ("EMBERD_ADDR", "IMAGES_DIR")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.update(extra)
    return env


def run(*args, env=None):
    return subprocess.run([emberd(), *args], capture_output=True, text=True, timeout=60,
                          env=env or clean_env())


def settings(stdout):
    """{key: [(value or None when not set, source), ...]} from --print-config's output."""
    out = {}
    for line in stdout.splitlines():
        m = SOURCE.match(line)
        if m is None:
            if not line.startswith("#"):
                raise AssertionError(f"unreadable --print-config line {line!r}")
            continue
        value = None if m.group(1) else m.group(3)
        out.setdefault(m.group(2), []).append((value, m.group(4)))
    return out


class ConfigFiles(unittest.TestCase):
    """A private directory of config files (mode 0600, as the daemon requires)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="emcfg.", dir="/tmp")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, text, name="emberd.conf", mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def print_config(self, *args, env=None):
        proc = run(*args, "--print-config", env=env)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(harness.sanitizer_problems(proc.stderr), [])
        return settings(proc.stdout)

    def refused(self, text, *args):
        """emberd --config <text> ... --print-config: exit 2; returns its one stderr line."""
        proc = run("--config", self.write(text), *args, "--print-config")
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(harness.sanitizer_problems(proc.stderr), [])
        return proc.stderr.strip()


class PrintConfigTest(ConfigFiles):
    def test_every_key_is_listed_with_its_default(self):
        # `--config none`: not even /etc/emberd/emberd.conf, should this machine have one
        listed = self.print_config("--config", "none")
        keys = {e[2:] for e in test_docs_flags.help_entries(test_docs_flags.help_text("emberd"))
                if e.startswith("--")}
        self.assertEqual(set(listed), keys - {"config", "print-config", "help", "version"})
        for key, values in listed.items():
            self.assertEqual([s for _, s in values], ["default"], key)
        self.assertEqual(listed["max-vcpus"], [("4", "default")])
        self.assertEqual(listed["max-sandboxes"], [(None, "default")])  # decided at startup
        self.assertEqual(listed["prewarm"], [("false", "default")])

    def test_the_environment_is_named_as_a_source(self):
        listed = self.print_config("--config", self.write(""),
                                   env=clean_env(IMAGES_DIR="/srv/img"))
        self.assertEqual(listed["images"], [("/srv/img", "env IMAGES_DIR")])

    def test_flags_override_the_file_and_the_file_the_defaults(self):
        path = self.write("# limits\nmax-vcpus = 2\npool-size = 3\n\nprewarm = true\n"
                          "no-snapshots = true\nlog-level = debug\n")
        listed = self.print_config("--config", path, "--max-vcpus", "3", "--log-level", "warn")
        self.assertEqual(listed["max-vcpus"], [("3", "flag")])
        self.assertEqual(listed["log-level"], [("warn", "flag")])
        self.assertEqual(listed["pool-size"], [("3", f"{path}:3")])
        self.assertEqual(listed["prewarm"], [("true", f"{path}:5")])
        self.assertEqual(listed["no-snapshots"], [("true", f"{path}:6")])
        self.assertEqual(listed["max-memory-mib"], [("2048", "default")])

    def test_repeated_keys_add_up_and_a_repeated_flag_replaces_them(self):
        path = self.write("allow-origin = http://a:1\nmax-vcpus = 2\n"
                          "allow-origin = http://b:2 ; comment\n")
        listed = self.print_config("--config", path)
        self.assertEqual(listed["allow-origin"], [("http://a:1", f"{path}:1"),
                                                  ("http://b:2", f"{path}:3")])
        listed = self.print_config("--config", path, "--allow-origin", "http://c:3")
        self.assertEqual(listed["allow-origin"], [("http://c:3", "flag")])

    def test_the_listing_loads_back_as_a_config_file(self):
        path = self.write("max-vcpus = 2\nallow-origin = http://a:1\nallow-origin = http://b:2\n"
                          "kernel-args = loglevel=7\nno-jail = true\n")
        first = run("--config", path, "--pool-size", "0", "--print-config")
        self.assertEqual(first.returncode, 0, first.stderr)
        again = self.print_config("--config", self.write(first.stdout, name="again.conf"))
        values = {k: [v for v, _ in vs] for k, vs in settings(first.stdout).items()}
        self.assertEqual({k: [v for v, _ in vs] for k, vs in again.items()}, values)
        line = first.stdout.splitlines().index(
            next(x for x in first.stdout.splitlines() if x.startswith("pool-size ="))) + 1
        self.assertEqual(again["pool-size"],
                         [("0", os.path.join(self.tmp, "again.conf") + f":{line}")])


class ExampleFileTest(ConfigFiles):
    EXAMPLE = os.path.join(harness.REPO, "docs", "emberd.conf.example")

    def test_the_example_names_every_key_with_its_default(self):
        listed = self.print_config("--config", self.write(""))
        with open(self.EXAMPLE, encoding="utf-8") as f:
            lines = f.read().splitlines()
        example = {}
        for line in lines:
            m = re.match(r"^#([a-z0-9-]+) = (.+)$", line)
            if m:
                example[m.group(1)] = m.group(2)
        self.assertEqual(set(example), set(listed))
        for key, values in listed.items():
            if values[0][0] is not None:
                self.assertEqual(example[key], values[0][0], key)
        uncommented = "".join(line[1:] + "\n" for line in lines
                              if re.match(r"^#([a-z0-9-]+) = ", line)
                              and listed[line[1:].split(" = ")[0]][0][0] is not None)
        again = self.print_config("--config", self.write(uncommented, name="example.conf"))
        self.assertEqual({k: [v for v, _ in vs] for k, vs in again.items()},
                         {k: [v for v, _ in vs] for k, vs in listed.items()})


class ConfigErrorsTest(ConfigFiles):
    def test_an_unknown_key_is_named_with_its_line(self):
        path = os.path.join(self.tmp, "emberd.conf")
        self.assertEqual(self.refused("max-vcpus = 2\n# typo below\nmax-sandbox = 4\n"),
                         f"emberd: {path}:3: unknown key `max-sandbox`")

    def test_a_bad_value_gets_the_flags_own_message(self):
        flag = run("--max-sandboxes", "0", "--print-config")
        self.assertEqual(flag.returncode, 2)
        message = flag.stderr.strip().removeprefix("emberd: ")
        path = os.path.join(self.tmp, "emberd.conf")
        self.assertEqual(self.refused("\nmax-sandboxes = 0\n"),
                         f"emberd: {path}:2: max-sandboxes: {message}")
        self.assertIn(f"{path}:1: vmm: --vmm must be auto, qemu or firecracker",
                      self.refused("vmm = bhyve\n"))
        self.assertIn(f"{path}:1: prewarm: must be true or false",
                      self.refused("prewarm = yes\n"))

    def test_a_bad_value_is_refused_even_when_a_flag_overrides_it(self):
        self.assertIn(":1: max-vcpus: --max-vcpus must be a number between 1 and 64",
                      self.refused("max-vcpus = 100\n", "--max-vcpus", "2"))

    def test_a_key_set_twice_and_command_line_only_keys_are_refused(self):
        self.assertIn(":3: `pool-size` is already set on line 1",
                      self.refused("pool-size = 1\nmax-vcpus = 2\npool-size = 2\n"))
        for key in ("config", "print-config", "help", "version"):
            self.assertIn(f":1: `{key}` is a command-line flag only",
                          self.refused(f"{key} = true\n"))

    def test_a_missing_explicit_file_and_a_file_others_may_write_are_refused(self):
        missing = os.path.join(self.tmp, "missing.conf")
        proc = run("--config", missing, "--print-config")
        self.assertEqual(proc.returncode, 2)
        self.assertIn(f"config file `{missing}`: No such file or directory", proc.stderr)
        proc = run("--config", self.write("pool-size = 1\n", mode=0o666), "--print-config")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("is writable by group or others (mode 0666)", proc.stderr)


class ConfigDaemonTest(ConfigFiles):
    def serve(self, *args):
        d = harness.Daemon(*args)
        try:
            return d.request("GET", "/healthz")[1], d.read_log()
        finally:
            d.stop()

    def test_the_daemon_serves_with_the_files_settings_under_its_flags(self):
        path = self.write("max-sandboxes = 3\nmax-vcpus = 2\n")
        health, log = self.serve("--config", path)
        self.assertEqual(health["memory"]["max_sandboxes"], 3)
        self.assertIn(f"settings from {path} (2 keys; command-line flags override it)", log)
        health, _ = self.serve("--config", path, "--max-sandboxes", "5")
        self.assertEqual(health["memory"]["max_sandboxes"], 5)


if __name__ == "__main__":
    unittest.main()
