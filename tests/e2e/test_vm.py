"""End-to-end tests of the guest side in real microVMs, without the daemon: ember-vm boots one VM
(QEMU microvm; TCG here), runs a script of requests against emberd-init, and tears it down.
"""

import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EMBER_VM = os.path.join(harness.ASAN_BIN, "ember-vm")


def run_vm(steps, pack="python", *args):
    """Boots a VM, runs steps, returns (result dict, stderr). Fails the test on a bad run."""
    harness.require_images()
    proc = subprocess.run([EMBER_VM, "--images", harness.IMAGES_DIR, "--pack", pack, *args],
                          input=json.dumps({"steps": steps}), capture_output=True, text=True,
                          timeout=600)
    problems = harness.sanitizer_problems(proc.stderr)
    if proc.returncode != 0 or problems:
        raise AssertionError(f"ember-vm failed ({proc.returncode}): {proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return json.loads(proc.stdout), proc.stderr


def exec_step(code, **fields):
    fields["code"] = code
    return {"exec": fields}


DOUBLE_FORK = """
import os, time
pid = os.fork()
if pid == 0:
    if os.fork() == 0:
        time.sleep(0.3)     # the grandchild outlives its parent: PID 1 must reap it
        os._exit(0)
    os._exit(0)
os.waitpid(pid, 0)
print("forked")
"""


# Waits (up to 60 s, whatever the machine's speed) until no process of the sandbox user other
# than this one and its ancestors exists, zombies included, then prints "waited": the double
# fork's grandchild has exited and PID 1 has reaped it. A grandchild PID 1 never reaps stays a
# zombie, the loop gives up and prints what is left instead.
WAIT_FOR_NO_OTHER_PROCESS = """
import os, time
mine = set()
pid = os.getpid()
while pid > 1:
    mine.add(pid)
    with open(f"/proc/{pid}/stat") as f:
        pid = int(f.read().rsplit(") ", 1)[1].split()[1])
def others():
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in mine:
            continue
        try:
            with open(f"/proc/{p}/status") as f:
                status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except OSError:
            continue
        if status.get("Uid", "").split()[:1] == ["1000"]:
            found.append((int(p), status["Name"].strip(), status["State"].strip()))
    return found
deadline = time.monotonic() + 60
while others() and time.monotonic() < deadline:
    time.sleep(0.1)
print("waited" if not others() else f"still there after 60 s: {others()}")
"""


class PythonVmTest(unittest.TestCase):
    """One VM runs every python check; a second VM proves the first one's writes are gone."""

    @classmethod
    def setUpClass(cls):
        steps = [
            exec_step("print(6*7)"),                                                  # 0
            exec_step("import sys; print('out'); print('err', file=sys.stderr); "
                      "sys.exit(3)"),                                                 # 1
            exec_step("import sys; data = sys.stdin.buffer.read(); "
                      "print(len(data), data[:5])", stdin="hello" * 20000),           # 2
            exec_step("while True: pass", timeout_ms=1500),                           # 3
            exec_step("print('still usable')"),                                       # 4
            exec_step(DOUBLE_FORK),                                                   # 5
            exec_step(WAIT_FOR_NO_OTHER_PROCESS, timeout_ms=120000),                  # 6
            {"ps": {}},                                                               # 7
            exec_step("import sys\nfor _ in range(100):\n"
                      "    sys.stdout.write('x' * (1 << 20))", output_limit=1 << 20,
                      timeout_ms=120000),                                             # 8
            exec_step("open('/home/sandbox/marker', 'w').write('x'); "
                      "open('/tmp/marker', 'w').write('y'); "
                      "print(open('/home/sandbox/marker').read() + "
                      "open('/tmp/marker').read())"),                                 # 9
            exec_step("print([l.split()[2] for l in open('/proc/mounts') "
                      "if l.split()[1] == '/'][0])"),                                 # 10
            exec_step("import json, sqlite3, uuid; print(json.dumps([1]))"),          # 11
            exec_step("import os; print(os.getuid(), os.getgid())"),                  # 12
            {"ping": {}},                                                             # 13
        ]
        cls.out, cls.stderr = run_vm(steps)
        cls.r = cls.out["results"]

    def test_print_42(self):
        self.assertEqual(self.r[0]["stdout"], "42\n")
        self.assertEqual(self.r[0]["exit_code"], 0)

    def test_exit_code_and_separate_stderr(self):
        self.assertEqual(self.r[1]["exit_code"], 3)
        self.assertEqual(self.r[1]["stdout"], "out\n")
        self.assertEqual(self.r[1]["stderr"], "err\n")

    def test_stdin_piped_through(self):
        self.assertEqual(self.r[2]["stdout"], "100000 b'hello'\n")

    def test_timeout_kills_and_vm_stays_usable(self):
        self.assertTrue(self.r[3]["timed_out"])
        self.assertEqual(self.r[3]["signal"], 9)
        self.assertEqual(self.r[4]["stdout"], "still usable\n")

    def test_double_fork_leaves_no_zombie(self):
        self.assertEqual(self.r[5]["stdout"], "forked\n")
        self.assertEqual(self.r[6]["stdout"], "waited\n")
        procs = self.r[7]["processes"]
        self.assertTrue(any(p["pid"] == 1 for p in procs))
        zombies = [p for p in procs if p["state"] == "Z"]
        self.assertEqual(zombies, [])
        self.assertFalse([p for p in procs if p["uid"] == 1000],
                         "no process of the sandbox user should remain")

    def test_huge_output_is_capped_and_flagged(self):
        self.assertEqual(self.r[8]["exit_code"], 0, self.r[8])
        self.assertEqual(self.r[8]["stdout_len"], 1 << 20)
        self.assertTrue(self.r[8]["stdout_truncated"])
        self.assertFalse(self.r[8]["stderr_truncated"])

    def test_root_filesystem_is_a_writable_overlay(self):
        self.assertEqual(self.r[9]["stdout"], "xy\n")
        self.assertEqual(self.r[10]["stdout"], "overlay\n")

    def test_writes_are_gone_in_a_fresh_vm(self):
        out, _ = run_vm([exec_step("import os; print(os.path.exists('/home/sandbox/marker'), "
                                   "os.path.exists('/tmp/marker'))")])
        self.assertEqual(out["results"][0]["stdout"], "False False\n")
        self.assertNotEqual(out["sandbox_id"], self.out["sandbox_id"])

    def test_standard_library_and_unprivileged_user(self):
        self.assertEqual(self.r[11]["stdout"], "[1]\n")
        self.assertEqual(self.r[12]["stdout"], "1000 1000\n")

    def test_handshake_and_teardown(self):
        self.assertEqual(self.out["ready"]["version"], 8)
        self.assertEqual(self.out["ready"]["sandbox_id"], self.out["sandbox_id"])
        self.assertIn("round_trip_us", self.r[13])
        # ember-vm returned: the VM process is gone and its directory removed
        self.assertFalse(harness.pid_alive(self.out["vmm_pid"]))
        self.assertFalse(os.path.exists(self.out["run_dir"]))


class ShellVmTest(unittest.TestCase):
    def test_shell_pack(self):
        out, _ = run_vm([exec_step("echo hi; exit 3"),
                         exec_step("ls /usr/bin/python3 2>/dev/null || echo no-python"),
                         exec_step("cat; echo", stdin="from stdin")], pack="shell")
        r = out["results"]
        self.assertEqual(r[0]["stdout"], "hi\n")
        self.assertEqual(r[0]["exit_code"], 3)
        self.assertEqual(r[1]["stdout"], "no-python\n")
        self.assertEqual(r[2]["stdout"], "from stdin\n")
        self.assertFalse(harness.pid_alive(out["vmm_pid"]))


# Step 1 of ExecCgroupTest: an escapee that left the process group with setsid() is running
# (its pid written) before the exec prints "started" and blocks until its timeout kills it.
SETSID_ESCAPEE = ("setsid sh -c 'echo $$ > /tmp/escapee.tmp && mv /tmp/escapee.tmp /tmp/escapee; "
                  "exec sleep 1000' & "
                  "while [ ! -s /tmp/escapee ]; do sleep 0.05; done; echo started; sleep 1000")
# Step 2: polls (up to 60 s, whatever the machine's speed) until no sleep is left, zombies
# included (PID 1 reaps the killed escapee once the kernel has delivered its SIGKILL), and prints
# "done"; else the survivors.
NO_SLEEP_LEFT = ("i=0; while [ $i -lt 120 ]; do left=; "
                 "for p in /proc/[0-9]*; do "
                 "[ \"$(cat $p/comm 2>/dev/null)\" = sleep ] && left=\"$left $p\"; done; "
                 "[ -z \"$left\" ] && break; i=$((i+1)); sleep 0.5; done; "
                 "if [ -z \"$left\" ]; then echo done; else echo \"left:$left\"; fi")
# Step 3: background processes that live until killed, started until fork fails. The loop runs
# in a subshell (the shell exits at a fork failure); the outer shell then uses builtins only
# (read, echo), since the exec has no process to spare. Prints the count started, the exec
# cgroup's pids.max and pids.current, and the fork error.
FORK_UNTIL_REFUSED = (
    "cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); echo 0 > /tmp/n; "
    "( i=0; while [ $i -lt 300 ]; do sleep 1000 </dev/null >/dev/null 2>&1 & "
    "i=$((i+1)); echo $i > /tmp/n; done ) 2> /tmp/err; "
    "read n < /tmp/n; read max < $cg/pids.max; read current < $cg/pids.current; "
    "echo \"started=$n max=$max current=$current\"; "
    "while read -r line; do echo \"$line\"; done < /tmp/err")


class ExecCgroupTest(unittest.TestCase):
    """Each exec has a cgroup of its own in the guest: its timeout kills what escaped the process
    group with setsid(), and pids.max bounds the exec's processes."""

    def test_timeout_kills_setsid_escapees_and_pids_are_per_exec(self):
        out, _ = run_vm([
            exec_step("cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/pids.max"),
            # 10 s: room for the escapee to start in a cold guest under a loaded TCG host.
            exec_step(SETSID_ESCAPEE, timeout_ms=10000),
            exec_step(NO_SLEEP_LEFT, timeout_ms=120000),
            exec_step(FORK_UNTIL_REFUSED, timeout_ms=300000),
        ], "shell")
        r = out["results"]
        self.assertEqual(r[0]["stdout"], "256\n")  # ember-vm's max_processes
        self.assertTrue(r[1]["timed_out"], r[1])
        self.assertEqual(r[2]["stdout"], "done\n", "a process survived the exec's timeout")
        # The exec's processes stop at its pids.max (256): the shell, the loop's subshell and
        # 254 sleeps, none of which exits by itself; the 255th fork is refused.
        self.assertEqual(r[3]["exit_code"], 0, r[3])
        self.assertFalse(r[3]["timed_out"], r[3])
        m = re.search(r"started=(\d+) max=(\d+) current=(\d+)", r[3]["stdout"])
        self.assertIsNotNone(m, r[3])
        started, pids_max, current = map(int, m.groups())
        self.assertEqual(pids_max, 256, r[3])
        self.assertEqual(started, pids_max - 2, r[3])
        self.assertEqual(current, pids_max - 1, r[3])  # the subshell has exited
        self.assertIn("fork", r[3]["stdout"].lower(), r[3])
        if "started" not in r[1]["stdout"]:
            # Everything in the exec was killed (step 2), but the escapee may not have been
            # running yet, so its escape was not exercised.
            self.skipTest(f"the setsid() escapee had not started within the 10 s exec timeout "
                          f"(exec ran {r[1].get('duration_ms')} ms): machine too slow to test it")


class BootFailureTest(unittest.TestCase):
    def test_unknown_pack_and_missing_images_fail_cleanly(self):
        proc = subprocess.run([EMBER_VM, "--images", harness.IMAGES_DIR, "--pack", "nope"],
                              input='{"steps":[]}', capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("unknown pack", proc.stderr)
        proc = subprocess.run([EMBER_VM, "--images", "/nonexistent"], input='{"steps":[]}',
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("make images", proc.stderr)

    def test_boot_deadline_leaves_nothing_behind(self):
        # No VM reaches its agent within 50 ms, even with KVM.
        import tempfile
        base = tempfile.mkdtemp(prefix="evb.")
        try:
            proc = subprocess.run([EMBER_VM, "--images", harness.IMAGES_DIR,
                                   "--boot-timeout-ms", "50", "--run-base", base],
                                  input='{"steps":[]}', capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            # Either phase of the boot can meet the deadline: QEMU not yet listening on the agent
            # socket, or the agent not yet answering the handshake.
            error = [line for line in proc.stderr.splitlines()
                     if line.startswith("ember-vm: error:")]
            self.assertEqual(len(error), 1, proc.stderr)
            self.assertRegex(error[0], r"deadline|did not answer|in time", proc.stderr)
            self.assertEqual(os.listdir(base), [])
            self.assertEqual(harness.processes_mentioning(base), [])
        finally:
            os.rmdir(base)


if __name__ == "__main__":
    unittest.main()
