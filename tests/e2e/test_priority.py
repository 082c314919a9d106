"""The control plane never waits behind guests (issue 18 item 1, docs/operations.md "CPU
priority"): VMMs serving sandboxes run at nice 5 on every thread, pooled clones wait at
SCHED_IDLE until their handout raises them, the daemon keeps nice 0, and a burst of pooled
creates pauses refills (`pool.refill_paused`) until it is over.

Read from /proc/<pid>/task/*/stat: field 19 is the nice, field 41 the scheduling policy
(SCHED_OTHER 0, SCHED_IDLE 5). Behaviour only: nothing here measures speed."""
import concurrent.futures
import os
import shutil
import tempfile
import unittest

import harness

SCHED_OTHER = 0
SCHED_IDLE = 5
SERVING_NICE = 5
BURST = 3


def thread_priorities(pid):
    """{tid: (policy, nice)} for every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread exited meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # fields 3.. of proc(5)
        out[int(tid)] = (int(fields[41 - 3]), int(fields[19 - 3]))
    return out


def pools_full(health):
    return health["pool"]["ready"] >= 6  # 3 per pack, python and shell


def events(log, name):
    return [line for line in log.splitlines() if f" event={name} " in line]


class PriorityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Refills run at idle priority: on a busy host they get only spare CPU, hence the
        # generous wait.
        cls.d = harness.Daemon("--pool-size", "3", "--prewarm",
                               binary=os.environ.get("EMBER_PRIO_EMBERD"))
        cls.d.wait_health_or_stop(pools_full, 600, "full pools")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def assert_threads(self, pid, policy, nice, what):
        prios = thread_priorities(pid)
        self.assertGreater(len(prios), 1, f"{what}: a QEMU has several threads")
        wrong = {t: p for t, p in prios.items() if p != (policy, nice)}
        self.assertEqual(wrong, {}, f"{what} (pid {pid}): threads not at policy {policy} "
                         f"nice {nice}")

    def pooled_vmm_pids(self, exclude=()):
        return [p for p in self.d.vmm_pids() if harness.pid_alive(p) and p not in exclude]

    def test_the_daemon_keeps_nice_0_on_every_thread(self):
        prios = thread_priorities(self.d.proc.pid)
        self.assertEqual({p for p in prios.values()}, {(SCHED_OTHER, 0)})

    def test_pooled_clones_wait_idle_and_serve_once_handed_out(self):
        self.d.wait_health(pools_full, 600, "full pools")
        pooled = self.pooled_vmm_pids()
        self.assertGreaterEqual(len(pooled), 6)
        for pid in pooled:
            self.assert_threads(pid, SCHED_IDLE, SERVING_NICE, "a clone waiting in the pool")
        sb = self.d.create(language_pack="python")
        try:
            self.assertEqual(sb["boot_mode"], "pool")
            self.assertIn(sb["vmm_pid"], pooled)
            self.assert_threads(sb["vmm_pid"], SCHED_OTHER, SERVING_NICE,
                                "a handed-out clone")
            # QEMU may start threads on demand (I/O workers): they are at the serving
            # priority too.
            status, res, _ = self.d.exec(sb["id"], "print(sum(range(1000)))")
            self.assertEqual(status, 200, res)
            self.assertEqual(res["stdout"], "499500\n")
            self.assert_threads(sb["vmm_pid"], SCHED_OTHER, SERVING_NICE,
                                "a handed-out clone after an exec")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_a_sandbox_booted_for_a_create_serves_at_nice_5(self):
        # Not the pool's shape: booted by the create itself, on an API thread.
        sb = self.d.create(language_pack="shell", memory_mib=192)
        try:
            self.assertNotEqual(sb["boot_mode"], "pool")
            self.assert_threads(sb["vmm_pid"], SCHED_OTHER, SERVING_NICE,
                                "a sandbox a create booted")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)

    def test_cpu_weight_sets_the_nice_a_sandbox_serves_at(self):
        # Booted for the create (not the pool's shape) at weight 50: nice 8 (priority.c).
        sb = self.d.create(language_pack="shell", memory_mib=192, cpu_weight=50)
        try:
            self.assertEqual(sb["cpu_weight"], 50)
            self.assert_threads(sb["vmm_pid"], SCHED_OTHER, 8, "a sandbox of weight 50")
            self.assertEqual(self.d.request("GET", f"/sandboxes/{sb['id']}")[1]["cpu_weight"],
                             50)
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)
        # Handed out of the pool at weight 200: nice 2, also for threads an exec starts.
        self.d.wait_health(pools_full, 600, "full pools")
        sb = self.d.create(language_pack="python", cpu_weight=200)
        try:
            self.assertEqual(sb["boot_mode"], "pool")
            self.assert_threads(sb["vmm_pid"], SCHED_OTHER, 2, "a clone of weight 200")
            status, res, _ = self.d.exec(sb["id"], "print(6 * 7)")
            self.assertEqual((status, res["stdout"]), (200, "42\n"), res)
            self.assert_threads(sb["vmm_pid"], SCHED_OTHER, 2, "after an exec")
        finally:
            self.assertEqual(self.d.delete(sb["id"]), 204)
        # The default is 100, and the bounds are enforced.
        for bad in (0, 10001, "high"):
            status, body, _ = self.d.request("POST", "/sandboxes", {"cpu_weight": bad})
            self.assertEqual(status, 400, body)
            self.assertIn("cpu_weight", body["error"]["message"])

    def test_a_burst_of_pooled_creates_pauses_refills(self):
        self.d.wait_health(pools_full, 600, "full pools")
        before = len(self.d.read_log())
        deferred_before = self.d.request("GET", "/healthz")[1]["pool"]["refills_deferred_total"]
        with concurrent.futures.ThreadPoolExecutor(BURST) as ex:
            made = list(ex.map(lambda _: self.d.create(language_pack="python"),
                               range(BURST)))
        try:
            self.assertEqual([sb["boot_mode"] for sb in made], ["pool"] * BURST)
            # Refills resume after the burst and the pool fills up again.
            health = self.d.wait_health(pools_full, 600, "the pool to refill after the burst")
            self.assertEqual(health["pool"]["refills_deferred_total"], deferred_before + 1)
            log = self.d.read_log()[before:]
            paused = events(log, "pool.refill_paused")
            resumed = events(log, "pool.refill_resumed")
            self.assertEqual(len(paused), 1, "one pause for one burst:\n" + log[-4000:])
            self.assertEqual(len(resumed), 1, log[-4000:])
            self.assertLess(log.index(paused[0]), log.index(resumed[0]))
            # No clone was restored for the pool during the pause (the pool was full when the
            # burst began, so no fill was under way), and the refills came after it.
            pause_at, resume_at = log.index(paused[0]), log.index(resumed[0])
            self.assertEqual(events(log[pause_at:resume_at], "pool.filled"), [],
                             "refills ran during the pause")
            self.assertGreaterEqual(len(events(log[resume_at:], "pool.filled")), BURST)
        finally:
            for sb in made:
                self.assertEqual(self.d.delete(sb["id"]), 204)


class CgroupWeightTest(unittest.TestCase):
    """On a cgroup v2 host: the VMMs' parent cgroup weighs 50 against the daemon's 100, and a
    pooled clone's cgroup is cpu.idle until its handout. This CI host mounts cgroup v1, so this
    pins what the daemon writes against a stand-in tree (as test_hostile.HostCgroupTest)."""

    def test_vmm_parent_weight_and_pooled_clones_idle_until_handout(self):
        root = tempfile.mkdtemp(prefix="cgroot.")
        with open(os.path.join(root, "cgroup.controllers"), "w") as f:
            f.write("cpuset cpu io memory hugetlb pids rdma misc\n")
        open(os.path.join(root, "cgroup.subtree_control"), "w").close()
        os.makedirs(os.path.join(root, "emberd"))
        d = None
        try:
            d = harness.Daemon("--cgroup-root", root, "--pool-size", "1", "--prewarm",
                               binary=os.environ.get("EMBER_PRIO_EMBERD"))
            d.wait_health(lambda h: h["pool"]["ready"] >= 2, 600, "full pools")
            parent = os.path.join(root, "emberd")

            def read(*path):
                with open(os.path.join(parent, *path)) as f:
                    return f.read()

            self.assertEqual(read("cpu.weight"), "50")
            pooled = [e for e in os.listdir(parent) if e.startswith("sb_")]
            self.assertEqual(len(pooled), 2, os.listdir(parent))
            for sb_id in pooled:
                self.assertEqual(read(sb_id, "cpu.idle"), "1", sb_id)
            sb = d.create(language_pack="python")
            try:
                self.assertEqual(sb["boot_mode"], "pool")
                self.assertIn(sb["id"], pooled)
                self.assertEqual(read(sb["id"], "cpu.idle"), "0")
                for sb_id in pooled:
                    if sb_id != sb["id"]:
                        self.assertEqual(read(sb_id, "cpu.idle"), "1", sb_id)
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
            # A create's cpu_weight is its cgroup's cpu.weight.
            sb = d.create(language_pack="shell", memory_mib=192, cpu_weight=300)
            try:
                self.assertEqual(read(sb["id"], "cpu.weight"), "300")
            finally:
                self.assertEqual(d.delete(sb["id"]), 204)
        finally:
            if d is not None:
                d.stop()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
