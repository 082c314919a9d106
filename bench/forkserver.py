#!/usr/bin/env python3
"""Fork server benchmark (issue 12, item 2): a plain `print(1)` exec through the API in a warm
sandbox, forked from the guest's warm interpreter, against the same exec with a fresh python3,
and a pooled clone's first exec; each next to host baselines measured in the same run.

    bench/forkserver.py [--runs 30] [--images DIR] [--emberd PATH]

One daemon (bin/emberd, private port and --run-dir under /tmp, --pool-size 1 --prewarm), then:
  fork server   POST /exec `print(1)` in one python sandbox (warmed by 3 execs first), p50/p90
  fresh         the same with a fresh python3 (`"fresh_interpreter": true`, and an environment
                variable PYTHON_BENCH_FRESH=1 that makes the exec ineligible in the guest too)
  pooled first  the first exec of a clone handed out by the pool (--runs/10 clones)
  host          `bwrap --unshare-all --ro-bind / / PYTHON -c 'print(1)'` and PYTHON -c alone
Prints one Markdown table with ratios against the bwrap run. Exit status 0 when every
measurement was taken.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import REPO, BenchError, Daemon, percentile  # noqa: E402

PRINT = "print(1)\n"


class Bench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.tmp = tempfile.mkdtemp(prefix="emfs.", dir="/tmp")

    def exec_ms(self, d, sb, body):
        status, res, ms = d.client.call("POST", f"/sandboxes/{sb}/exec", body)
        if status != 200 or res.get("stdout") != "1\n":
            raise BenchError(f"exec: {status} {res}")
        return ms

    def create(self, d):
        status, res, _ = d.client.call("POST", "/sandboxes", {"language_pack": "python"})
        if status != 201:
            raise BenchError(f"create: {status} {res}")
        return res

    def delete(self, d, sb):
        d.client.call("DELETE", f"/sandboxes/{sb}")

    def wait_pool(self, d):
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status, health, _ = d.client.call("GET", "/healthz")
            if status == 200 and health["pool"]["ready_by_pack"].get("python", 0) >= 1:
                return
            time.sleep(0.2)
        raise BenchError("no pooled python sandbox after 900 s")

    def host_ms(self, argv):
        t0 = time.perf_counter_ns()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return (time.perf_counter_ns() - t0) / 1e6

    def run(self):
        runs = self.args.runs
        d = Daemon(self, "d", ["--pool-size", "1", "--prewarm"])
        self.wait_pool(d)
        pooled = []
        for _ in range(max(3, runs // 10)):
            sb = self.create(d)
            if sb["boot_mode"] != "pool":
                raise BenchError(f"not a pooled clone: {sb['boot_mode']}")
            pooled.append(self.exec_ms(d, sb["id"], {"code": PRINT}))
            self.delete(d, sb["id"])
            self.wait_pool(d)
        sb = self.create(d)["id"]
        for _ in range(3):
            self.exec_ms(d, sb, {"code": PRINT})
        warm, fresh = [], []
        fresh_body = {"code": PRINT, "fresh_interpreter": True,
                      "env": {"PYTHON_BENCH_FRESH": "1"}}
        for _ in range(runs):  # interleaved: both see the same machine load
            warm.append(self.exec_ms(d, sb, {"code": PRINT}))
            fresh.append(self.exec_ms(d, sb, fresh_body))
        self.delete(d, sb)
        py = self.args.python
        bwrap = [self.host_ms(["bwrap", "--unshare-all", "--ro-bind", "/", "/", py, "-c",
                               "print(1)"]) for _ in range(runs)]
        host = [self.host_ms([py, "-c", "print(1)"]) for _ in range(runs)]
        base = percentile(bwrap, 0.5)
        rows = [("plain exec, fork server (warm sandbox)", warm),
                ("plain exec, fresh python3 (same sandbox)", fresh),
                ("pooled clone's first exec (fork server)", pooled),
                ("host: bwrap --unshare-all python3 -c", bwrap),
                ("host: python3 -c", host)]
        print(f"fork server bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{runs} runs (pooled: {len(pooled)})\n")
        print("| measurement | n | p50 ms | p90 ms | p50 / bwrap |")
        print("|---|---|---|---|---|")
        for name, samples in rows:
            p50 = percentile(samples, 0.5)
            print(f"| {name} | {len(samples)} | {p50:.1f} | {percentile(samples, 0.9):.1f} | "
                  f"{p50 / base:.1f}x |")
        print(f"\nfresh / fork server p50: {percentile(fresh, 0.5) / percentile(warm, 0.5):.2f}x")
        return 0

    def close(self):
        for d in self.daemons:
            if d.proc.poll() is None:
                d.proc.terminate()
                try:
                    d.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait()
            d.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--python", default="/usr/bin/python3")
    args = ap.parse_args()
    if not os.access(args.emberd, os.X_OK):
        sys.exit(f"forkserver: {args.emberd} is missing: run `make`")
    if shutil.which("bwrap") is None:
        sys.exit("forkserver: bwrap is missing (apt-get install bubblewrap)")
    bench = Bench(args)
    try:
        return bench.run()
    except BenchError as e:
        print(f"forkserver: {e}", file=sys.stderr)
        return 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
