#!/usr/bin/env python3
"""Per-pack benchmark (issue 14): image size, and cold, clone and pooled create and the first
exec of the pack's smoke test, for every pack of the catalog, against the release daemon. The
baseline, measured in the same run by the same daemons, is the `shell` pack (the smallest image
and interpreter): every row shows its ratio to shell's.

    bench/packs.py [--runs 5] [--packs a,b] [--images DIR] [--no-save]

Phases, each with its own daemon (release bin/emberd, private port, private --run-dir under /tmp;
a VMM left behind fails the run; bench/fastcreate.py's frame):
  cold    emberd --no-snapshots --pool-size 0: per pack, --runs creates (boot_mode "cold") and
          deletes.
  clone   emberd --pool-size 0 --prewarm, once every template is ready: per pack, --runs
          creates (boot_mode "clone"), the smoke test's code as the first exec (stdout must be
          the spec's), delete.
  pool    emberd --pool-size 1 --prewarm: per pack, --runs creates (boot_mode "pool"), each
          once /healthz says the pack's pool is full again; delete.
Sizes: the squashfs on disk and the sum of its files' sizes (unsquashfs -lln). Smoke tests come
from rootfs/packs/<name>/pack.json; an imported pack (no spec) runs nothing in its first exec row.
Latencies are client-side over persistent connections. Exit status 0 when every measurement was
taken, 1 on any error or leak.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, BenchError, Daemon, expect, log,  # noqa: E402
                        percentile, run_and_report)

BASELINE = "shell"
TEMPLATE_WAIT_S = 1800  # every pack's template, cold, under TCG on a loaded 2-core machine


def smoke_of(name):
    path = os.path.join(REPO, "rootfs", "packs", name, "pack.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)["smoke"]
    except (OSError, KeyError, ValueError):
        return None


def unpacked_bytes(image):
    out = subprocess.run(["unsquashfs", "-lln", image], capture_output=True, text=True,
                         check=True).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0][:1] == "-" and parts[2].isdigit():
            total += int(parts[2])
    return total


class PacksBench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.tmp = None
        with open(os.path.join(args.images, "packs.json"), encoding="utf-8") as f:
            catalog = json.load(f)
        self.packs = {p["name"]: p for p in catalog["packs"]}
        if args.packs:
            wanted = args.packs.split(",")
            unknown = [n for n in wanted if n not in self.packs]
            expect(not unknown, f"not in the catalog: {unknown}")
            self.packs = {n: self.packs[n] for n in wanted}
        self.rows = {}   # (pack, what) -> [ms]
        self.sizes = {}  # pack -> (bytes on disk, bytes unpacked)

    def create(self, d, name, mode):
        status, sb, ms = d.client.call("POST", "/sandboxes", {"language_pack": name})
        expect(status == 201, f"create {name}: {status} {sb}")
        expect(sb["boot_mode"] == mode, f"create {name}: boot_mode {sb['boot_mode']}, not {mode}")
        return sb, ms

    def delete(self, d, sid):
        status, res, _ = d.client.call("DELETE", f"/sandboxes/{sid}")
        expect(status == 204, f"delete {sid}: {status} {res}")

    def add(self, name, what, ms):
        self.rows.setdefault((name, what), []).append(ms)

    def stop(self, d):
        d.client.close()
        problems = d.stop()
        self.daemons.remove(d)
        expect(not problems, "; ".join(problems))

    def cold_phase(self):
        d = Daemon(self, "cold", ["--no-snapshots", "--pool-size", "0"])
        for name in self.packs:
            log(f"cold: {name}")
            for _ in range(self.args.runs):
                sb, ms = self.create(d, name, "cold")
                self.add(name, "cold", ms)
                self.delete(d, sb["id"])
        self.stop(d)

    def clone_phase(self):
        d = Daemon(self, "clone", ["--pool-size", "0", "--prewarm"])
        n = len(self.packs)
        d.wait_health(lambda h: h["templates"]["ready"] >= n and h["templates"]["building"] == 0,
                      "every pack's template", TEMPLATE_WAIT_S)
        for name in self.packs:
            log(f"clone: {name}")
            smoke = smoke_of(name)
            for _ in range(self.args.runs):
                sb, ms = self.create(d, name, "clone")
                self.add(name, "clone", ms)
                if smoke is not None:
                    status, res, ms = d.client.call("POST", f"/sandboxes/{sb['id']}/exec",
                                                    {"code": smoke["code"]})
                    expect(status == 200 and res["stdout"] == smoke["stdout"],
                           f"{name} smoke exec: {status} {json.dumps(res)[:1000]}")
                    self.add(name, "first exec", ms)
                self.delete(d, sb["id"])
        self.stop(d)

    def pool_phase(self):
        d = Daemon(self, "pool", ["--pool-size", "1", "--prewarm"])
        for name in self.packs:
            log(f"pool: {name}")
            for _ in range(self.args.runs):
                d.wait_health(lambda h, name=name: h["pool"]["ready_by_pack"].get(name, 0) >= 1,
                              f"{name}'s pool", TEMPLATE_WAIT_S)
                sb, ms = self.create(d, name, "pool")
                self.add(name, "pooled", ms)
                self.delete(d, sb["id"])
        self.stop(d)

    def measure(self):
        for name, pack in self.packs.items():
            image = os.path.join(self.args.images, pack["image"])
            self.sizes[name] = (os.path.getsize(image), unpacked_bytes(image))
        self.cold_phase()
        self.clone_phase()
        self.pool_phase()

    def report(self, started):
        out = [f"# Language packs benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs, load at end {os.getloadavg()[0]:.2f}, {self.args.runs} "
               f"runs per cell; p50 ms (ratio to the `{BASELINE}` pack in the same phase). "
               "Client-side create latency; first exec = the pack's smoke test in a fresh clone.",
               "", "| pack | image MB | unpacked MB | cold create | clone create | first exec "
               "| pooled create |", "|---|---:|---:|---:|---:|---:|---:|"]

        def cell(name, what):
            ms = self.rows.get((name, what))
            if not ms:
                return "–"
            p50 = percentile(ms, 0.5)
            base = self.rows.get((BASELINE, what))
            if not base or name == BASELINE:
                return f"{p50:.1f}"
            return f"{p50:.1f} ({p50 / percentile(base, 0.5):.2f}x)"
        for name in self.packs:
            disk, unpacked = self.sizes[name]
            out.append(f"| {name} | {disk / 1e6:.1f} | {unpacked / 1e6:.1f} | "
                       + " | ".join(cell(name, w) for w in ("cold", "clone", "first exec",
                                                            "pooled")) + " |")
        out += ["", "p99 (ms): " + "; ".join(
            f"{name} " + ", ".join(f"{w} {percentile(self.rows[(name, w)], 0.99):.1f}"
                                   for w in ("cold", "clone", "first exec", "pooled")
                                   if (name, w) in self.rows)
            for name in self.packs)]
        return "\n".join(out) + "\n"

    def run(self):
        return run_and_report(self, "packs bench", "pkb.", self.measure, "-packs")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="samples per cell (default 5)")
    p.add_argument("--packs", default="", help="comma-separated packs (default: the catalog's)")
    p.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    p.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    p.add_argument("--no-save", action="store_true", help="print only")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")
    sys.exit(PacksBench(args).run())


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"packs bench: {e}", file=sys.stderr)
        sys.exit(1)
