"""Fault tests: dying, hanging and slow guests, daemon crashes and restarts, graceful shutdown.
Every daemon here is checked on the way out for leaked VMs, leftover files and sanitizer reports.
"""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


wait_for = harness.wait_for
FAKE_FC = os.path.join(harness.REPO, "tests", "fakes", "firecracker")


def qmp(path, *commands):
    """Runs QMP commands on a VM's monitor socket; returns their replies."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        f = s.makefile("rwb")
        f.readline()  # greeting
        replies = []
        for cmd in ({"execute": "qmp_capabilities"}, *commands):
            f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            replies.append(json.loads(f.readline()))
        return replies[1:]


class GuestFaultTest(unittest.TestCase):
    """One daemon; each test makes its own sandboxes. Its guests panic on an NMI that no
    device raised (--kernel-args), so a test can make one panic from outside."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon("--kernel-args", "sysctl.kernel.panic_on_unrecovered_nmi=1")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def state(self, sid):
        status, body, _ = self.d.request("GET", f"/sandboxes/{sid}")
        return body["state"] if status == 200 else None

    def assert_fails_alone(self, end_victim, failure):
        """Ends one of two sandboxes with end_victim(sandbox); that one must turn failed with
        `failure` in its reason, answer 502 and still delete cleanly; the other goes on."""
        victim = self.d.create(language_pack="shell")
        bystander = self.d.create(language_pack="shell")
        end_victim(victim)
        wait_for(lambda: self.state(victim["id"]) == "failed", 60, "state failed")
        # A dying guest can break the channel a moment before its VMM process is gone (a
        # panic closes it on the way out; on a loaded machine that moment stretches): the
        # VMM must end, and then the reason must name what ended it.
        wait_for(lambda: not harness.pid_alive(victim["vmm_pid"]), 60, "the VMM to be gone")
        status, body, _ = self.d.request("GET", f"/sandboxes/{victim['id']}")
        self.assertIn(failure, body["failure"])
        status, body, _ = self.d.exec(victim["id"], "echo hi")
        self.assertEqual(status, 502, body)
        self.assertEqual(body["error"]["code"], "guest_failed")
        self.assertIn(failure, body["error"]["message"])
        status, body, _ = self.d.exec(bystander["id"], "echo fine")
        self.assertEqual((status, body["stdout"]), (200, "fine\n"))
        self.assertEqual(self.d.delete(victim["id"]), 204)
        self.assertNotIn(victim["id"], self.d.runtime_entries())
        self.assertEqual(self.d.delete(bystander["id"]), 204)

    def test_killed_vmm_fails_the_sandbox_only(self):
        self.assert_fails_alone(lambda sb: os.kill(sb["vmm_pid"], signal.SIGKILL),
                                "the VM process exited unexpectedly")

    def test_guest_kernel_panic_fails_the_sandbox_only(self):
        def panic(sb):
            # A real panic of the guest kernel: an NMI it cannot explain, with the sysctl
            # the class's daemon sets
            self.assertEqual(qmp(os.path.join(self.d.run_dir, sb["id"], "qmp.sock"),
                                 {"execute": "inject-nmi"}), [{"return": {}}])

        self.assert_fails_alone(panic, "exited after a guest kernel panic (NMI: Not continuing)")

    def test_exec_when_vmm_dies_mid_exec_is_502(self):
        sb = self.d.create(language_pack="shell")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(self.d.exec, sb["id"], "sleep 1000")
            self.d.wait_guest_process(sb["id"], "sleep")  # really mid-exec
            os.kill(sb["vmm_pid"], signal.SIGKILL)
            status, body, _ = fut.result(timeout=120)
        self.assertEqual(status, 502, body)
        wait_for(lambda: self.state(sb["id"]) == "failed", 60, "state failed")
        self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_hung_guest_gives_504_while_daemon_stays_responsive(self):
        hung = self.d.create(language_pack="shell")
        other = self.d.create(language_pack="shell")
        os.kill(hung["vmm_pid"], signal.SIGSTOP)
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                t0 = time.monotonic()
                fut = pool.submit(self.d.exec, hung["id"], "echo never", timeout_ms=500)
                wait_for(lambda: self.d.request("GET", f"/sandboxes/{hung['id']}")[1]
                         ["execs_running"] == 1, 60, "the exec to reach the hung guest")
                # While that exec waits on a frozen guest (its answer is due ~15 s on, by the
                # daemon's own deadlines: timeout, the 10 s grace, the 5 s after the cancel),
                # everything else is answered: no lock is held across guest I/O.
                for _ in range(3):
                    status, _, _ = self.d.request("GET", "/healthz")
                    self.assertEqual(status, 200)
                    status, _, _ = self.d.request("GET", f"/sandboxes/{hung['id']}")
                    self.assertEqual(status, 200)
                self.assertFalse(fut.done(), "the other requests waited for the hung exec")
                status, body, _ = self.d.exec(other["id"], "echo ok")
                self.assertEqual(body["stdout"], "ok\n")
                status, body, _ = fut.result(timeout=120)
                elapsed = time.monotonic() - t0
            self.assertEqual(status, 504, body)
            self.assertEqual(body["error"]["code"], "guest_timeout")
            # The daemon's deadlines (~15.5 s), not the client's 300 s: an exec to a frozen
            # guest does end, with room for a loaded host.
            self.assertLess(elapsed, 90)
        finally:
            os.kill(hung["vmm_pid"], signal.SIGCONT)
        # A frozen VMM is still destroyed promptly (QMP does not answer: SIGKILL after grace).
        os.kill(hung["vmm_pid"], signal.SIGSTOP)
        t0 = time.monotonic()
        self.assertEqual(self.d.delete(hung["id"]), 204)
        # QMP's timeout, then SIGKILL after the 2 s stop grace: bounded, not hung (a loaded
        # host gets room).
        self.assertLess(time.monotonic() - t0, 60)
        self.assertFalse(harness.pid_alive(hung["vmm_pid"]))
        self.assertEqual(self.d.delete(other["id"]), 204)


class BootDeadlineTest(unittest.TestCase):
    def test_slow_boot_fails_cleanly(self):
        d = harness.Daemon("--boot-timeout-ms", "300")
        try:
            t0 = time.monotonic()
            status, body, _ = d.request("POST", "/sandboxes", {})
            self.assertEqual(status, 504, body)
            self.assertEqual(body["error"]["code"], "guest_timeout")
            # Failed at the 300 ms deadline and torn down, not left to the client's 300 s
            # (room for a loaded host: the teardown's QMP and stop grace).
            self.assertLess(time.monotonic() - t0, 60)
            self.assertEqual(d.runtime_entries(), [])
            self.assertEqual([p for p in d.vmm_pids() if harness.pid_alive(p)], [])
            status, health, _ = d.request("GET", "/healthz")
            self.assertEqual(health["sandboxes"]["create_failures_total"], 1)
            self.assertEqual(health["sandboxes"]["total"], 0)
        finally:
            d.stop()


NO_TIMER = "the guest kernel has no timer"  # PROTO_CONSOLE_NO_TIMER (src/proto/messages.h)


def no_timer_qemu(directory, boots):
    """A QEMU wrapper for FAKE_FC_QEMU: its first `boots` cold boots get `noapictimer` on their
    kernel command line, the state a host stall leaves under TCG (docs/images.md) made on
    purpose; every later one runs as it is. Returns the wrapper's path."""
    counter = os.path.join(directory, "no-timer-boots")
    with open(counter, "w") as f:
        f.write(str(boots))
    # The fake (and so its QEMU) runs as the jailed VMM's uid.
    os.chmod(directory, 0o755)
    os.chmod(counter, 0o666)
    wrapper = os.path.join(directory, "qemu-no-timer")
    with open(wrapper, "w") as f:
        f.write(f"""#!/usr/bin/python3
import fcntl, os, shutil, sys
argv = sys.argv[1:]
with open({counter!r}, "r+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    left = int(f.read() or 0)
    if left > 0 and "-append" in argv:
        argv[argv.index("-append") + 1] += " noapictimer"
        f.seek(0)
        f.truncate()
        f.write(str(left - 1))
qemu = shutil.which("qemu-system-x86_64")
os.execv(qemu, [qemu, *argv])
""")
    os.chmod(wrapper, 0o755)
    return wrapper, counter


class NoTimerBootTest(unittest.TestCase):
    """A guest whose kernel came up without a timer (under TCG a host stall during the LAPIC
    timer's calibration makes the kernel disable it; nothing then wakes a sleeping guest) says
    so on its console and powers off at once; the daemon boots it again, at most twice, instead
    of waiting out the boot deadline. Made on purpose with `noapictimer`."""

    def retries(self, d):
        return [line for line in d.read_log().splitlines() if "event=sandbox.boot_retry" in line]

    def test_a_guest_without_a_timer_is_booted_again(self):
        tmp = tempfile.mkdtemp(prefix="emt.")
        wrapper, counter = no_timer_qemu(tmp, 1)
        d = harness.Daemon("--vmm", "firecracker", "--firecracker-bin", FAKE_FC,
                           "--no-snapshots", env={"FAKE_FC_QEMU": wrapper})
        try:
            status, body, _ = d.request("POST", "/sandboxes", {"language_pack": "shell"})
            self.assertEqual(status, 201, body)
            with open(counter) as f:
                self.assertEqual(f.read(), "0")  # the first boot was the one without a timer
            retries = self.retries(d)
            self.assertEqual(len(retries), 1, d.read_log()[-4000:])
            self.assertIn(NO_TIMER, retries[0])
            self.assertIn("(1 of 2)", retries[0])
            status, res, _ = d.exec(body["id"], "sleep 0.2; echo woke")
            self.assertEqual((status, res.get("stdout")), (200, "woke\n"), res)
            self.assertEqual(d.delete(body["id"]), 204)
        finally:
            d.stop()
            shutil.rmtree(tmp)

    def test_a_kernel_never_with_a_timer_fails_the_create_fast(self):
        """One vCPU (no tick device at all) and two (a LAPIC stand-in that never fires)."""
        d = harness.Daemon("--no-snapshots", "--kernel-args", "noapictimer")
        try:
            for n, vcpus in enumerate((1, 2), start=1):
                status, body, _ = d.request("POST", "/sandboxes",
                                            {"language_pack": "shell", "vcpus": vcpus})
                # The guest's own reason after three boots, not a 504 at the boot deadline.
                self.assertEqual(status, 502, body)
                self.assertEqual(body["error"]["code"], "guest_failed")
                self.assertIn(NO_TIMER + " in 3 boot(s) in a row", body["error"]["message"])
                self.assertEqual(len(self.retries(d)), 2 * n)
                self.assertEqual(d.runtime_entries(), [])
                self.assertEqual([p for p in d.vmm_pids() if harness.pid_alive(p)], [])
                _, _, metrics = d.request("GET", "/metrics")
                # Two retried boots and the failed create, per create.
                self.assertIn(f'emberd_guest_failures_total{{kind="boot_failed"}} {3 * n}\n'
                              .encode(), metrics)
        finally:
            d.stop()


class RestartTest(unittest.TestCase):
    def test_sigkilled_daemon_restarts_and_reattaches(self):
        d1 = harness.Daemon()
        try:
            live = d1.create(language_pack="shell")
            dead = d1.create(language_pack="shell")
            lost = d1.create(language_pack="shell")
            status, body, _ = d1.exec(live["id"], "echo kept > /tmp/marker")
            self.assertEqual(status, 200)
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()
        # While no daemon runs: one VM dies, and one VM loses its record (as if a daemon crashed
        # between starting it and writing the record): a stray VMM, jailed as one of the
        # daemon's uids. (A root process that merely names a sandbox directory is not a stray:
        # test_jail.)
        os.kill(dead["vmm_pid"], signal.SIGKILL)
        os.remove(os.path.join(d1.run_dir, lost["id"], "sandbox.json"))
        d2 = harness.Daemon(reuse=d1)
        try:
            status, body, _ = d2.request("GET", "/sandboxes")
            ids = {s["id"]: s for s in body["sandboxes"]}
            self.assertEqual(list(ids), [live["id"]])
            self.assertEqual(ids[live["id"]]["state"], "ready")
            self.assertEqual(ids[live["id"]]["vmm_pid"], live["vmm_pid"])
            status, body, _ = d2.exec(live["id"], "cat /tmp/marker")
            self.assertEqual((status, body["stdout"]), (200, "kept\n"))
            self.assertNotIn(dead["id"], d2.runtime_entries())
            self.assertNotIn(lost["id"], d2.runtime_entries())
            wait_for(lambda: not harness.pid_alive(lost["vmm_pid"]), 60, "the stray VMM gone")
            log = d2.read_log()
            # The stray, plus a template VM if one was being built when the daemon died.
            m = re.search(r"re-attached 1 sandboxes, cleaned 2, killed (\d+) stray", log)
            self.assertIsNotNone(m, log[-3000:])
            self.assertGreaterEqual(int(m.group(1)), 1)
        finally:
            d2.stop()  # destroys the re-attached VM and checks nothing leaked

    def test_pooled_sandbox_is_recorded_and_reattached(self):
        d1 = harness.Daemon("--pool-size", "1", "--prewarm")
        try:
            wait_for(lambda: d1.request("GET", "/healthz")[1]["pool"]["ready_by_pack"]
                     ["shell"] >= 1, 300, "a pooled shell sandbox")
            sb = d1.create(language_pack="shell")
            self.assertEqual(sb["boot_mode"], "pool")
            # the record is written off the request path, right after the handout
            record = os.path.join(d1.run_dir, sb["id"], "sandbox.json")
            wait_for(lambda: os.path.exists(record), 60, "the record")
        except Exception:
            d1.stop(check=False)
            raise
        d1.kill9()
        d2 = harness.Daemon(reuse=d1)
        try:
            status, body, _ = d2.exec(sb["id"], "echo still here")
            self.assertEqual((status, body["stdout"]), (200, "still here\n"))
        finally:
            d2.stop()

    def test_sigterm_with_keep_sandboxes_leaves_vms_for_the_next_daemon(self):
        d1 = harness.Daemon("--keep-sandboxes")
        try:
            sb = d1.create(language_pack="shell")
        except Exception:
            d1.stop(check=False)
            raise
        self.assertEqual(d1.sigterm(), 0)
        self.assertTrue(harness.pid_alive(sb["vmm_pid"]))
        self.assertIn(sb["id"], d1.runtime_entries())
        d2 = harness.Daemon(reuse=d1)
        try:
            status, body, _ = d2.exec(sb["id"], "echo back")
            self.assertEqual((status, body["stdout"]), (200, "back\n"))
        finally:
            d2.stop()
        self.assertFalse(harness.pid_alive(sb["vmm_pid"]))

    def test_sigterm_ends_inflight_requests_and_destroys_vms(self):
        d = harness.Daemon()
        sb = d.create(language_pack="shell")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fut = pool.submit(d.exec, sb["id"], "sleep 1000")
            try:
                d.wait_guest_process(sb["id"], "sleep")  # the request is in flight
            except Exception:
                d.stop(check=False)
                raise
            # Asserts exit 0 within its 60 s SIGTERM wait (so it did not wait for the 1000 s
            # exec), no VM, no files, no sanitizer report.
            d.stop()
            status, body, _ = fut.result(timeout=120)
        self.assertEqual(status, 409, body)
        self.assertFalse(harness.pid_alive(sb["vmm_pid"]))



class GuestConsoleFloodTest(unittest.TestCase):
    """A real guest that writes megabytes to its serial console (ttyS0): the kernel prints a
    register dump (~1.5 KiB) for every core-dumping signal (print-fatal-signals, shown at
    loglevel 7). The daemon keeps the newest bytes and nothing on disk grows."""

    def test_guest_writing_megabytes_to_ttys0_keeps_the_newest_bytes(self):
        d = harness.Daemon("--no-snapshots", "--kernel-args",
                           "loglevel=7 sysctl.kernel.print-fatal-signals=1")
        try:
            sb = d.create(language_pack="shell")
            run = os.path.join(d.run_dir, sb["id"])
            # Named copies of sh: the oldest dumps say `Comm: first-aa`, the newest
            # `Comm: last-zz`.
            script = ("cp /bin/sh /tmp/first-aa && cp /bin/sh /tmp/mid-mm && "
                      "cp /bin/sh /tmp/last-zz && /tmp/first-aa -c 'kill -QUIT $$'; "
                      "i=0; while [ $i -lt 500 ]; do /tmp/mid-mm -c 'kill -QUIT $$'; "
                      "i=$((i+1)); done; true")
            status, res, _ = d.exec(sb["id"], script, timeout_ms=600000)
            self.assertEqual((status, res.get("exit_code")), (200, 0), res)
            # Past the 1 MiB ring with room to spare: the oldest dumps must be gone from it.
            want = (1 << 20) + (256 << 10)
            total = 0
            for _ in range(30):
                if total > want:
                    break
                status, res, _ = d.exec(sb["id"], "i=0; while [ $i -lt 200 ]; do "
                                        "/tmp/mid-mm -c 'kill -QUIT $$'; i=$((i+1)); done; true",
                                        timeout_ms=600000)
                self.assertEqual(status, 200, res)
                status, body, _ = d.request("GET", f"/sandboxes/{sb['id']}/console")
                total = body["total_bytes"]
            self.assertGreater(total, want, "the guest did not write 1.25 MiB")
            status, res, _ = d.exec(sb["id"], "/tmp/last-zz -c 'kill -QUIT $$'; true")
            self.assertEqual(status, 200, res)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status, body, _ = d.request("GET", f"/sandboxes/{sb['id']}/console")
                if "Comm: last-zz" in body["console"]:
                    break
                time.sleep(0.5)
            console = body["console"]
            self.assertIn("potentially unexpected fatal signal 3", console)
            self.assertIn("Comm: last-zz", console)
            self.assertNotIn("Comm: first-aa", console)
            self.assertTrue(body["truncated"])
            self.assertLessEqual(len(console.encode()), 16 * 1024)
            # The console is in the daemon's memory, not in the run dir.
            used = sum(os.lstat(os.path.join(run, n)).st_blocks * 512 for n in os.listdir(run))
            self.assertLess(used, 1 << 20, os.listdir(run))
            self.assertEqual(d.delete(sb["id"]), 204)
            self.assertFalse(os.path.exists(run))
        finally:
            d.stop()

class ConsoleOnATerminalTest(unittest.TestCase):
    """Guest console bytes reach an operator's terminal through `emberctl inspect`: a process
    name is the guest user's to choose, and the kernel prints it raw in a fatal-signal dump, so
    a guest can put escape sequences on the console. inspect shows them escaped."""

    def test_inspect_escapes_what_a_guest_put_on_its_console(self):
        d = harness.Daemon("--no-snapshots", "--kernel-args",
                           "loglevel=7 sysctl.kernel.print-fatal-signals=1")
        try:
            sb = d.create(language_pack="shell")
            name = "x\x1b[2J\x1b]0;owned\x07y"
            status, res, _ = d.exec(sb["id"], f"cp /bin/sh \"/tmp/{name}\" && "
                                    f"\"/tmp/{name}\" -c 'kill -QUIT $$'; true",
                                    timeout_ms=120000)
            self.assertEqual(status, 200, res)
            wait_for(lambda: "\x1b[2J" in d.request(
                "GET", f"/sandboxes/{sb['id']}/console")[1]["console"], 60,
                "the dump with the process name on the console")
            out = subprocess.run([os.path.join(harness.ASAN_BIN, "emberctl"), "--addr", d.addr,
                                  "inspect", sb["id"]], capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertNotIn(b"\x1b", out.stdout)
            self.assertNotIn(b"\x07", out.stdout)
            # (the kernel keeps 15 bytes of a process name)
            self.assertIn(b"Comm: x\\x1b[2J\\x1b]0;owned\\x07 ", out.stdout)
            self.assertNotIn(b"\\x0d\n", out.stdout)  # console line ends read as line ends
            self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
