#!/usr/bin/env python3
"""E2B round-trip benchmark (issue 17): the unmodified E2B SDK's `Sandbox.create()` +
`commands.run('echo hi')` + `kill()`, next to the native create + exec + delete of the same
pack measured in the same run against the same daemon, so the figures compare on a shared,
noisy machine.

    bench/e2b.py [--runs 20] [--images DIR] [--no-save]

One daemon (release bin/emberd, private port and --run-dir under /tmp, --e2b-addr on a port of
its own, --pool-size 0: every create is a clone of the python template, made by one untimed
create first, so both ways pay the same create). Rows, each --runs samples, median and p90 in ms:
  native create + exec + delete   POST /sandboxes {python}, POST exec `print('hi')`, DELETE
  E2B SDK create + run + kill     tools/e2b/bench-roundtrip.mjs (node, the pinned SDK): the
                                  default template (base = python), commands.run('echo hi'),
                                  kill(), timed whole in the node process
  native create + delete          the same without the exec
  E2B SDK create + kill           the same without the command
The SDK rows include what the SDK itself costs (its HTTP client and, per run, one connection);
the native rows reuse one kept-alive connection. Prints one Markdown table (and saves it as
bench/results/<date>-e2b.md unless --no-save). Exit status 0 when every measurement was taken, 1
on any error or leak (tools/e2b must be installed: scripts/install-deps.sh).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, BenchError, Daemon, expect, log,  # noqa: E402
                        percentile, run_and_report)

PACK = "python"
E2B_DIR = os.path.join(REPO, "tools", "e2b")


class E2bBench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.rows = []
        self.tmp = None

    def native(self, with_exec):
        ms = []
        for _ in range(self.args.runs):
            t0 = time.perf_counter()
            status, sb, _ = self.client.call("POST", "/sandboxes", {"language_pack": PACK})
            expect(status == 201, f"create: {status} {sb}")
            if with_exec:
                status, res, _ = self.client.call("POST", f"/sandboxes/{sb['id']}/exec",
                                                  {"code": "print('hi')"})
                expect(status == 200 and res["stdout"] == "hi\n", f"exec: {status} {res}")
            status, body, _ = self.client.call("DELETE", f"/sandboxes/{sb['id']}")
            expect(status == 204, f"delete: {status} {body}")
            ms.append((time.perf_counter() - t0) * 1000)
        return ms

    def sdk(self):
        url = f"http://127.0.0.1:{self.e2b_port}"
        env = dict(os.environ, E2B_API_URL=url, E2B_SANDBOX_URL=url, E2B_API_KEY="e2b_bench")
        proc = subprocess.run(["node", "bench-roundtrip.mjs", str(self.args.runs)], cwd=E2B_DIR,
                              env=env, capture_output=True, text=True, timeout=3600)
        expect(proc.returncode == 0, f"the SDK round trips failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def add(self, what, ms):
        self.rows.append((what, percentile(ms, 0.5), percentile(ms, 0.9)))

    def report(self, started):
        out = [f"# E2B SDK round trip, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs, load at end {os.getloadavg()[0]:.2f}, "
               f"{self.args.runs} runs per row, pack `{PACK}`, one daemon (--pool-size 0: "
               "creates are template clones), SDK `e2b` from tools/e2b.", "",
               "| round trip | p50 ms | p90 ms |", "|---|---:|---:|"]
        for what, p50, p90 in self.rows:
            out.append(f"| {what} | {p50:.1f} | {p90:.1f} |")
        native, sdk = self.rows[0][1], self.rows[1][1]
        out += ["", f"The SDK's create + run + kill takes {sdk / native:.2f}x the native create + "
                "exec + delete (p50)."]
        return "\n".join(out) + "\n"

    def measure(self):
        self.d = Daemon(self, "e2b", ["--e2b-addr", "127.0.0.1:0", "--pool-size", "0"])
        m = None
        deadline = time.monotonic() + 60
        while m is None and time.monotonic() < deadline:
            m = re.search(r"E2B-compatible API on \S+ \(port (\d+)\)", self.d.read_log())
            time.sleep(0.05)
        expect(m is not None, "the daemon did not log its E2B listener")
        self.e2b_port = int(m.group(1))
        self.client = self.d.client
        log("building the template (one untimed create)")
        status, sb, _ = self.client.call("POST", "/sandboxes", {"language_pack": PACK})
        expect(status == 201, f"create: {status} {sb}")
        self.client.call("DELETE", f"/sandboxes/{sb['id']}")
        self.d.wait_health(lambda h: h["templates"]["ready"] >= 1, "the template", 900)
        log("native create + exec + delete")
        self.add("native create + exec `print('hi')` + delete", self.native(True))
        log("E2B SDK round trips")
        sdk = self.sdk()
        self.add("E2B SDK `Sandbox.create()` + `commands.run('echo hi')` + `kill()`", sdk["run"])
        self.add("native create + delete", self.native(False))
        self.add("E2B SDK `Sandbox.create()` + `kill()`", sdk["bare"])

    def run(self):
        return run_and_report(self, "e2b bench", "ebe.", self.measure, "-e2b")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="samples per row (default 20)")
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if not os.access(args.emberd, os.X_OK):
        sys.exit(f"e2b: {args.emberd} is missing: run `make`")
    if not os.path.isdir(os.path.join(E2B_DIR, "node_modules", "e2b")):
        sys.exit("e2b: tools/e2b is not installed: run scripts/install-deps.sh")
    try:
        return E2bBench(args).run()
    except KeyboardInterrupt:
        print("e2b: interrupted", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"e2b: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
