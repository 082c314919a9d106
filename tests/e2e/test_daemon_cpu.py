"""The daemon does not burn CPU while it waits: a guard against wait loops that spin.

A condition variable initialised on the realtime clock but waited on with monotonic deadlines
returns at once, so every wait for an exec's result spun a CPU core (measured: 10.35 s of daemon
CPU during one 10 s `sleep` exec). On a 2-core TCG host that core is taken from the guests.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of every thread of pid, from /proc/<pid>/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class DaemonCpuTest(unittest.TestCase):
    SLEEP_S = 10

    @classmethod
    def setUpClass(cls):
        # No templates or pool: nothing else runs in the daemon while the exec waits.
        cls.d = harness.Daemon("--no-snapshots")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_waiting_for_a_sleeping_exec_costs_the_daemon_almost_no_cpu(self):
        sb = self.d.create(language_pack="shell")
        try:
            before = cpu_seconds(self.d.proc.pid)
            status, res, _ = self.d.exec(sb["id"], f"sleep {self.SLEEP_S}; echo done",
                                         timeout_ms=(self.SLEEP_S + 60) * 1000)
            used = cpu_seconds(self.d.proc.pid) - before
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)
        self.assertEqual(status, 200, res)
        self.assertEqual(res["stdout"], "done\n")
        # The exec really waited (the guest's own measure), so the window was long enough for a
        # spinning wait to show: 10 s of spinning would be ~10 s of CPU.
        self.assertGreaterEqual(res["duration_ms"], self.SLEEP_S * 1000 - 100)
        self.assertLess(used, 0.5, f"the daemon used {used:.2f} s of CPU during a "
                        f"{self.SLEEP_S} s exec that only waited")


if __name__ == "__main__":
    unittest.main()
