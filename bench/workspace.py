#!/usr/bin/env python3
"""Workspace benchmark (issue #11): file upload and download throughput, streamed-exec first-byte
latency and background-process start latency, each next to a baseline measured in the same run
against the same sandbox, so the figures are ratios on a shared, noisy machine.

    bench/workspace.py [--mib 100] [--runs 20] [--images DIR] [--no-save]

One daemon (release bin/emberd, private port and --run-dir under /tmp, --pool-size 0, cold boots
so no template build is needed; --max-output-bytes 64 MiB for the download baseline), one
`python` sandbox (1 GiB RAM, 512 MiB overlay: the file and its baseline copy), then:
  upload      PUT /files of --mib MiB of random bytes in one request, against today's way: execs
              whose stdin carries 768 KiB of base64 each, appended with base64.b64decode (stdin is
              text, at most 1 MiB per exec). Both results are checked by sha256 in the guest.
  download    GET /files of the same file, against execs that write 32 MiB slices of it to
              stdout (buffered answers, base64 in the JSON). Both checked by sha256 on the host.
  first byte  a streamed exec (Accept: application/x-ndjson) of
              `print(1, flush=True); time.sleep(0.3)`: request sent to first stdout event,
              against the whole round trip of a buffered `print(1)`.
  background  POST /processes of a sleeping program (request to 201), against the same buffered
              `print(1)` round trip; each process is SIGKILLed after.
Prints one Markdown table (and saves it as bench/results/<date>-workspace.md unless --no-save).
Exit status 0 when every measurement was taken, 1 on any error or leak.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, Daemon, expect, log,  # noqa: E402
                        percentile, run_and_report)

PACK = "python"
UPLOAD_SLICE = 768 * 1024       # bytes of one baseline exec's stdin (base64: exactly 1 MiB)
DOWNLOAD_SLICE = 32 * 1024 * 1024
GUEST_PATH = "/home/sandbox/bench.bin"
BASE_PATH = "/home/sandbox/bench-baseline.bin"


class Workspace:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.rows = []
        self.tmp = None

    # ---- plumbing ----
    def raw(self, method, path, body=None, headers=None):
        """One request on a new connection: (status, headers, body bytes, seconds)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=600)
        try:
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp, data, time.perf_counter() - t0
        finally:
            conn.close()

    def exec(self, code, stdin=None, extra=None):
        body = {"code": code, "timeout_ms": 600000}
        if stdin is not None:
            body["stdin"] = stdin
        body.update(extra or {})
        status, res, ms = self.client.call("POST", f"/sandboxes/{self.sid}/exec", body)
        expect(status == 200 and res["exit_code"] == 0, f"exec {code[:60]!r}: {status} {res}")
        return res, ms

    def guest_sha256(self, path):
        res, _ = self.exec("import hashlib, sys\n"
                           f"print(hashlib.sha256(open({path!r}, 'rb').read()).hexdigest())")
        return res["stdout"].strip()

    def add(self, what, value, unit, base_what, base, ratio_note):
        self.rows.append((what, value, unit, base_what, base, ratio_note))

    # ---- phases ----
    def upload(self, blob, digest):
        mib = len(blob) / 2**20
        status, resp, data, s = self.raw(
            "PUT", f"/sandboxes/{self.sid}/files?path={GUEST_PATH}", blob,
            {"Content-Type": "application/octet-stream"})
        expect(status == 201, f"PUT /files: {status} {data[:300]!r}")
        got = json.loads(data)
        expect(got["sha256"] == digest and got["size"] == len(blob), f"PUT answered {got}")
        put_rate = mib / s
        self.exec(f"open({BASE_PATH!r}, 'wb').close()")
        t0 = time.perf_counter()
        for off in range(0, len(blob), UPLOAD_SLICE):
            text = base64.b64encode(blob[off:off + UPLOAD_SLICE]).decode()
            self.exec("import base64, sys\n"
                      f"open({BASE_PATH!r}, 'ab').write(base64.b64decode(sys.stdin.read()))",
                      stdin=text)
        base_rate = mib / (time.perf_counter() - t0)
        expect(self.guest_sha256(BASE_PATH) == digest, "baseline upload: sha256 differs")
        expect(self.guest_sha256(GUEST_PATH) == digest, "PUT /files: sha256 in the guest differs")
        self.add(f"upload {mib:.0f} MiB (PUT /files)", put_rate, "MiB/s",
                 "execs with base64 stdin", base_rate, put_rate / base_rate)

    def download(self, size, digest):
        mib = size / 2**20
        status, resp, data, s = self.raw("GET", f"/sandboxes/{self.sid}/files?path={GUEST_PATH}")
        expect(status == 200 and hashlib.sha256(data).hexdigest() == digest,
               f"GET /files: {status}, {len(data)} bytes")
        get_rate = mib / s
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for off in range(0, size, DOWNLOAD_SLICE):
            res, _ = self.exec("import sys\n"
                               f"f = open({GUEST_PATH!r}, 'rb'); f.seek({off})\n"
                               f"sys.stdout.buffer.write(f.read({DOWNLOAD_SLICE}))",
                               extra={"max_output_bytes": DOWNLOAD_SLICE})
            out = res["stdout"]
            h.update(base64.b64decode(out) if res["stdout_encoding"] == "base64"
                     else out.encode())
        base_rate = mib / (time.perf_counter() - t0)
        expect(h.hexdigest() == digest, "baseline download: sha256 differs")
        self.add(f"download {mib:.0f} MiB (GET /files)", get_rate, "MiB/s",
                 "execs writing 32 MiB slices", base_rate, get_rate / base_rate)

    def buffered_round_trips(self):
        return [self.exec("print(1)")[1] for _ in range(self.args.runs)]

    def first_byte(self):
        ms = []
        body = json.dumps({"code": "import time\nprint(1, flush=True)\ntime.sleep(0.3)"})
        for _ in range(self.args.runs):
            conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=120)
            conn.connect()
            t0 = time.perf_counter()
            conn.request("POST", f"/sandboxes/{self.sid}/exec", body=body,
                         headers={"Content-Type": "application/json",
                                  "Accept": "application/x-ndjson"})
            resp = conn.getresponse()
            expect(resp.status == 200, f"streamed exec: {resp.status}")
            first = None
            while True:
                line = resp.readline()
                expect(line, "streamed exec ended without an exit event")
                ev = json.loads(line)
                if ev["type"] == "stdout" and first is None:
                    first = (time.perf_counter() - t0) * 1000
                if ev["type"] in ("exit", "error"):
                    expect(ev["type"] == "exit", f"streamed exec: {ev}")
                    break
            conn.close()
            expect(first is not None, "streamed exec: no stdout event")
            ms.append(first)
        base = self.buffered_round_trips()
        p50, b50 = percentile(ms, 0.5), percentile(base, 0.5)
        self.add("streamed exec, first stdout event (p50 ms)", p50, "ms",
                 "buffered `print(1)` round trip", b50, p50 / b50)

    def background(self):
        ms = []
        for _ in range(self.args.runs):
            status, res, t = self.client.call("POST", f"/sandboxes/{self.sid}/processes",
                                              {"code": "import time\ntime.sleep(600)"})
            expect(status == 201, f"POST /processes: {status} {res}")
            ms.append(t)
            status, res, _ = self.client.call(
                "POST", f"/sandboxes/{self.sid}/processes/{res['pid']}/signal",
                {"signal": "KILL"})
            expect(status in (200, 202, 204), f"signal: {status} {res}")
        base = self.buffered_round_trips()
        p50, b50 = percentile(ms, 0.5), percentile(base, 0.5)
        self.add("background process start (p50 ms)", p50, "ms",
                 "buffered `print(1)` round trip", b50, p50 / b50)

    # ---- run ----
    def report(self, started):
        out = [f"# Workspace benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs, load at end {os.getloadavg()[0]:.2f}, "
               f"{self.args.runs} runs per latency row, one `{PACK}` sandbox (cold boot).", "",
               "| what | value | baseline (same run, same sandbox) | baseline | ratio |",
               "|---|---:|---|---:|---:|"]
        for what, value, unit, base_what, base, ratio in self.rows:
            out.append(f"| {what} | {value:.1f} {unit} | {base_what} | {base:.1f} {unit} | "
                       f"{ratio:.2f}x |")
        out += ["", "Throughput ratios above 1 and latency ratios below 1 favour the new way."]
        return "\n".join(out) + "\n"

    def measure(self):
        a = self.args
        self.d = Daemon(self, "workspace", ["--no-snapshots", "--pool-size", "0",
                                            "--max-output-bytes", str(64 * 2**20)])
        self.client = self.d.client
        status, sb, _ = self.client.call("POST", "/sandboxes",
                                         {"language_pack": PACK, "memory_mib": 1024,
                                          "overlay_mib": 512})
        expect(status == 201, f"create: {status} {sb}")
        self.sid = sb["id"]
        blob = os.urandom(a.mib * 2**20)
        digest = hashlib.sha256(blob).hexdigest()
        log("upload")
        self.upload(blob, digest)
        log("download")
        self.download(len(blob), digest)
        del blob
        log("streamed first byte")
        self.first_byte()
        log("background start")
        self.background()
        self.client.call("DELETE", f"/sandboxes/{self.sid}")

    def run(self):
        return run_and_report(self, "workspace", "ebw.", self.measure, "-workspace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=100, help="size of the transferred file")
    ap.add_argument("--runs", type=int, default=20, help="samples per latency row")
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if not os.access(args.emberd, os.X_OK):
        sys.exit(f"workspace: {args.emberd} is missing: run `make`")
    if not os.path.exists(os.path.join(args.images, "packs.json")):
        sys.exit(f"workspace: no packs.json in {args.images}: run `make images`")
    try:
        return Workspace(args).run()
    except KeyboardInterrupt:
        print("workspace: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
