#!/usr/bin/env python3
"""Fast-create benchmark (issue #6): cold, clone and pooled create, exec round trip, delete and host
PSS per idle sandbox, against the release daemon, with two same-run baselines: a plain QEMU boot of
the same kernel+initramfs to the agent's hello (bin/ember-vm, empty script) and bwrap running the
same python3 code. Prints one Markdown report (machine facts, one table, notes) and saves it as
bench/results/<YYYY-MM-DD>.md.

    bench/fastcreate.py [--runs 30] [--pooled-runs 50] [--pool-size 10] [--concurrency 10]
                        [--pss-vms 3] [--images DIR] [--no-save]

Phases, each with its own daemon (private port, private --run-dir under /tmp, cleaned up on every
path; a VMM left behind fails the run):
  cold    emberd --no-snapshots --pool-size 0: sequential creates (boot_mode must be "cold"),
          interleaved with bin/ember-vm boots; then --pss-vms sandboxes: warm-up exec, timed
          execs, PSS; deletes.
  clone   emberd --pool-size 0 --prewarm, once every pack's template is ready: sequential creates
          (boot_mode must be "clone"), first exec, delete; then the same exec/PSS/delete as cold.
  pool    emberd --pool-size P --prewarm --max-sandboxes 32: bwrap/python3 baselines while the
          pool is full and idle; then batches of P sequential creates and of C concurrent creates
          (boot_mode must be "pool"), each batch started only when /healthz pool.ready says every
          pack's pool is full; deletes.
Latencies are client-side, over persistent HTTP/1.1 connections (one per concurrent client,
connected and used once before the timed request). p50/p99 interpolate linearly between order
statistics (with 20 samples p99 is close to the maximum). Exit status: 0 when every measurement
was taken (whether or not the bars pass), 1 on any error or leak.
"""

import argparse
import datetime
import http.client
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK = "python"
CODE = "print(1)"
# A connection idle longer than this is reopened (untimed) before a timed request: the daemon
# closes idle clients after --connection-timeout-s (30 s by default).
IDLE_REOPEN_S = 10

BARS = {
    "clone_speedup": 20.0,      # cold p50 / clone p50 at least this
    "pool_p50_ms": 2.0,         # 10 concurrent pooled creates
    "pool_p99_ms": 10.0,
    "pss_ratio": 0.5,           # clone PSS / cold PSS at most this
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(samples, q):
    s = sorted(samples)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class BenchError(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise BenchError(what)


class Client:
    """One persistent HTTP/1.1 connection; call() times request + response client-side."""

    def __init__(self, port, timeout=300):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.connect()
        self.last_used = time.monotonic()
        self.reopened = 0
        self.last_start_ns = 0  # time.monotonic_ns() when the latest call began sending

    def fresh(self):
        """Make sure the next request goes out on an open connection (reopening is untimed)."""
        if self.conn.sock is None or time.monotonic() - self.last_used > IDLE_REOPEN_S:
            self.conn.close()
            self.conn.connect()
            self.reopened += 1

    def call(self, method, path, body=None):
        self.fresh()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        t0 = time.perf_counter_ns()
        self.last_start_ns = time.monotonic_ns()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            payload = resp.read()
        except BaseException:
            self.conn.close()  # half a request on it: the next call starts a new one
            raise
        ms = (time.perf_counter_ns() - t0) / 1e6
        self.last_used = time.monotonic()
        if resp.will_close:
            self.conn.close()
        return resp.status, (json.loads(payload) if payload else None), ms

    def close(self):
        self.conn.close()


def sigkill(pids):
    """SIGKILL each of pids that still exists."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def processes_mentioning(text, exclude=()):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in exclude:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1][0] == "Z":
                    continue
        except (OSError, IndexError):
            continue
        if text in cmdline:
            found.append(int(pid))
    return found


def concurrent_client(port, pipe, barrier):
    """A client process for the concurrent batches: on "create" (or "healthz"), warms its
    connection (untimed), waits for the others, then times one create (or GET /healthz); sends
    (status, body, ms) back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = Client(port)
    while True:
        cmd = pipe.recv()
        if cmd is None:
            break
        try:
            status, _, _ = client.call("GET", "/healthz")
            barrier.wait(timeout=60)
            if cmd == "healthz":
                pipe.send(client.call("GET", "/healthz"))
            else:
                pipe.send(client.call("POST", "/sandboxes", {"language_pack": PACK}))
        except Exception as e:  # reported by the parent
            pipe.send((0, repr(e), 0.0))
    client.close()


def run_and_report(bench, name, prefix, body, suffix):
    """The frame of a benchmark of this directory: bench.tmp made, body() run, then whatever
    happened every daemon in bench.daemons stopped, no process left under bench.tmp (a VMM left
    behind fails the run), the daemons' logs shown on failure and bench.tmp removed; on success
    bench.report(started) printed and, unless --no-save, saved as
    <results-dir>/<YYYY-MM-DD><suffix>.md. Returns the exit status (0, or 1 on any error)."""
    a = bench.args
    bench.tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    started = datetime.datetime.now()
    errors = []
    try:
        body()
    except (BenchError, OSError, http.client.HTTPException, KeyError, ValueError,
            subprocess.CalledProcessError) as e:
        errors.append(f"{type(e).__name__}: {e}")
    finally:
        for d in list(bench.daemons):
            if hasattr(d, "client"):  # none when the daemon did not start
                d.client.close()
            errors += d.stop()
        left = processes_mentioning(bench.tmp + "/", exclude=(os.getpid(),))
        if left:
            errors.append(f"processes left behind: {left}")
            sigkill(left)
        if errors:
            for d in bench.daemons:
                log(f"[{d.name}] log tail:\n{d.read_log()[-4000:]}")
        shutil.rmtree(bench.tmp, ignore_errors=True)
    if errors:
        for e in errors:
            print(f"{name}: {e}", file=sys.stderr)
        return 1
    text = bench.report(started)
    print(text, end="")
    if not a.no_save:
        os.makedirs(a.results_dir, exist_ok=True)
        path = os.path.join(a.results_dir, f"{started:%Y-%m-%d}{suffix}.md")
        with open(path, "w") as fh:
            fh.write(text)
        log(f"saved {os.path.relpath(path, REPO)}")
    return 0


class Daemon:
    """bin/emberd on 127.0.0.1:<ephemeral port> with a run directory of its own."""

    def __init__(self, bench, name, extra, base=None):
        self.name = name
        self.run_dir = os.path.join(base or bench.tmp, name)
        self.log_path = os.path.join(bench.tmp, name + ".log")
        self.log = open(self.log_path, "wb")
        self.args = [bench.args.emberd, "--addr", "127.0.0.1:0", "--images", bench.args.images,
                     "--run-dir", self.run_dir, *extra]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        bench.daemons.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(r"\(port (\d+)\)", self.read_log())
            if m:
                self.port = int(m.group(1))
                self.client = Client(self.port)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise BenchError(f"emberd ({name}) did not start:\n{self.read_log()[-3000:]}")

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_size(self):
        return os.path.getsize(self.log_path)

    def create_ms_since(self, offset):
        """The daemon's own duration_ms (whole milliseconds) of each successful POST /sandboxes
        logged after offset."""
        time.sleep(0.05)
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return [int(m.group(1)) for m in re.finditer(
            r"event=http\.request duration_ms=(\d+) msg=\"method=POST path=/sandboxes "
            r"status=201\"", text)]

    def healthz(self):
        status, body, _ = self.client.call("GET", "/healthz")
        expect(status == 200, f"healthz {status} {body}")
        return body

    def wait_health(self, pred, what, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            h = self.healthz()
            if pred(h):
                return h
            if self.proc.poll() is not None:
                raise BenchError(f"emberd ({self.name}) exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout_s} s waiting for {what}: "
                                 f"{json.dumps(h)}")
            time.sleep(0.1)

    def stop(self):
        """SIGTERM; returns a list of problems (exit code, VMMs left)."""
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = "timeout (killed)"
            if code != 0:
                problems.append(f"emberd ({self.name}) exited with {code} on SIGTERM")
        self.log.close()
        left = processes_mentioning(self.run_dir + "/")
        if left:
            problems.append(f"VMM processes left by emberd ({self.name}): {left}")
            sigkill(left)
        return problems


def pss_kib(pid):
    """Pss, Rss, Private_* (KiB) from /proc/<pid>/smaps_rollup."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def pss_breakdown_kib(pid, guest_mib):
    """Pss (KiB) of /proc/<pid>/smaps split three ways: guest RAM (the template's memory file, or
    a clone's sealed memfd, a big anonymous mapping: any mapping of at least half the guest's
    size), the TCG translation buffer (anonymous and executable: there is no such thing under
    KVM) and everything else QEMU has (heap, libraries, device state)."""
    parts = {"guest": 0, "tcg": 0, "other": 0}
    kind = "other"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                path = head[5] if len(head) > 5 else ""
                size_mib = (hi - lo) / 2**20
                if path == "" and "x" in head[1]:
                    kind = "tcg"
                elif path.endswith("/memory") or size_mib >= guest_mib / 2:
                    kind = "guest"
                else:
                    kind = "other"
            elif head[0] == "Pss:":
                parts[kind] += int(head[1])
    return parts


class Bench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.samples = {}      # name -> list of floats
        self.info = {}
        self.tmp = None

    def add(self, name, value):
        self.samples.setdefault(name, []).append(value)

    # ---- helpers on a daemon ----
    def create(self, d, want_mode, client=None):
        status, body, ms = (client or d.client).call("POST", "/sandboxes",
                                                     {"language_pack": PACK})
        expect(status == 201, f"create ({d.name}): {status} {body}")
        expect(body.get("state") == "ready", f"create ({d.name}) not ready: {body}")
        expect(body.get("boot_mode") == want_mode,
               f"create ({d.name}): boot_mode {body.get('boot_mode')!r}, expected "
               f"{want_mode!r}: {body}")
        return body, ms

    def exec(self, d, sid):
        status, body, ms = d.client.call("POST", f"/sandboxes/{sid}/exec", {"code": CODE})
        expect(status == 200 and body.get("stdout") == "1\n" and body.get("exit_code") == 0,
               f"exec ({d.name}): {status} {body}")
        return body, ms

    def delete(self, d, sid, client=None):
        status, body, ms = (client or d.client).call("DELETE", f"/sandboxes/{sid}")
        expect(status == 204, f"delete ({d.name}) {sid}: {status} {body}")
        return ms

    def ember_vm_boot(self, template=None):
        """bin/ember-vm with an empty script: QEMU start to the agent's hello, no daemon. With
        template: a clone restored from the template in that directory (made on first use)."""
        extra = ["--template", template] if template else []
        proc = subprocess.run([self.args.ember_vm, "--images", self.args.images, "--pack", PACK,
                               "--run-base", self.vm_base, *extra], input='{"steps":[]}',
                              capture_output=True, text=True, timeout=300)
        expect(proc.returncode == 0, f"ember-vm failed:\n{proc.stderr[-3000:]}")
        out = json.loads(proc.stdout)
        want = "clone" if template else "cold"
        expect(out.get("mode") == want, f"ember-vm: mode {out.get('mode')}, expected {want}")
        return out["boot_ms"]

    def idle_sandbox_phase(self, d, mode, tag):
        """--pss-vms sandboxes of one boot mode: the same warm-up exec, timed execs round-robin,
        then PSS of each VMM while idle; deleted (timed) at the end."""
        boxes = []
        for _ in range(self.args.pss_vms):
            body, _ = self.create(d, mode)
            boxes.append(body)
        for b in boxes:
            self.exec(d, b["id"])  # warm-up
        for _ in range(self.args.execs_per_vm):
            for b in boxes:
                body, ms = self.exec(d, b["id"])
                self.add(f"exec_{tag}", ms)
                self.add(f"exec_{tag}_guest", body.get("duration_ms", 0))
        time.sleep(self.args.settle_s)
        for b in boxes:
            pid = b["vmm_pid"]
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            m = pss_kib(pid)
            self.add(f"pss_{tag}", m["Pss"] / 1024)
            self.add(f"rss_{tag}", m["Rss"] / 1024)
            self.add(f"private_{tag}",
                     (m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)) / 1024)
            for part, kib in pss_breakdown_kib(pid, b["memory_mib"]).items():
                self.add(f"pss_{tag}_{part}", kib / 1024)
            self.info["vmm_comm"] = comm
        log(f"[{d.name}] PSS per idle {tag} VM (MiB): "
            + ", ".join(f"{v:.0f}" for v in self.samples[f"pss_{tag}"]))
        # Not in a finally: after an error the daemon's SIGTERM destroys what is left.
        while boxes:
            b = boxes.pop()
            self.add(f"delete_{tag}", self.delete(d, b["id"]))

    # ---- phases ----
    def phase_cold(self):
        d = Daemon(self, "cold", ["--no-snapshots", "--pool-size", "0", "--max-sandboxes", "8"])
        h = d.healthz()
        self.info["healthz"] = h
        expect(not h.get("templates", {}).get("enabled", True),
               "cold daemon reports templates enabled")
        log(f"[cold] daemon up on port {d.port}, accel {h['vmm']['accel']}; warm-up")
        self.ember_vm_boot()
        body, _ = self.create(d, "cold")
        self.exec(d, body["id"])
        self.delete(d, body["id"])
        for i in range(self.args.runs):
            vm_ms = self.ember_vm_boot()
            self.add("ember_vm_boot", vm_ms)
            body, ms = self.create(d, "cold")
            self.add("create_cold", ms)
            self.add("create_cold_server", body["boot_ms"])
            self.add("delete_cold", self.delete(d, body["id"]))
            log(f"[cold] {i + 1}/{self.args.runs}: emberd create {ms:.0f} ms "
                f"(server {body['boot_ms']} ms), ember-vm boot {vm_ms} ms")
        self.idle_sandbox_phase(d, "cold", "cold")
        self.stop(d)

    def phase_clone(self):
        t0 = time.monotonic()
        d = Daemon(self, "clone", ["--pool-size", "0", "--prewarm", "--max-sandboxes", "8"])
        npacks = len(self.manifest["packs"])
        d.wait_health(lambda h: h["templates"]["ready"] >= npacks
                      and h["templates"]["building"] == 0, "templates", 300)
        self.info["template_ready_s"] = time.monotonic() - t0
        log(f"[clone] {npacks} templates ready after {self.info['template_ready_s']:.1f} s; "
            "warm-up")
        body, _ = self.create(d, "clone")
        self.exec(d, body["id"])
        self.delete(d, body["id"])
        vm_template = os.path.join(self.tmp, "vmt")
        os.mkdir(vm_template)
        self.ember_vm_boot(vm_template)  # makes ember-vm's own template
        for i in range(self.args.runs):
            vm_ms = self.ember_vm_boot(vm_template)
            self.add("ember_vm_clone", vm_ms)
            body, ms = self.create(d, "clone")
            self.add("create_clone", ms)
            self.add("create_clone_server", body["boot_ms"])
            ebody, ems = self.exec(d, body["id"])
            self.add("exec_first", ems)
            self.add("exec_first_guest", ebody.get("duration_ms", 0))
            self.add("delete_clone", self.delete(d, body["id"]))
            log(f"[clone] {i + 1}/{self.args.runs}: create {ms:.1f} ms "
                f"(server {body['boot_ms']} ms), first exec {ems:.1f} ms, "
                f"ember-vm clone {vm_ms} ms")
        self.idle_sandbox_phase(d, "clone", "clone")
        tdir = os.path.join(d.run_dir, "templates")
        sizes = []
        for key in sorted(os.listdir(tdir)):
            mem = os.path.join(tdir, key, "memory")
            if os.path.exists(mem):
                st = os.stat(mem)
                sizes.append((st.st_size // 2**20, st.st_blocks * 512 // 2**20))
        self.info["template_files"] = sizes
        self.stop(d)

    def pool_full(self, d, timeout_s=300):
        want = self.args.pool_size * len(self.manifest["packs"])
        return d.wait_health(lambda h: h["pool"]["ready"] >= want, f"pool.ready >= {want}",
                             timeout_s)

    def phase_pool(self, base=None, sfx="", baselines=True):
        """Pooled creates; base: parent of the daemon's run directory (default: the bench's
        private directory), sfx: suffix of the sample names."""
        t0 = time.monotonic()
        p, c = self.args.pool_size, self.args.concurrency
        name = "pool" + sfx.replace("_", "-")
        d = Daemon(self, name, ["--pool-size", str(p), "--prewarm", "--max-sandboxes", "32"],
                   base=base)
        self.pool_full(d, 600)
        self.info["pool_full_s" + sfx] = time.monotonic() - t0
        log(f"[{name}] pools full ({p} per pack) after {time.monotonic() - t0:.1f} s")

        if baselines:
            # While the daemon sits idle with full pools; interleaved, same conditions.
            bwrap = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                     "--unshare-all", "--die-with-parent", self.args.python, "-c", CODE]
            plain = [self.args.python, "-c", CODE]
            for cmd in (bwrap, plain):  # warm-up
                subprocess.run(cmd, capture_output=True, check=True)
            for _ in range(self.args.pooled_runs):
                for key, cmd in (("bwrap", bwrap), ("python_plain", plain)):
                    t = time.perf_counter_ns()
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    ms = (time.perf_counter_ns() - t) / 1e6
                    expect(proc.returncode == 0 and proc.stdout == "1\n",
                           f"{key}: {proc.returncode} {proc.stdout!r} {proc.stderr[-500:]!r}")
                    self.add(key, ms)
                status, _, ms = d.client.call("GET", "/healthz")
                expect(status == 200, "healthz")
                self.add("healthz", ms)
            log(f"[{name}] bwrap p50 {percentile(self.samples['bwrap'], 0.5):.1f} ms")

        body, _ = self.create(d, "pool")  # warm-up
        self.delete(d, body["id"])
        for r in range(math.ceil(self.args.pooled_runs / p)):
            self.pool_full(d)
            mark = d.log_size()
            ids = []
            for _ in range(p):
                body, ms = self.create(d, "pool")
                self.add("create_pool_seq" + sfx, ms)
                ids.append(body["id"])
            self.samples.setdefault("create_pool_seq_daemon" + sfx, []).extend(
                d.create_ms_since(mark))
            for sid in ids:
                self.add("delete_pool" + sfx, self.delete(d, sid))
            log(f"[{name}] sequential batch {r + 1}: p50 "
                f"{percentile(self.samples['create_pool_seq' + sfx][-p:], 0.5):.2f} ms")

        # Concurrent clients are processes (no shared GIL), each with its own connection.
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(c)
        workers = []
        try:
            for _ in range(c):
                ours, theirs = ctx.Pipe()
                w = ctx.Process(target=concurrent_client, args=(d.port, theirs, barrier),
                                daemon=True)
                w.start()
                workers.append((w, ours))

            def batch(cmd):
                for _, pipe in workers:
                    pipe.send(cmd)
                results = []
                for _, pipe in workers:
                    if not pipe.poll(120):
                        raise BenchError("a concurrent client did not answer")
                    results.append(pipe.recv())
                return results

            self.pool_full(d)
            for _ in range(math.ceil(self.args.pooled_runs / c) if baselines else 0):
                for status, body, ms in batch("healthz"):
                    expect(status == 200, f"concurrent healthz: {status} {body}")
                    self.add("healthz_conc", ms)
            for r in range(math.ceil(self.args.pooled_runs / c)):
                self.pool_full(d)
                mark = d.log_size()
                results = batch("create")
                errors = [r for r in results if r[0] != 201]
                created = [(body, ms) for status, body, ms in results if status == 201]
                for body, ms in created:
                    self.add("create_pool_conc" + sfx, ms)
                self.samples.setdefault("create_pool_conc_daemon" + sfx, []).extend(
                    d.create_ms_since(mark))
                for body, _ in created:
                    self.add("delete_pool" + sfx, self.delete(d, body["id"]))
                if errors:
                    raise BenchError(f"concurrent create: {errors[0]}")
                for body, _ in created:
                    expect(body.get("boot_mode") == "pool",
                           f"concurrent create: boot_mode {body.get('boot_mode')!r}, "
                           f"expected 'pool': {body}")
                log(f"[{name}] {c} concurrent, batch {r + 1}: p50 "
                    f"{percentile([ms for _, ms in created], 0.5):.2f} ms, max "
                    f"{max(ms for _, ms in created):.2f} ms")
        finally:
            for w, pipe in workers:
                try:
                    pipe.send(None)
                except OSError:
                    pass
            for w, _ in workers:
                w.join(5)
                if w.is_alive():
                    w.kill()
                    w.join()
        self.stop(d)

    def stop(self, d):
        d.client.close()
        problems = d.stop()
        self.daemons.remove(d)
        if problems:
            log(f"[{d.name}] log tail:\n{d.read_log()[-4000:]}")
            raise BenchError("; ".join(problems))

    # ---- facts and report ----
    def machine_facts(self):
        with open(os.path.join(self.args.images, "packs.json")) as f:
            self.manifest = json.load(f)
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 2**20
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                              text=True).stdout.splitlines()
        git = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
        fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.args.tmp_base],
                                capture_output=True, text=True).stdout.strip()
        pack = next(p for p in self.manifest["packs"] if p["name"] == PACK)
        self.facts = {
            "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": mem_gib,
            "host_kernel": platform.release(), "qemu": qemu[0] if qemu else "?",
            "guest_kernel": self.manifest["kernel"], "pack": pack, "commit": git,
            "run_dir_fs": fstype or "?",
        }

    @staticmethod
    def foreign_vmms(own_dirs):
        """QEMU/Firecracker processes on the host that are not this run's (noise)."""
        n = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            argv0 = cmd.split(b"\0")[0]
            if (b"qemu-system" in argv0 or b"firecracker" in argv0) and \
                    not any(o.encode() in cmd for o in own_dirs):
                n += 1
        return n

    def report(self, started, finished, load0, load1, foreign0, foreign1):
        s = self.samples
        a = self.args
        h = self.info["healthz"]
        f = self.facts

        def p50(k):
            return percentile(s[k], 0.5)

        def p99(k):
            return percentile(s[k], 0.99)

        def ms(v):
            if v >= 100:
                return f"{v:.0f} ms"
            if v >= 10:
                return f"{v:.1f} ms"
            return f"{v:.2f} ms"

        def verdict(ok):
            return "**PASS**" if ok else "**FAIL**"

        rows = []

        def row(what, key, server="", bar="", result=""):
            rows.append((what, str(len(s[key])), ms(p50(key)), ms(p99(key)), server, bar,
                         result))

        def daemon_ms(key):
            v = s.get(key, [])
            if not v:
                return ""
            return f"daemon {percentile(v, 0.5):.0f} / {percentile(v, 0.99):.0f} ms (whole ms)"

        row("cold create (`--no-snapshots`)", "create_cold",
            f"boot_ms {p50('create_cold_server'):.0f} ms")
        row("clone create (`--pool-size 0`, template ready)", "create_clone",
            f"boot_ms {p50('create_clone_server'):.0f} ms")
        row(f"pooled create, sequential (batches of {a.pool_size})", "create_pool_seq",
            daemon_ms("create_pool_seq_daemon"))
        conc_ok = (p50("create_pool_conc") <= BARS["pool_p50_ms"]
                   and p99("create_pool_conc") <= BARS["pool_p99_ms"])
        row(f"pooled create, {a.concurrency} concurrent", "create_pool_conc",
            daemon_ms("create_pool_conc_daemon"),
            f"p50 ≤ {BARS['pool_p50_ms']:g} ms, p99 ≤ {BARS['pool_p99_ms']:g} ms",
            verdict(conc_ok))
        if s.get("create_pool_conc_tmpfs"):
            fs = self.facts["run_dir_fs"]
            row(f"pooled create, sequential, run dir on tmpfs (not {fs})",
                "create_pool_seq_tmpfs", daemon_ms("create_pool_seq_daemon_tmpfs"))
            ok = (p50("create_pool_conc_tmpfs") <= BARS["pool_p50_ms"]
                  and p99("create_pool_conc_tmpfs") <= BARS["pool_p99_ms"])
            row(f"pooled create, {a.concurrency} concurrent, run dir on tmpfs (not {fs})",
                "create_pool_conc_tmpfs", daemon_ms("create_pool_conc_daemon_tmpfs"),
                "same bar, for comparison", "pass" if ok else "fail")
        row(f"exec `{CODE}` round trip, clone sandbox", "exec_clone",
            f"guest duration_ms {p50('exec_clone_guest'):.0f}")
        row(f"exec `{CODE}` round trip, cold-booted sandbox", "exec_cold",
            f"guest duration_ms {p50('exec_cold_guest'):.0f}")
        row(f"first exec `{CODE}` on a fresh clone", "exec_first",
            f"guest duration_ms {p50('exec_first_guest'):.0f}")
        row("delete, cold-booted sandbox", "delete_cold")
        row("delete, clone", "delete_clone")
        row("delete, pooled clone (batch after each create batch)", "delete_pool")
        for tag, label in (("cold", "cold-booted"), ("clone", "clone")):
            v = s[f"pss_{tag}"]

            def med(k):
                return statistics.median(s[k])
            rows.append((f"host PSS per idle sandbox, {label} (median / max)", str(len(v)),
                         f"{statistics.median(v):.1f} MiB", f"{max(v):.1f} MiB",
                         f"guest RAM {med(f'pss_{tag}_guest'):.0f} + TCG code "
                         f"{med(f'pss_{tag}_tcg'):.0f} + QEMU other "
                         f"{med(f'pss_{tag}_other'):.0f} MiB; Rss {med(f'rss_{tag}'):.0f}, "
                         f"private {med(f'private_{tag}'):.0f} MiB", "", ""))
        row("baseline: plain QEMU boot to agent hello (`ember-vm` `boot_ms`)", "ember_vm_boot")
        row("reference: plain QEMU clone restore to hello (`ember-vm --template`)",
            "ember_vm_clone")
        row(f"baseline: `bwrap … python3 -c '{CODE}'` end to end", "bwrap")
        row(f"reference: `python3 -c '{CODE}'` end to end, no isolation", "python_plain")
        row("reference: `GET /healthz` round trip (HTTP floor)", "healthz")
        row(f"reference: `GET /healthz`, {a.concurrency} concurrent (same clients, idle daemon)",
            "healthz_conc")

        speed = p50("create_cold") / p50("create_clone")
        speed99 = p99("create_cold") / p99("create_clone")
        rows.append(("**ratio** cold / clone create", "", f"{speed:.1f}x", f"{speed99:.1f}x", "",
                     f"p50 ≥ {BARS['clone_speedup']:g}x", verdict(speed >= BARS["clone_speedup"])))
        pss = statistics.median(s["pss_clone"]) / statistics.median(s["pss_cold"])

        def no_tcg(tag):
            return statistics.median(
                [t - c for t, c in zip(s[f"pss_{tag}"], s[f"pss_{tag}_tcg"])])

        guest_only = (statistics.median(s["pss_clone_guest"])
                      / statistics.median(s["pss_cold_guest"]))
        rows.append(("**ratio** clone PSS / cold PSS (medians)", "", f"{pss:.2f}", "",
                     f"without the TCG code buffer {no_tcg('clone') / no_tcg('cold'):.2f}; "
                     f"guest RAM only {guest_only:.2f}",
                     f"≤ {BARS['pss_ratio']:g}", verdict(pss <= BARS["pss_ratio"])))
        rows.append(("**ratio** emberd cold create / plain `ember-vm` boot", "",
                     f"{p50('create_cold') / p50('ember_vm_boot'):.2f}x",
                     f"{p99('create_cold') / p99('ember_vm_boot'):.2f}x", "", "", ""))
        rows.append(("**ratio** emberd clone create / plain `ember-vm` clone restore", "",
                     f"{p50('create_clone') / p50('ember_vm_clone'):.2f}x",
                     f"{p99('create_clone') / p99('ember_vm_clone'):.2f}x", "", "", ""))
        rows.append(("**ratio** bwrap / pooled create (sequential)", "",
                     f"{p50('bwrap') / p50('create_pool_seq'):.1f}x",
                     f"{p99('bwrap') / p99('create_pool_seq'):.1f}x", "", "", ""))
        rows.append((f"**ratio** bwrap / pooled create ({a.concurrency} concurrent)", "",
                     f"{p50('bwrap') / p50('create_pool_conc'):.1f}x",
                     f"{p99('bwrap') / p99('create_pool_conc'):.1f}x", "", "", ""))

        hdr = ("measurement", "n", "p50", "p99", "daemon/guest side", "bar", "result")
        lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]

        gk = f["guest_kernel"]
        pk = f["pack"]
        tf = self.info.get("template_files", [])
        out = [
            f"# emberd fast-create benchmark, {started:%Y-%m-%d %H:%M}",
            "",
            f"- machine: nproc {f['nproc']}, CPU {f['cpu']}, {f['mem_gib']:.1f} GiB RAM, "
            f"host kernel {f['host_kernel']}",
            f"- accelerator (`/healthz`): {h['vmm']['driver']}/{h['vmm']['accel']}: "
            f"{h['vmm']['description']}",
            f"- {f['qemu']}",
            f"- guest kernel (packs.json): {gk.get('release', '?')} ({gk.get('bzimage', '?')}), "
            f"initramfs {self.manifest.get('initramfs', '?')}",
            f"- pack `{PACK}`: {pk['defaults']['vcpus']} vCPU, {pk['defaults']['memory_mib']} MiB, "
            f"overlay {pk['defaults']['overlay_mib']} MiB; {len(self.manifest['packs'])} packs in "
            "the catalog (each gets its own template and pool)",
            f"- emberd {f['commit']} (release build `bin/emberd`), run dirs on {f['run_dir_fs']}",
            f"- load average at start {load0}, at end {load1}; QEMU/Firecracker processes not "
            f"from this run: {foreign0} at start, {foreign1} at end",
            f"- duration {(finished - started).total_seconds() / 60:.1f} min; "
            f"`bench/fastcreate.py --runs {a.runs} --pooled-runs {a.pooled_runs} "
            f"--pool-size {a.pool_size} --concurrency {a.concurrency} --pss-vms {a.pss_vms}`",
            "",
            *lines,
            "",
            "Notes:",
            "- Latencies are client-side (request sent to response read) over a persistent "
            "HTTP/1.1 connection; `boot_ms` is the daemon's own create time (0 for a pool "
            "handout); guest `duration_ms` is the program's run time inside the VM.",
            f"- Pooled batches start only when `/healthz` `pool.ready` = {a.pool_size} x "
            f"{len(self.manifest['packs'])} packs; every handout was checked to be "
            "`boot_mode` \"pool\" (clone creates: \"clone\", cold: \"cold\"). The refill runs "
            f"in the background during each batch. The {a.concurrency} concurrent clients are "
            "separate processes, each on its own warm connection, released by a barrier. "
            "\"daemon\" figures are the daemon's own `http.request` `duration_ms` log field "
            "(whole milliseconds).",
            f"- PSS: `Pss` of `/proc/<vmm_pid>/smaps_rollup` ({self.info.get('vmm_comm', '?')}) "
            f"with {a.pss_vms} sandboxes of the kind alive, each after one warm-up exec and "
            f"{a.execs_per_vm} timed execs, {a.settle_s:g} s idle. A clone's pages read from the "
            "template are shared page cache, so its PSS shrinks as more clones share them; its "
            "private memory is what each additional clone costs. Each template also keeps its "
            "RAM file: "
            + (", ".join(f"{sz} MiB ({alloc} MiB allocated)" for sz, alloc in tf) or "?")
            + ".",
            f"- Templates ready {self.info['template_ready_s']:.0f} s after daemon start "
            f"(`--prewarm`); pools full {self.info['pool_full_s']:.0f} s after start.",
            "- `ember-vm` boots (no daemon) were interleaved one-for-one with the cold creates; "
            "bwrap and plain python3 runs were interleaved while the pool daemon sat idle with "
            "full pools.",
        ]
        return "\n".join(out) + "\n"

    def run(self):
        a = self.args
        self.machine_facts()
        self.tmp = tempfile.mkdtemp(prefix="ebn.", dir=a.tmp_base)
        tmp_dirs = [self.tmp]
        self.vm_base = os.path.join(self.tmp, "vm")
        os.mkdir(self.vm_base)
        started = datetime.datetime.now()
        load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
        foreign0 = self.foreign_vmms(tmp_dirs)
        errors = []
        try:
            self.phase_cold()
            self.phase_clone()
            self.phase_pool()
            if a.tmpfs_base and self.facts["run_dir_fs"] != "tmpfs":
                tmp_dirs.append(tempfile.mkdtemp(prefix="ebn.", dir=a.tmpfs_base))
                self.phase_pool(base=tmp_dirs[-1], sfx="_tmpfs", baselines=False)
        except (BenchError, OSError, subprocess.SubprocessError, http.client.HTTPException,
                KeyError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            for d in list(self.daemons):
                try:
                    d.client.close()
                except Exception:
                    pass
                errors += d.stop()
                log(f"[{d.name}] log tail:\n{d.read_log()[-4000:]}")
            for t in tmp_dirs:
                left = processes_mentioning(t + "/", exclude=(os.getpid(),))
                if left:
                    errors.append(f"processes left behind: {left}")
                    sigkill(left)
            foreign1 = self.foreign_vmms(tmp_dirs)
            for t in tmp_dirs:
                shutil.rmtree(t, ignore_errors=True)
        if errors:
            for e in errors:
                print(f"fastcreate: {e}", file=sys.stderr)
            return 1
        finished = datetime.datetime.now()
        load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
        text = self.report(started, finished, load0, load1, foreign0, foreign1)
        print(text, end="")
        if not a.no_save:
            os.makedirs(a.results_dir, exist_ok=True)
            path = os.path.join(a.results_dir, f"{started:%Y-%m-%d}.md")
            with open(path, "w") as fh:
                fh.write(text)
            log(f"saved {os.path.relpath(path, REPO)}")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="cold/clone creates and ember-vm boots")
    ap.add_argument("--pooled-runs", type=int, default=50,
                    help="pooled creates of each kind (sequential, concurrent) and bwrap runs")
    ap.add_argument("--pool-size", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--pss-vms", type=int, default=3, help="idle sandboxes of each kind for PSS")
    ap.add_argument("--execs-per-vm", type=int, default=10)
    ap.add_argument("--settle-s", type=float, default=2.0)
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--ember-vm", default=os.path.join(REPO, "bin", "ember-vm"))
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="python3 for the bwrap baseline")
    ap.add_argument("--tmp-base", default="/tmp", help="private run directories go below")
    ap.add_argument("--tmpfs-base", default="/dev/shm",
                    help="when --tmp-base is not tmpfs, the pooled creates are measured once "
                    "more with the run directory here ('' to skip)")
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if args.concurrency > args.pool_size:
        ap.error("--concurrency must not exceed --pool-size (every create must be a handout)")
    for path in (args.emberd, args.ember_vm):
        if not os.access(path, os.X_OK):
            sys.exit(f"fastcreate: {path} is missing: run `make`")
    if not os.path.exists(os.path.join(args.images, "packs.json")):
        sys.exit(f"fastcreate: no packs.json in {args.images}: run `make images`")
    if shutil.which("bwrap") is None:
        sys.exit("fastcreate: bwrap is missing (apt-get install bubblewrap)")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("fastcreate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
