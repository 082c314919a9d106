#!/usr/bin/env python3
"""Pause/resume, fork and snapshot benchmark: what each of them costs against the creates they
stand in for, measured in the same run by the same release daemon build, so the figures are
ratios on a shared, noisy machine.

    bench/pause.py [--rounds 5] [--images DIR] [--no-save]

Phases, each with its own daemon (release bin/emberd, private port, private --run-dir and
--state-dir under /tmp; a VMM left behind fails the run; bench/fastcreate.py's frame):
  cold    emberd --no-snapshots --pool-size 0: one warm-up, then --rounds creates of the
          `python` pack (boot_mode "cold") and deletes: the cold create baseline.
  pause   emberd --pool-size 1 --pool-packs python --prewarm --max-sandboxes 32: per round,
          once /healthz says the pool is full, a pooled create (boot_mode "pool": the pooled
          create baseline), a warm-up `print(1)`, the VMM's RSS, then
            pause       POST /sandboxes/{id}/pause (state "paused"); the .vmstate file's size
                        (apparent and allocated) under --state-dir; no process may mention the
                        sandbox's id any more (no VMM: its host memory is 0)
            resume      POST /sandboxes/{id}/resume (state "ready"), then the first exec after
                        it (`print(1)`, checked)
            snapshot    POST /sandboxes/{id}/snapshots (its size_bytes)
            from snap   POST /sandboxes {"from_snapshot": id}, its first exec; deleted, and
                        DELETE /snapshots/{id}
            fork(1)     POST /sandboxes/{id}/fork {"count": 1}: 201 with 1 ready sandbox
            fork(8)     the same with count 8; every child's first exec, the 8 VMMs' PSS in
                        all and Private each (copy-on-write clones of one fork base), then every child
                        deleted
          and the sandbox deleted. Then MemAvailable (/proc/meminfo) across pausing 4 pooled
          sandboxes at once (each warmed with an exec, 3 s settle before each reading): noisy on
          a shared machine, reported as such; the 4 are resumed, checked and deleted.
Latencies are client-side over persistent connections; p50/p99 interpolate linearly between
order statistics (with 5 rounds p99 is close to the maximum). Prints one Markdown report (and
saves it as bench/results/<date>-pause.md unless --no-save). Exit status 0 when every
measurement was taken, 1 on any error or leak.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, Bench, Daemon, expect, log, percentile,  # noqa: E402
                        processes_mentioning, pss_breakdown_kib, pss_kib,
                        run_and_report)

PACK = "python"
CODE = "print(1)"
POOL_WAIT_S = 900       # the python template and a clone, cold, under TCG on 2 loaded cores
MEM_SANDBOXES = 4       # paused at once for the MemAvailable reading
SETTLE_S = 3            # before each MemAvailable reading
FORK_BIG = 8


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise ValueError("no MemAvailable in /proc/meminfo")


class PauseBench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.samples = {}       # row key -> list of ms (or bytes)
        self.server = {}        # request kind -> the daemon's duration_ms of each
        self.tmp = None

    def add(self, key, value):
        self.samples.setdefault(key, []).append(value)

    # ---- plumbing ----
    def create(self, d, body, want_mode=None):
        status, sb, ms = d.client.call("POST", "/sandboxes", body)
        expect(status == 201, f"create ({d.name}) {body}: {status} {sb}")
        expect(sb.get("state") == "ready", f"create ({d.name}) not ready: {sb}")
        expect(want_mode is None or sb.get("boot_mode") == want_mode,
               f"create ({d.name}): boot_mode {sb.get('boot_mode')!r}, expected "
               f"{want_mode!r}: {sb}")
        return sb, ms

    def exec(self, d, sid):
        status, res, ms = d.client.call("POST", f"/sandboxes/{sid}/exec", {"code": CODE})
        expect(status == 200 and res.get("stdout") == "1\n" and res.get("exit_code") == 0,
               f"exec ({d.name}) {sid}: {status} {res}")
        return ms

    def delete(self, d, sid):
        status, body, _ = d.client.call("DELETE", f"/sandboxes/{sid}")
        expect(status == 204, f"delete ({d.name}) {sid}: {status} {body}")

    def call(self, d, method, path, want, body=None):
        status, res, ms = d.client.call(method, path, body)
        expect(status == want, f"{method} {path} ({d.name}): {status} {res}")
        return res, ms

    def pooled(self, d):
        d.wait_health(lambda h: h["pool"]["ready_by_pack"].get(PACK, 0) >= 1,
                      f"{PACK}'s pool", POOL_WAIT_S)
        return self.create(d, {"language_pack": PACK}, "pool")

    def vmstate(self, sid):
        paths = glob.glob(os.path.join(self.state_dir, "paused-*", f"{sid}.vmstate"))
        expect(len(paths) == 1, f"paused {sid}: .vmstate files {paths} under {self.state_dir}")
        st = os.stat(paths[0])
        return st.st_size, st.st_blocks * 512

    def pause(self, d, sid):
        res, ms = self.call(d, "POST", f"/sandboxes/{sid}/pause", 200)
        expect(res.get("state") == "paused" and res.get("vmm_pid") is None,
               f"pause {sid}: {res}")
        left = processes_mentioning(sid, exclude=(os.getpid(),))
        expect(not left, f"paused {sid}: processes still mention it: {left}")
        return ms

    def resume(self, d, sid):
        res, ms = self.call(d, "POST", f"/sandboxes/{sid}/resume", 200)
        expect(res.get("state") == "ready" and res.get("vmm_pid"), f"resume {sid}: {res}")
        return res, ms

    # ---- phases ----
    def phase_cold(self):
        state = os.path.join(self.tmp, "state-cold")
        os.mkdir(state, 0o700)
        d = Daemon(self, "cold", ["--no-snapshots", "--pool-size", "0", "--max-sandboxes", "8",
                                  "--state-dir", state])
        self.health = d.healthz()
        log(f"[cold] daemon up on port {d.port}, accel {self.health['vmm']['accel']}; warm-up")
        sb, _ = self.create(d, {"language_pack": PACK}, "cold")
        self.delete(d, sb["id"])
        for r in range(self.args.rounds):
            sb, ms = self.create(d, {"language_pack": PACK}, "cold")
            self.add("cold", ms)
            self.delete(d, sb["id"])
            log(f"[cold] {r + 1}/{self.args.rounds}: {ms:.0f} ms")
        self.stop(d)

    def one_round(self, d, r):
        sb, ms = self.pooled(d)
        self.add("pooled", ms)
        sid = sb["id"]
        self.memory_mib = sb["memory_mib"]
        self.exec(d, sid)
        self.add("exec_warm", self.exec(d, sid))
        self.memory("before", sb["vmm_pid"])
        ms = self.pause(d, sid)
        self.add("pause", ms)
        size, alloc = self.vmstate(sid)
        self.add("vmstate_size", size)
        self.add("vmstate_alloc", alloc)
        res, ms = self.resume(d, sid)
        self.add("resume", ms)
        self.memory("resumed", res["vmm_pid"])
        self.add("exec_after_resume", self.exec(d, sid))
        self.memory("after_resume", res["vmm_pid"])

        snap, ms = self.call(d, "POST", f"/sandboxes/{sid}/snapshots", 201, {})
        self.add("snapshot", ms)
        self.add("snapshot_size", snap["size_bytes"])
        child, ms = self.create(d, {"from_snapshot": snap["id"]})
        self.add("from_snapshot", ms)
        self.add("boot_from_snapshot", child["boot_ms"])
        self.add("exec_from_snapshot", self.exec(d, child["id"]))
        self.memory("from_snapshot", child["vmm_pid"])
        self.delete(d, child["id"])
        self.call(d, "DELETE", f"/snapshots/{snap['id']}", 204)

        for n in (1, FORK_BIG):
            res, ms = self.call(d, "POST", f"/sandboxes/{sid}/fork", 201, {"count": n})
            kids = res.get("sandboxes") or []
            expect(len(kids) == n and all(k.get("state") == "ready" for k in kids),
                   f"fork({n}) of {sid}: {res}")
            self.add(f"fork{n}", ms)
            for k in kids:
                self.add(f"boot_fork{n}", k["boot_ms"])
            self.add(f"boot_fork{n}_first", kids[0]["boot_ms"])
            self.add(f"boot_fork{n}_last", kids[-1]["boot_ms"])
            for k in kids:
                self.add("exec_forked", self.exec(d, k["id"]))
            if n == 1:
                self.memory("forked", kids[0]["vmm_pid"])
            else:
                mems = [pss_kib(k["vmm_pid"]) for k in kids]
                self.add("fork_big_pss_sum", sum(m["Pss"] for m in mems) / 1024)
                self.add("fork_big_private_mean", sum(
                    m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) for m in mems)
                    / 1024 / n)
            for k in kids:
                self.delete(d, k["id"])
        self.exec(d, sid)   # the source runs on after its forks and snapshot
        self.delete(d, sid)
        s = self.samples
        log(f"[pause] {r + 1}/{self.args.rounds}: pooled {s['pooled'][-1]:.0f}, pause "
            f"{s['pause'][-1]:.0f}, resume {s['resume'][-1]:.0f}, snapshot "
            f"{s['snapshot'][-1]:.0f}, from snapshot {s['from_snapshot'][-1]:.0f}, fork(1) "
            f"{s['fork1'][-1]:.0f}, fork({FORK_BIG}) {s[f'fork{FORK_BIG}'][-1]:.0f} ms; "
            f".vmstate {size / 2**20:.1f} MiB")

    def memory(self, when, pid):
        m = pss_kib(pid)
        self.add(f"rss_{when}", m["Rss"] / 1024)
        self.add(f"pss_{when}", m["Pss"] / 1024)
        self.add(f"thp_{when}", m.get("AnonHugePages", 0) / 1024)
        self.add(f"private_{when}", (m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)) / 1024)
        for part, kib in pss_breakdown_kib(pid, self.memory_mib).items():
            self.add(f"pss_{part}_{when}", kib / 1024)

    def daemon_ms(self, d, offset):
        """The daemon's own duration_ms of each timed request kind, from its log after offset
        (the warm-up's requests come before it)."""
        with open(d.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        kinds = {"pause": r"POST path=/sandboxes/[^/ ]+/pause status=200",
                 "resume": r"POST path=/sandboxes/[^/ ]+/resume status=200",
                 "fork": r"POST path=/sandboxes/[^/ ]+/fork status=201",
                 "snapshot": r"POST path=/sandboxes/[^/ ]+/snapshots status=201"}
        for kind, pat in kinds.items():
            self.server[kind] = [int(m.group(1)) for m in re.finditer(
                r"event=http\.request duration_ms=(\d+) msg=\"method=" + pat, text)]

    def mem_phase(self, d):
        boxes = []
        for _ in range(MEM_SANDBOXES):
            sb, _ = self.pooled(d)
            boxes.append(sb)
            self.exec(d, sb["id"])
        time.sleep(SETTLE_S)
        before = mem_available_kib()
        self.mem_rss = sum(pss_kib(b["vmm_pid"])["Rss"] for b in boxes) / 1024
        for b in boxes:
            self.pause(d, b["id"])
        time.sleep(SETTLE_S)
        after = mem_available_kib()
        self.mem_delta_mib = (after - before) / 1024
        self.mem_files = sum(self.vmstate(b["id"])[1] for b in boxes) / 2**20
        log(f"[pause] MemAvailable {before // 1024} -> {after // 1024} MiB pausing "
            f"{MEM_SANDBOXES} (their VMMs' RSS {self.mem_rss:.0f} MiB)")
        for b in boxes:
            self.resume(d, b["id"])
            self.exec(d, b["id"])
        time.sleep(SETTLE_S)
        self.mem_resumed_mib = (mem_available_kib() - after) / 1024
        log(f"[pause] MemAvailable {self.mem_resumed_mib:+.0f} MiB resuming them")
        for b in boxes:
            self.delete(d, b["id"])

    def phase_pause(self):
        self.state_dir = os.path.join(self.tmp, "state")
        os.mkdir(self.state_dir, 0o700)
        t0 = time.monotonic()
        d = Daemon(self, "pause", ["--pool-size", "1", "--pool-packs", PACK, "--prewarm",
                                   "--max-sandboxes", "32", "--state-dir", self.state_dir])
        log(f"[pause] daemon up on port {d.port}; waiting for the {PACK} pool")
        sb, _ = self.pooled(d)      # warm-up: pause, resume, a fork, a snapshot, untimed
        log(f"[pause] pool ready after {time.monotonic() - t0:.0f} s; warm-up")
        self.exec(d, sb["id"])
        self.pause(d, sb["id"])
        self.resume(d, sb["id"])
        self.exec(d, sb["id"])
        res, _ = self.call(d, "POST", f"/sandboxes/{sb['id']}/fork", 201, {"count": 1})
        self.delete(d, res["sandboxes"][0]["id"])
        self.delete(d, sb["id"])
        offset = d.log_size()
        for r in range(self.args.rounds):
            self.one_round(d, r)
        self.daemon_ms(d, offset)
        self.mem_phase(d)
        self.stop(d)

    def stop(self, d):
        d.client.close()
        problems = d.stop()
        self.daemons.remove(d)
        expect(not problems, "; ".join(problems))

    def measure(self):
        self.load0 = os.getloadavg()[0]
        self.foreign0 = Bench.foreign_vmms([self.tmp])
        with open("/proc/cpuinfo") as f:
            self.cpu = next((line.split(":", 1)[1].strip() for line in f
                             if line.startswith("model name")), "?")
        self.state_fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.tmp],
                                       capture_output=True, text=True).stdout.strip() or "?"
        self.phase_cold()
        self.phase_pause()

    # ---- report ----
    def report(self, started):
        a = self.args
        s = self.samples
        h = self.health
        cold, pooled = percentile(s["cold"], 0.5), percentile(s["pooled"], 0.5)

        def p(k, q):
            return percentile(s[k], q)

        out = [f"# Pause, fork and snapshot benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs ({self.cpu}), accelerator `{h['vmm']['accel']}`, "
               f"driver `{h['vmm']['driver']}` ({h['vmm']['description']}); load "
               f"{self.load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; VMs not this run's: "
               f"{self.foreign0} at start, {Bench.foreign_vmms([self.tmp])} at end. `{PACK}` "
               f"pack, {self.memory_mib} MiB sandboxes (its default shape), a fresh pooled "
               f"sandbox per round after one `print(1)`; {a.rounds} rounds; client-side ms.",
               "",
               "| operation | p50 ms | p99 ms | daemon p50 ms | / cold create p50 | "
               "/ pooled create p50 |",
               "|---|---:|---:|---:|---:|---:|"]
        forks = self.server.get("fork", [])
        expect(len(forks) == 2 * a.rounds, f"the daemon logged {len(forks)} forks")
        server = dict(self.server, fork1=forks[0::2], **{f"fork{FORK_BIG}": forks[1::2]})

        def row(what, k, sk=None, boot=None):
            if sk in server:
                side = f"{percentile(server[sk], 0.5):.0f}"
            elif boot:
                side = f"{p(boot, 0.5):.0f} (`boot_ms`)"
            else:
                side = ""
            out.append(f"| {what} | {p(k, 0.5):.0f} | {p(k, 0.99):.0f} | {side} | "
                       f"{p(k, 0.5) / cold:.2f}x | {p(k, 0.5) / pooled:.0f}x |")
        row("cold create (baseline; `--no-snapshots`)", "cold")
        row("pooled create (baseline)", "pooled")
        row("pause", "pause", "pause")
        row("resume", "resume", "resume")
        row("fork(1)", "fork1", "fork1")
        row(f"fork({FORK_BIG})", f"fork{FORK_BIG}", f"fork{FORK_BIG}")
        row("snapshot create", "snapshot", "snapshot")
        row("create from snapshot", "from_snapshot", boot="boot_from_snapshot")
        row("(baseline) warm exec `print(1)` on a pooled sandbox", "exec_warm")
        out += ["", "First exec (`print(1)`), p50 ms: after a resume "
                f"{p('exec_after_resume', 0.5):.0f}, in a fork's child "
                f"{p('exec_forked', 0.5):.0f}, in a sandbox created from a snapshot "
                f"{p('exec_from_snapshot', 0.5):.0f}. Per sandbox of a fork({FORK_BIG}): "
                f"{p(f'fork{FORK_BIG}', 0.5) / FORK_BIG:.0f} ms, against fork(1) "
                f"{p('fork1', 0.5):.0f} ms. A new sandbox's `boot_ms` (the daemon's create "
                f"time), p50: fork(1)'s child {p('boot_fork1', 0.5):.0f}, fork({FORK_BIG})'s "
                f"children {p(f'boot_fork{FORK_BIG}', 0.5):.0f} (first "
                f"{p(f'boot_fork{FORK_BIG}_first', 0.5):.0f}, last "
                f"{p(f'boot_fork{FORK_BIG}_last', 0.5):.0f}), from a snapshot "
                f"{p('boot_from_snapshot', 0.5):.0f}."]
        size, alloc = p("vmstate_size", 0.5), p("vmstate_alloc", 0.5)
        mib = self.memory_mib
        out += ["", "Host resources of a paused sandbox, and of the VMMs that start from a "
                "saved VM (medians over the rounds):", "",
                "| | MiB | / memory_mib |", "|---|---:|---:|",
                f"| memory_mib (the guest's RAM) | {mib} | 1.00 |",
                f"| .vmstate file, apparent size | {size / 2**20:.1f} | {size / 2**20 / mib:.2f} |",
                f"| .vmstate file, allocated on disk | {alloc / 2**20:.1f} | "
                f"{alloc / 2**20 / mib:.2f} |",
                f"| snapshot, `size_bytes` | {p('snapshot_size', 0.5) / 2**20:.1f} | "
                f"{p('snapshot_size', 0.5) / 2**20 / mib:.2f} |",
]
        for when, what in (("before", "before pause (a pooled clone, after two execs)"),
                           ("resumed", "right after resume, before any exec"),
                           ("after_resume", "after resume + one exec"),
                           ("forked", "of fork(1)'s child after one exec"),
                           ("from_snapshot", "of a sandbox from a snapshot after one exec")):
            for kind in ("rss", "pss", "private"):
                v = p(f"{kind}_{when}", 0.5)
                out.append(f"| VMM {kind.upper() if kind != 'private' else 'Private'} "
                           f"{what} | {v:.0f} | {v / mib:.2f} |")
            g, t, o = (p(f"pss_{part}_{when}", 0.5) for part in ("guest", "tcg", "other"))
            out.append(f"| … its PSS as guest RAM / TCG buffer / rest of QEMU | {g:.0f} / "
                       f"{t:.0f} / {o:.0f} | {g / mib:.2f} (guest RAM) |")
            v = p(f"thp_{when}", 0.5)
            out.append(f"| … of which in transparent huge pages (`AnonHugePages`) | {v:.0f} | "
                       f"{v / mib:.2f} |")
        big_sum, big_priv = p("fork_big_pss_sum", 0.5), p("fork_big_private_mean", 0.5)
        out += [f"| fork({FORK_BIG}): its {FORK_BIG} VMMs' PSS in all, after one exec each | "
                f"{big_sum:.0f} | {big_sum / mib:.2f} |",
                f"| fork({FORK_BIG}): Private per child VMM (mean; its own pages, the rest is "
                f"the fork base's shared RAM) | {big_priv:.0f} | {big_priv / mib:.2f} |",
                f"| fork({FORK_BIG}) if each child loaded the state whole ({FORK_BIG} x the PSS "
                f"of a sandbox from a snapshot) | {FORK_BIG * p('pss_from_snapshot', 0.5):.0f} | "
                f"{FORK_BIG * p('pss_from_snapshot', 0.5) / mib:.2f} |",
                "| VMM memory while paused (no VMM: no process mentions the sandbox's id) | 0 "
                "| 0 |",
                "",
                f"MemAvailable across pausing {MEM_SANDBOXES} sandboxes at once (noisy: the "
                "machine is shared and the page cache moves; the .vmstate files themselves sit "
                f"in the page cache of {self.state_fs}): {self.mem_delta_mib:+.0f} MiB, "
                f"{self.mem_delta_mib / MEM_SANDBOXES:+.0f} MiB per sandbox; their VMMs' RSS "
                f"before was {self.mem_rss:.0f} MiB in all, their .vmstate files "
                f"{self.mem_files:.0f} MiB allocated. Resuming the 4 (and one exec each) then "
                f"moved MemAvailable by {self.mem_resumed_mib:+.0f} MiB "
                f"({self.mem_resumed_mib / MEM_SANDBOXES:+.0f} MiB per sandbox).",
                "",
                f"A VMM started from a saved VM (resume, snapshot) holds about what its guest "
                f"had touched (its RAM a memfd of its own, zero pages freed before it runs): "
                f"RSS {p('rss_resumed', 0.5):.0f} MiB right after a resume, against "
                f"{p('rss_before', 0.5):.0f} MiB for the pooled clone it was (whose untouched "
                f"RAM is the template's shared memory) and a {size / 2**20:.0f} MiB saved "
                f"state; a fork's child maps its fork base's RAM copy-on-write.",
                "",
                "Each operation's ratio is its p50 over the baseline's p50 of the same run. "
                "Pause and resume include saving or loading the whole VM (QEMU migration to a "
                "file, RAM included) and the channel's SUSPEND/RESUME; a snapshot saves the "
                "running VM the same way, and a sandbox from it loads that file whole. A fork "
                "saves the running VM the same way, loads it once into a stopped VM whose RAM "
                "is a memfd (the fork base), and starts its children as copy-on-write clones "
                "of that base (docs/snapshots.md)."]
        return "\n".join(out) + "\n"

    def run(self):
        return run_and_report(self, "pause", "ebm.", self.measure, "-pause")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds per row")
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if not os.access(args.emberd, os.X_OK):
        sys.exit(f"pause: {args.emberd} is missing: run `make`")
    if not os.path.exists(os.path.join(args.images, "packs.json")):
        sys.exit(f"pause: no packs.json in {args.images}: run `make images`")
    if args.rounds < 1:
        sys.exit("pause: --rounds must be at least 1")
    try:
        return PauseBench(args).run()
    except KeyboardInterrupt:
        print("pause: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
