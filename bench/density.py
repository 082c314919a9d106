#!/usr/bin/env python3
"""Density benchmark (issue #18): many sandboxes on one host.

    bench/density.py [--pool 50] [--burst 50] [--flood 200] [--mixed-clients 50]
                     [--mixed-s 300] [--idle 50,100] [--no-ksm] [--images DIR] [--no-save]

Phases, each with its own daemon (release bin/emberd, private port and --run-dir under /tmp):
  burst   --pool-size P --pool-packs python: once the pool holds P clones, --burst client
          processes (each on a warm connection, released by a barrier) create at once while
          refills run: client-side p50/p99 and the daemon's own duration_ms; then, the pool full
          again, --flood clients at once (P from the pool, the rest cloned): p50/p99 and every
          status but 201 counted (429/503 are documented refusals, anything else an error);
          then --burst creates from one process over warm connections (a selector), to
          separate the daemon's latency from the client processes' wait for a CPU.
  fair    10 python sandboxes: `print(1)` on one of them alone, then while the 9 others run
          busy loops on their vCPU; the ratio loaded/alone against the fair-share expectation
          (this sandbox's share of the host's cores: nproc / 10 of a core each, so alone/share).
  mixed   --pool-size 10: --mixed-clients processes loop create -> 3 execs -> delete for
          --mixed-s seconds: cycles per minute, p50/p99 per operation, failures by kind.
  idle    sandboxes created one after the other up to each count in --idle (clones), 10 s idle,
          then host PSS of all VMMs / count, and MemAvailable's drop; then with kernel samepage
          merging on (/sys/kernel/mm/ksm/run=1, QEMU's guest RAM is madvise(MERGEABLE) by
          default) after two full scans: the same figures and `print(1)` latency on 3 of them,
          KSM off. The host's KSM settings are restored at the end.
Prints one Markdown report and saves it as bench/results/<date>-density.md (unless --no-save).
Exit status 0 when every measurement was taken, 1 on any error or leak.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import selectors
import socket
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, BenchError, Client, Daemon, expect, log,  # noqa: E402
                        percentile, processes_mentioning, pss_kib, sigkill)

PACK = "python"
KSM = "/sys/kernel/mm/ksm"


def p50(xs):
    return percentile(xs, 0.5)


def p99(xs):
    return percentile(xs, 0.99)


def burst_client(port, pipe, barrier):
    """A client process: on "create", warms its connection, waits for the others, times one
    create; sends (status, body, ms)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = Client(port)
    while True:
        cmd = pipe.recv()
        if cmd is None:
            break
        try:
            client.call("GET", "/healthz")
            barrier.wait(timeout=120)
            released = time.monotonic_ns()  # CLOCK_MONOTONIC: comparable across processes
            status, body, ms = client.call("POST", "/sandboxes", {"language_pack": PACK})
            pipe.send((status, body, ms, released, client.last_start_ns))
        except Exception as e:  # reported by the parent
            pipe.send((0, repr(e), 0.0, 0, 0))
    client.close()


def read_response(sock_buf):
    """(status, body) when sock_buf (bytes) holds a whole HTTP/1.1 response with
    Content-Length (what the daemon sends to a create), else None."""
    head_end = sock_buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = sock_buf[:head_end].decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = sock_buf[head_end + 4:]
    if len(body) < length:
        return None
    return int(head[0].split()[1]), json.loads(body[:length]) if length else None


def threads_cpu_ns(pid):
    """CPU time (ns) the live threads of pid have run (/proc/<pid>/task/*/schedstat):
    {"requests": the HTTP connection threads', "other": the rest (pool filler, which writes
    handed-out clones' records, reaper, ...)}."""
    total = {"requests": 0, "other": 0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
                kind = "requests" if f.read().startswith("MHD-conn") else "other"
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total[kind] += int(f.read().split()[0])
        except OSError:
            pass  # the thread ended meanwhile
    return total


def one_process_burst(port, n, daemon_pid):
    """n creates from ONE process over n warm connections, sent back to back and read with a
    selector: each create's send -> whole response, without n client processes competing for
    the CPU. Returns ([(status, body, ms)], the CPU ms the daemon's threads spent meanwhile as
    threads_cpu_ns() splits it; connection threads live as long as their connection)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            buf = b""
            while read_response(buf) is None:
                chunk = s.recv(65536)
                expect(chunk, "the daemon closed a warm-up connection")
                buf += chunk
            socks.append(s)
        body = json.dumps({"language_pack": PACK}).encode()
        request = (b"POST /sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                   b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        sel = selectors.DefaultSelector()
        sent, bufs, results = {}, {}, []
        cpu0 = threads_cpu_ns(daemon_pid)
        for i, s in enumerate(socks):
            s.setblocking(False)
            sent[i] = time.monotonic_ns()
            s.send(request)  # a few hundred bytes: fits the empty socket buffer at once
            bufs[i] = b""
            sel.register(s, selectors.EVENT_READ, i)
        deadline = time.monotonic() + 600
        while len(results) < n and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                i = key.data
                chunk = key.fileobj.recv(65536)
                expect(chunk, "the daemon closed a burst connection")
                bufs[i] += chunk
                done = read_response(bufs[i])
                if done is not None:
                    results.append((done[0], done[1], (time.monotonic_ns() - sent[i]) / 1e6))
                    sel.unregister(key.fileobj)
        cpu1 = threads_cpu_ns(daemon_pid)
        cpu_ms = {k: (cpu1[k] - cpu0[k]) / 1e6 for k in cpu0}
        expect(len(results) == n, f"{n - len(results)} creates got no answer in 600 s")
        return results, cpu_ms
    finally:
        for s in socks:
            s.close()


def mixed_client(port, until, out):
    """A client process of the mixed load: create -> 3 execs -> delete until `until`
    (monotonic); puts {"ops": {op: [ms]}, "cycles": n, "failures": {what: n}}."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = Client(port, timeout=600)
    ops, failures, cycles = {}, {}, 0
    while time.monotonic() < until:
        status, body, ms = client.call("POST", "/sandboxes", {"language_pack": PACK})
        if status != 201:
            key = f"create {status} {(body or {}).get('error', {}).get('code')}"
            failures[key] = failures.get(key, 0) + 1
            time.sleep(0.5)
            continue
        ops.setdefault("create", []).append(ms)
        sid = body["id"]
        for _ in range(3):
            status, res, ms = client.call("POST", f"/sandboxes/{sid}/exec", {"code": "print(1)"})
            if status == 200 and res.get("stdout") == "1\n":
                ops.setdefault("exec", []).append(ms)
            else:
                key = f"exec {status}"
                failures[key] = failures.get(key, 0) + 1
        status, _, ms = client.call("DELETE", f"/sandboxes/{sid}")
        if status == 204:
            ops.setdefault("delete", []).append(ms)
            cycles += 1
        else:
            failures[f"delete {status}"] = failures.get(f"delete {status}", 0) + 1
    client.close()
    out.put({"ops": ops, "cycles": cycles, "failures": failures})


class Density:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.tmp = None
        self.rows = []      # (phase, what, value)
        self.notes = []

    def row(self, phase, what, value):
        self.rows.append((phase, what, value))
        log(f"[{phase}] {what}: {value}")

    def daemon(self, name, extra):
        return Daemon(self, name, ["--max-sandboxes", "512", "--max-connections", "1024",
                                   "--max-connections-per-ip", "1024", *extra])

    def stop(self, d):
        d.client.close()
        problems = d.stop()
        self.daemons.remove(d)
        if problems:
            raise BenchError("; ".join(problems))

    def create(self, d):
        status, body, ms = d.client.call("POST", "/sandboxes", {"language_pack": PACK})
        expect(status == 201, f"create: {status} {body}")
        return body, ms

    def exec_ms(self, d, sid, client=None):
        status, res, ms = (client or d.client).call("POST", f"/sandboxes/{sid}/exec",
                                                    {"code": "print(1)"})
        expect(status == 200 and res["stdout"] == "1\n", f"exec: {status} {res}")
        return ms

    def delete_all(self, d, ids):
        for sid in ids:
            status, body, _ = d.client.call("DELETE", f"/sandboxes/{sid}")
            expect(status == 204, f"delete {sid}: {status} {body}")

    def python_pool(self, h):
        return h["pool"]["ready_by_pack"].get(PACK, 0)

    # ---- burst ----
    def concurrent_creates(self, d, n):
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(n)
        workers = []
        try:
            for _ in range(n):
                ours, theirs = ctx.Pipe()
                w = ctx.Process(target=burst_client, args=(d.port, theirs, barrier), daemon=True)
                w.start()
                workers.append((w, ours))
            mark = d.log_size()
            for _, pipe in workers:
                pipe.send("create")
            results = []
            for _, pipe in workers:
                expect(pipe.poll(600), "a burst client did not answer")
                results.append(pipe.recv())
            return results, d.create_ms_since(mark)
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

    def phase_burst(self):
        a = self.args
        d = self.daemon("burst", ["--pool-size", str(a.pool), "--pool-packs", PACK])
        t0 = time.monotonic()
        d.wait_health(lambda h: self.python_pool(h) >= a.pool, "a full pool", 1800)
        self.row("burst", f"pool of {a.pool} filled in", f"{time.monotonic() - t0:.1f} s")
        for n in (a.burst, a.flood):
            d.wait_health(lambda h: self.python_pool(h) >= a.pool, "a full pool", 1800)
            timed, daemon_ms = self.concurrent_creates(d, n)
            results = [(s, b, ms) for s, b, ms, _, _ in timed]
            ok = [(b, ms) for s, b, ms in results if s == 201]
            by_status = {}
            for s, b, _ in results:
                if s != 201:
                    by_status[s] = by_status.get(s, 0) + 1
            modes = {}
            for b, _ in ok:
                modes[b["boot_mode"]] = modes.get(b["boot_mode"], 0) + 1
            ms = [m for _, m in ok]
            self.row("burst", f"{n} concurrent creates, client p50 / p99",
                     f"{p50(ms):.1f} / {p99(ms):.1f} ms ({modes})")
            pooled = [m for b, m in ok if b["boot_mode"] == "pool"]
            if n != a.burst:
                self.row("burst", f"{n} concurrent: the pooled ones' p50 / p99",
                         f"{p50(pooled):.1f} / {p99(pooled):.1f} ms")
            self.row("burst", f"{n} concurrent, daemon duration_ms p50 / p99 (all 201s)",
                     f"{p50(daemon_ms):.0f} / {p99(daemon_ms):.0f} ms")
            if n == a.burst:
                # Where a client's time goes: waiting for a CPU to run on after the barrier
                # released all n processes at once, then the request itself.
                first = min(r for _, _, _, r, _ in timed if r)
                waits = [(start - first) / 1e6 for s, _, _, r, start in timed if s == 201]
                self.row("burst", f"{n} concurrent: barrier release -> request sent, p50 / p99",
                         f"{p50(waits):.1f} / {p99(waits):.1f} ms (client processes waiting "
                         f"for one of {os.cpu_count()} CPUs)")
                self.row("burst", f"{n} concurrent: request sent -> response, p50 / p99",
                         f"{p50(ms):.1f} / {p99(ms):.1f} ms")
            self.row("burst", f"{n} concurrent, refusals and errors", str(by_status or "none"))
            bad = {s: c for s, c in by_status.items() if s not in (429, 503)}
            expect(not bad, f"undocumented failures in a burst of {n}: {bad} "
                   f"{[b for s, b, _ in results if s in bad][:2]}")
            self.delete_all(d, [b["id"] for b, _ in ok])
        # The same burst from one process over warm connections: the daemon's latency as the
        # wire sees it, without 50 client processes waiting for 2 CPUs.
        d.wait_health(lambda h: self.python_pool(h) >= a.pool, "a full pool", 1800)
        mark = d.log_size()
        results, cpu_ms = one_process_burst(d.port, a.burst, d.proc.pid)
        daemon_ms = d.create_ms_since(mark)
        ok = [(b, ms) for s, b, ms in results if s == 201]
        modes = {}
        for b, _ in ok:
            modes[b["boot_mode"]] = modes.get(b["boot_mode"], 0) + 1
        ms = [m for _, m in ok]
        self.row("burst", f"{a.burst} concurrent from one process (selector), p50 / p99",
                 f"{p50(ms):.1f} / {p99(ms):.1f} ms ({modes}; daemon duration_ms "
                 f"{p50(daemon_ms):.0f} / {p99(daemon_ms):.0f} ms)")
        expect(len(ok) == a.burst, f"one-process burst: {[s for s, _, _ in results]}")
        # The floor a burst cannot beat: n creates' CPU on this host's cores.
        total = sum(cpu_ms.values())
        self.row("burst", f"daemon CPU per pooled create ({a.burst} creates)",
                 f"{total / a.burst:.2f} ms ({cpu_ms['requests'] / a.burst:.2f} in the request "
                 f"threads, {cpu_ms['other'] / a.burst:.2f} in the others): {a.burst} at once "
                 f"need >= {total / os.cpu_count():.1f} ms of {os.cpu_count()} CPUs")
        self.delete_all(d, [b["id"] for b, _ in ok])
        self.stop(d)

    # ---- fair share ----
    def phase_fair(self):
        a = self.args
        d = self.daemon("fair", ["--pool-size", "0", "--prewarm"])
        ids = [self.create(d)[0]["id"] for _ in range(10)]
        probe, busy = ids[0], ids[1:]
        for sid in ids:
            self.exec_ms(d, sid)  # warm every guest's python
        alone = [self.exec_ms(d, probe) for _ in range(a.runs)]
        stop = threading.Event()

        def spin(sid):
            c = Client(d.port, timeout=900)
            while not stop.is_set():
                c.call("POST", f"/sandboxes/{sid}/exec",
                       {"code": "import time\nt = time.time()\nwhile time.time() - t < 20: pass",
                        "timeout_ms": 60000})
            c.close()
        threads = [threading.Thread(target=spin, args=(sid,), daemon=True) for sid in busy]
        for t in threads:
            t.start()
        time.sleep(3)  # the loops run
        loaded = [self.exec_ms(d, probe) for _ in range(a.runs)]
        stop.set()
        for t in threads:
            t.join(120)
        ratio = p50(loaded) / p50(alone)
        share = min(1.0, os.cpu_count() / 10)
        self.row("fair", "print(1) alone p50 / with 9 busy sandboxes p50",
                 f"{p50(alone):.0f} / {p50(loaded):.0f} ms")
        self.row("fair", "slowdown, and against the fair-share expectation",
                 f"{ratio:.2f}x; expected {1 / share:.1f}x (a 1/10 share of {os.cpu_count()} "
                 f"cores); {ratio * share:.2f}x of fair (goal <= 1.5x)")
        self.delete_all(d, ids)
        self.stop(d)

    # ---- mixed load ----
    def phase_mixed(self):
        a = self.args
        d = self.daemon("mixed", ["--pool-size", "10", "--pool-packs", PACK])
        d.wait_health(lambda h: self.python_pool(h) >= 10, "a full pool", 1800)
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        until = time.monotonic() + a.mixed_s
        procs = [ctx.Process(target=mixed_client, args=(d.port, until, q), daemon=True)
                 for _ in range(a.mixed_clients)]
        for p in procs:
            p.start()
        results = [q.get(timeout=a.mixed_s + 900) for _ in procs]
        for p in procs:
            p.join(10)
        ops, failures, cycles = {}, {}, 0
        for r in results:
            cycles += r["cycles"]
            for k, v in r["ops"].items():
                ops.setdefault(k, []).extend(v)
            for k, v in r["failures"].items():
                failures[k] = failures.get(k, 0) + v
        self.row("mixed", f"{a.mixed_clients} clients x {a.mixed_s} s: cycles per minute",
                 f"{cycles * 60 / a.mixed_s:.1f} ({cycles} cycles)")
        for k in ("create", "exec", "delete"):
            xs = ops.get(k, [])
            self.row("mixed", f"{k} p50 / p99 ({len(xs)})",
                     f"{p50(xs):.0f} / {p99(xs):.0f} ms")
        self.row("mixed", "failures", str(failures or "none"))
        h = d.healthz()
        expect(h["sandboxes"]["total"] == 0, f"sandboxes left after the mixed load: {h}")
        self.stop(d)

    # ---- idle density, KSM ----
    @staticmethod
    def mem_available_mib():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def vmm_pss_mib(self, d, ids):
        total = 0
        for sid in ids:
            status, body, _ = d.client.call("GET", f"/sandboxes/{sid}")
            expect(status == 200, f"get {sid}: {status}")
            total += pss_kib(body["vmm_pid"])["Pss"]
        return total / 1024

    def ksm_set(self, **values):
        for k, v in values.items():
            with open(os.path.join(KSM, k), "w") as f:
                f.write(str(v))

    def ksm_get(self, k):
        with open(os.path.join(KSM, k)) as f:
            return int(f.read())

    def phase_idle(self):
        a = self.args
        counts = sorted(int(x) for x in a.idle.split(","))
        d = self.daemon("idle", ["--pool-size", "0", "--prewarm"])
        ids = []
        base_avail = self.mem_available_mib()
        ksm = not a.no_ksm and os.path.exists(os.path.join(KSM, "run"))
        saved = {k: self.ksm_get(k) for k in ("run", "pages_to_scan", "sleep_millisecs")} \
            if ksm else {}
        try:
            for n in counts:
                while len(ids) < n:
                    ids.append(self.create(d)[0]["id"])
                for sid in ids[:3]:
                    self.exec_ms(d, sid)
                time.sleep(10)
                pss = self.vmm_pss_mib(d, ids)
                drop = base_avail - self.mem_available_mib()
                lat = [self.exec_ms(d, ids[i % 3]) for i in range(a.runs)]
                self.row("idle", f"{n} idle: VMM PSS per sandbox / MemAvailable drop per sandbox"
                         " / print(1) p50", f"{pss / n:.1f} / {drop / n:.1f} MiB / "
                         f"{p50(lat):.0f} ms")
                if not ksm:
                    continue
                scans = self.ksm_get("full_scans")
                self.ksm_set(pages_to_scan=5000, sleep_millisecs=10, run=1)
                deadline = time.monotonic() + 600
                while self.ksm_get("full_scans") < scans + 2 and time.monotonic() < deadline:
                    time.sleep(1)
                pss_k = self.vmm_pss_mib(d, ids)
                drop_k = base_avail - self.mem_available_mib()
                lat_k = [self.exec_ms(d, ids[i % 3]) for i in range(a.runs)]
                self.row("idle", f"{n} idle with KSM: VMM PSS / MemAvailable drop per sandbox"
                         " / print(1) p50", f"{pss_k / n:.1f} / {drop_k / n:.1f} MiB / "
                         f"{p50(lat_k):.0f} ms (pages_sharing "
                         f"{self.ksm_get('pages_sharing')})")
                self.ksm_set(run=2)  # unmerge before the next count
        finally:
            if ksm:
                self.ksm_set(run=2)
                for k, v in saved.items():
                    self.ksm_set(**{k: v})
        self.delete_all(d, ids)
        self.stop(d)

    def report(self, started):
        out = [f"# Density benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs, load at end {os.getloadavg()[0]:.2f}, release "
               "bin/emberd, TCG unless /healthz says otherwise.", "",
               "| phase | what | measured |", "|---|---|---|"]
        out += [f"| {p} | {w} | {v} |" for p, w, v in self.rows]
        return "\n".join(out + [""] + self.notes) + "\n"

    def run(self):
        a = self.args
        self.tmp = tempfile.mkdtemp(prefix="ebd.", dir="/tmp")
        started = datetime.datetime.now()
        errors = []
        try:
            for phase in a.phases.split(","):
                getattr(self, "phase_" + phase)()
        except (BenchError, OSError, KeyError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            for d in list(self.daemons):
                d.client.close()
                errors += d.stop()
                if errors:
                    log(f"[{d.name}] log tail:\n{d.read_log()[-3000:]}")
            left = processes_mentioning(self.tmp + "/", exclude=(os.getpid(),))
            if left:
                errors.append(f"processes left behind: {left}")
                sigkill(left)
            shutil.rmtree(self.tmp, ignore_errors=True)
        text = self.report(started)
        print(text, end="")
        if errors:
            for e in errors:
                print(f"density: {e}", file=sys.stderr)
            return 1
        if not a.no_save:
            os.makedirs(a.results_dir, exist_ok=True)
            path = os.path.join(a.results_dir, f"{started:%Y-%m-%d}-density.md")
            with open(path, "w") as fh:
                fh.write(text)
            log(f"saved {os.path.relpath(path, REPO)}")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phases", default="burst,fair,mixed,idle")
    ap.add_argument("--pool", type=int, default=50, help="python clones in the pool (burst)")
    ap.add_argument("--burst", type=int, default=50, help="concurrent pooled creates")
    ap.add_argument("--flood", type=int, default=200, help="concurrent creates, pool or not")
    ap.add_argument("--mixed-clients", type=int, default=50)
    ap.add_argument("--mixed-s", type=int, default=300)
    ap.add_argument("--idle", default="50,100", help="sandbox counts for the idle phase")
    ap.add_argument("--no-ksm", action="store_true", help="leave kernel samepage merging alone")
    ap.add_argument("--runs", type=int, default=20, help="samples per latency figure")
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if not os.access(args.emberd, os.X_OK):
        sys.exit(f"density: {args.emberd} is missing: run `make`")
    try:
        return Density(args).run()
    except KeyboardInterrupt:
        print("density: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
