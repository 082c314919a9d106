#!/usr/bin/env python3
"""Exec-path benchmark (issue #12): how a sandbox's exec compares with a container starting the
same interpreter, each row a ratio to a baseline measured in the same run on the same machine.

    bench/exec.py [--runs 30] [--packs python,shell] [--images DIR] [--no-save]

Baselines (host): `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc` running
/usr/bin/python3 -c 'print(1)' (python) or /bin/sh -c 'echo 1' (shell), one fresh process each.
One daemon (release bin/emberd, private port and --run-dir under /tmp, --pool-size 1 so the warm
pool serves the pooled rows), then per pack, each row p50 and p99 over --runs:
  context exec     POST /exec with context_id in a warm context: `print(1)` / `echo 1`
  warm exec        POST /exec `print(1)` in a sandbox that already ran one (no context)
  pooled first     the first exec in a sandbox just taken from the pool (the create is not
                   timed; the pool is refilled, untimed, before each)
  pooled cycle     POST /sandboxes (from the pool) + first exec + DELETE
The guest's own timing of each exec (queued, spawn, run: the exec result's `timing`) is reported
next to the round trip, so what the host and the channel add is visible. Goals (issue #12, TCG): context
<= 0.25x, warm <= 1.5x, pooled first <= 3x, pooled cycle <= 4x.
Prints one Markdown table (saved as bench/results/<date>-exec.md unless --no-save). Exit status
0 when every measurement was taken, 1 on any error or leak.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, BenchError, Daemon, expect, log,  # noqa: E402
                        percentile, run_and_report)

BWRAP = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
WORK = {
    "python": {"code": "print(1)", "host": ["/usr/bin/python3", "-c", "print(1)"],
               "language": "python"},
    "shell": {"code": "echo 1", "host": ["/bin/sh", "-c", "echo 1"], "language": "shell"},
}
GOALS = {"context exec": 0.25, "warm exec": 1.5, "pooled first exec": 3.0,
         "pooled create + first exec + delete": 4.0}


class ExecBench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.rows = []
        self.tmp = None

    def host_baseline(self, cmd):
        ms = []
        subprocess.run(BWRAP + cmd, check=True, capture_output=True)  # warm-up
        for _ in range(self.args.runs):
            t0 = time.perf_counter()
            out = subprocess.run(BWRAP + cmd, check=True, capture_output=True)
            ms.append((time.perf_counter() - t0) * 1000)
            expect(out.stdout == b"1\n", f"baseline {cmd}: {out.stdout!r}")
        return ms

    def exec(self, sid, code, **extra):
        body = {"code": code, **extra}
        status, res, ms = self.client.call("POST", f"/sandboxes/{sid}/exec", body)
        expect(status == 200 and res["exit_code"] == 0 and res["stdout"] == "1\n",
               f"exec {code!r} {extra}: {status} {res}")
        t = res.get("timing", {})
        return ms, (t.get("queued_us", 0) / 1000, t.get("spawn_us", 0) / 1000,
                    t.get("run_us", 0) / 1000)

    def create(self, pack):
        status, sb, ms = self.client.call("POST", "/sandboxes", {"language_pack": pack})
        expect(status == 201, f"create {pack}: {status} {sb}")
        return sb, ms

    def delete(self, sid):
        status, res, ms = self.client.call("DELETE", f"/sandboxes/{sid}")
        expect(status == 204, f"delete: {status} {res}")
        return ms

    def wait_pool(self, pack):
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status, h, _ = self.client.call("GET", "/healthz")
            if status == 200 and h["pool"]["ready_by_pack"].get(pack, 0) >= 1:
                return
            time.sleep(0.05)
        raise BenchError(f"the {pack} pool did not refill within 900 s")

    def add(self, pack, what, ms, guest, base):
        """guest: (queued, spawn, run) ms of each exec as the guest timed them, or None."""
        b50 = percentile(base, 0.5)
        p50 = percentile(ms, 0.5)
        split = None
        if guest:
            split = tuple(percentile([g[i] for g in guest], 0.5) for i in range(3))
        self.rows.append((pack, what, p50, percentile(ms, 0.99), split, b50, p50 / b50,
                          GOALS.get(what)))

    def run_pack(self, pack):
        w = WORK[pack]
        log(f"{pack}: host baseline")
        base = self.host_baseline(w["host"])
        self.wait_pool(pack)
        sb, _ = self.create(pack)
        sid = sb["id"]
        log(f"{pack}: warm execs")
        self.exec(sid, w["code"])
        runs = [self.exec(sid, w["code"]) for _ in range(self.args.runs)]
        warm = ([r[0] for r in runs], [r[1] for r in runs])
        log(f"{pack}: context execs")
        status, ctx, _ = self.client.call("POST", f"/sandboxes/{sid}/contexts",
                                          {"language": w["language"]})
        expect(status == 201, f"context: {status} {ctx}")
        self.exec(sid, w["code"], context_id=ctx["id"])
        runs = [self.exec(sid, w["code"], context_id=ctx["id"]) for _ in range(self.args.runs)]
        self.add(pack, "context exec", [r[0] for r in runs], [r[1] for r in runs], base)
        self.add(pack, "warm exec", *warm, base)
        self.delete(sid)
        log(f"{pack}: pooled first execs and cycles")
        first, first_guest, cycle = [], [], []
        for _ in range(self.args.runs):
            self.wait_pool(pack)
            sb, create_ms = self.create(pack)
            expect(sb["boot_mode"] == "pool", f"not from the pool: {sb['boot_mode']}")
            ms, guest = self.exec(sb["id"], w["code"])
            cycle.append(create_ms + ms + self.delete(sb["id"]))
            first.append(ms)
            first_guest.append(guest)
        self.add(pack, "pooled first exec", first, first_guest, base)
        self.add(pack, "pooled create + first exec + delete", cycle, None, base)

    def report(self, started):
        out = [f"# Exec benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs, load at end {os.getloadavg()[0]:.2f}, {self.args.runs} "
               "runs per row; baseline: bwrap --unshare-all running the same interpreter on the "
               "host, measured in the same run.", "",
               "| pack | what | p50 ms | p99 ms | guest queued / spawn / run p50 ms | "
               "bwrap p50 ms | ratio | goal |",
               "|---|---|---:|---:|---:|---:|---:|---|"]
        for pack, what, p50, p99, guest, b50, ratio, goal in self.rows:
            verdict = "" if goal is None else (f"<= {goal}x " +
                                               ("met" if ratio <= goal else "MISSED"))
            g = " / ".join(f"{x:.1f}" for x in guest) if guest is not None else "-"
            out.append(f"| {pack} | {what} | {p50:.1f} | {p99:.1f} | {g} | {b50:.1f} | "
                       f"{ratio:.2f}x | {verdict} |")
        out += ["", "guest queued / spawn / run: the exec's timing as the guest measured it (EXEC "
                "arrival to spawn, fork to execve or the hand-over to a context, then to the "
                "exit); the rest of the round trip is HTTP, the daemon and the guest channel."]
        return "\n".join(out) + "\n"

    def measure(self):
        self.d = Daemon(self, "exec", ["--pool-size", "1", "--prewarm"])
        self.client = self.d.client
        for pack in self.args.packs.split(","):
            self.run_pack(pack)

    def run(self):
        return run_and_report(self, "exec bench", "ebx.", self.measure, "-exec")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30, help="samples per row (default 30)")
    p.add_argument("--packs", default="python,shell", help="packs to measure")
    p.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    p.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args()
    for pack in args.packs.split(","):
        if pack not in WORK:
            p.error(f"unknown pack {pack!r} (python, shell)")
    sys.exit(ExecBench(args).run())


if __name__ == "__main__":
    main()
