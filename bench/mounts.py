#!/usr/bin/env python3
"""Mount benchmark (issue 20): moving files between the host and a sandbox through an `rw`
mount (virtio-9p from the jailed QEMU, docs/api.md "Mounts") against the files API
(PUT/GET /sandboxes/{id}/files), both measured in the same run against the same sandbox, so the
figures are ratios on a shared, noisy machine.

    bench/mounts.py [--runs 5] [--files 1000] [--file-kib 4] [--mib 100] [--images DIR] [--no-save]

One daemon (release bin/emberd, private port and --run-dir under /tmp, jailed VMMs since the
benchmark runs as root, --no-snapshots --pool-size 0, --allow-mount on a private directory under
/var/tmp), one `python` sandbox (1 GiB RAM, 512 MiB overlay) with that directory's `share`
(owned by uid/gid 4242, like a user's checkout) mounted `rw` at /mnt/share. Every row ends with
the data consumed on the other side, by the same code both ways, so the two columns differ only
in how the bytes cross:
  small files in    the host writes --files files of --file-kib KiB (random) into the share,
                    then one exec lists and reads them all in the guest (sha256 of them all,
                    checked) | --files PUTs on one kept-alive connection, then the same exec on
                    the guest's copy
  small files out   one exec writes --files files in the guest (into the share | into
                    /home/sandbox), then the host reads every one (from the share | by one GET
                    each on a kept-alive connection); checked on the host
  big file in       the host writes --mib MiB into the share | one PUT; then one exec reads the
                    file in the guest (1 MiB reads, discarded); checked by sha256 (the PUT's
                    answer; a guest sha256 exec, untimed, for the mount)
  big file out      one exec writes --mib MiB in the guest (a seeded 1 MiB block repeated), then
                    the host reads it (from the share | one GET); sha256 checked on the host
  guest-side        in one exec, the guest writes --mib MiB to the share and reads it back,
                    timed by the guest itself, against the same on its own /home/sandbox (tmpfs)
Each row is the median of --runs runs; mount and files API alternate which goes first. Baselines
of the same run: an exec that does nothing (the fixed cost in every row), and the host-side
half alone (the same files written and read back on the host's disk, no VM). Prints one
Markdown table (and saves it as bench/results/<date>-mounts.md unless --no-save). Exit status 0
when every measurement was taken, 1 on any error or leak.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastcreate import (REPO, Bench, Client, Daemon, expect, log,  # noqa: E402
                        percentile, run_and_report)

PACK = "python"
OWNER = 4242                    # host owner of the share (no such account needed)
GUEST_SHARE = "/mnt/share"
GUEST_HOME = "/home/sandbox"
BLOCK = 1 << 20                 # the big file's read/write unit, and its repeated block
EXEC_TIMEOUT_MS = 600000

# One exec in the guest: every file of a directory read, in name order; prints the byte count
# and the sha256 of the concatenation.
READ_ALL = """import hashlib, os
d = {d!r}
h = hashlib.sha256()
n = 0
for name in sorted(os.listdir(d)):
    with open(os.path.join(d, name), 'rb') as f:
        b = f.read()
    h.update(b)
    n += len(b)
print(n, h.hexdigest())
"""

# One exec in the guest: count files of size bytes each, their content derived from the index.
WRITE_ALL = """import hashlib, os
d = {d!r}
os.mkdir(d)
for i in range({count}):
    with open(os.path.join(d, 'f%04d' % i), 'wb') as f:
        f.write((hashlib.sha256(b'%d' % i).digest() * {reps})[:{size}])
"""

READ_BIG = """n = 0
buf = bytearray({block})
with open({p!r}, 'rb', buffering=0) as f:
    while True:
        k = f.readinto(buf)
        if not k:
            break
        n += k
print(n)
"""

WRITE_BIG = """import random
blk = random.Random({seed}).randbytes({block})
with open({p!r}, 'wb', buffering=0) as f:
    for _ in range({mib}):
        f.write(blk)
"""

SHA256 = """import hashlib
h = hashlib.sha256()
with open({p!r}, 'rb') as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
print(h.hexdigest())
"""

# The guest timing its own writes and reads of one file (the mount alone, no host in the loop).
GUEST_DD = """import os, time
p = {p!r}
blk = os.urandom({block})
t0 = time.perf_counter()
with open(p, 'wb', buffering=0) as f:
    for _ in range({mib}):
        f.write(blk)
    os.fsync(f.fileno())
t1 = time.perf_counter()
buf = bytearray({block})
n = 0
with open(p, 'rb', buffering=0) as f:
    while True:
        k = f.readinto(buf)
        if not k:
            break
        n += k
t2 = time.perf_counter()
os.unlink(p)
assert n == {mib} * {block}, n
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def small_content(i, size):
    """What WRITE_ALL puts in file i."""
    return (hashlib.sha256(b"%d" % i).digest() * (size // 32 + 1))[:size]


def big_sha256(seed, mib):
    blk = random.Random(seed).randbytes(BLOCK)
    h = hashlib.sha256()
    for _ in range(mib):
        h.update(blk)
    return h.hexdigest()


class RawClient(Client):
    """A kept-alive connection for the files API's octet-stream bodies (fastcreate.Client
    speaks JSON only)."""

    def raw(self, method, path, body=None):
        self.fresh()
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except BaseException:
            self.conn.close()
            raise
        self.last_used = time.monotonic()
        if resp.will_close:
            self.conn.close()
        return resp.status, data


def write_host_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:BLOCK]):]
        os.fchown(fd, OWNER, OWNER)
    finally:
        os.close(fd)


def read_host_file(path):
    with open(path, "rb") as f:
        return f.read()


class MountsBench:
    def __init__(self, args):
        self.args = args
        self.daemons = []
        self.rows = []          # (operation, mount ms list, files API ms list, host-only list)
        self.extra = []         # (what, mount value, baseline value, unit)
        self.tmp = None
        self.base = None        # under /var/tmp: --allow-mount, the share, the host-only dir

    # ---- plumbing ----
    def exec(self, code):
        status, res, ms = self.client.call("POST", f"/sandboxes/{self.sid}/exec",
                                           {"code": code, "timeout_ms": EXEC_TIMEOUT_MS})
        expect(status == 200 and res["exit_code"] == 0, f"exec {code[:80]!r}: {status} {res}")
        return res["stdout"], ms

    def put(self, path, data):
        status, body = self.files.raw("PUT", f"/sandboxes/{self.sid}/files?path={path}&mkdir=1",
                                      data)
        expect(status == 201, f"PUT /files {path}: {status} {body[:300]!r}")
        return body

    def get(self, path):
        status, body = self.files.raw("GET", f"/sandboxes/{self.sid}/files?path={path}")
        expect(status == 200, f"GET /files {path}: {status} {body[:300]!r}")
        return body

    def clean(self, guest_paths, host_paths):
        """Untimed: what a run left in the guest's overlay (tmpfs) and in the share."""
        if guest_paths:
            self.exec("import os, shutil\n"
                      f"for p in {guest_paths!r}:\n"
                      "    shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)")
        for p in host_paths:
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)

    @staticmethod
    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    # ---- one run of each row: (mount ms, files API ms) ----
    def small_in(self, r):
        a = self.args
        size = a.file_kib * 1024
        blobs = [os.urandom(size) for _ in range(a.files)]
        h = hashlib.sha256()
        for b in blobs:
            h.update(b)
        want = f"{size * a.files} {h.hexdigest()}"
        names = [f"f{i:04d}" for i in range(a.files)]
        host_dir = os.path.join(self.share, f"in-{r}")
        api_dir = f"{GUEST_HOME}/in-{r}"

        def mount():
            os.mkdir(host_dir)
            os.chown(host_dir, OWNER, OWNER)
            for name, b in zip(names, blobs):
                write_host_file(os.path.join(host_dir, name), b)
            out, _ = self.exec(READ_ALL.format(d=f"{GUEST_SHARE}/in-{r}"))
            expect(out.strip() == want, f"small in (mount): guest read {out.strip()}")

        def api():
            for name, b in zip(names, blobs):
                self.put(f"{api_dir}/{name}", b)
            out, _ = self.exec(READ_ALL.format(d=api_dir))
            expect(out.strip() == want, f"small in (files API): guest read {out.strip()}")

        ms = self.alternate(r, mount, api)
        self.clean([api_dir], [host_dir])
        return ms

    def small_out(self, r):
        a = self.args
        size = a.file_kib * 1024
        want = [small_content(i, size) for i in range(a.files)]
        names = [f"f{i:04d}" for i in range(a.files)]
        host_dir = os.path.join(self.share, f"out-{r}")
        api_dir = f"{GUEST_HOME}/out-{r}"
        def code(d):
            return WRITE_ALL.format(d=d, count=a.files, size=size, reps=size // 32 + 1)

        def mount():
            self.exec(code(f"{GUEST_SHARE}/out-{r}"))
            got = [read_host_file(os.path.join(host_dir, n)) for n in names]
            expect(got == want, "small out (mount): the host read other bytes")

        def api():
            self.exec(code(api_dir))
            got = [self.get(f"{api_dir}/{n}") for n in names]
            expect(got == want, "small out (files API): the host read other bytes")

        ms = self.alternate(r, mount, api)
        st = os.stat(os.path.join(host_dir, names[0]))
        expect((st.st_uid, st.st_gid) == (OWNER, OWNER),
               f"a guest-written file is owned by {st.st_uid}:{st.st_gid} on the host")
        self.clean([api_dir], [host_dir])
        return ms

    def big_in(self, r, blob, digest):
        host_path = os.path.join(self.share, f"big-in-{r}")
        api_path = f"{GUEST_HOME}/big-in-{r}"

        def mount():
            write_host_file(host_path, blob)
            out, _ = self.exec(READ_BIG.format(block=BLOCK, p=f"{GUEST_SHARE}/big-in-{r}"))
            expect(int(out) == len(blob), f"big in (mount): guest read {out.strip()} bytes")

        def api():
            got = json.loads(self.put(api_path, blob))
            expect(got["sha256"] == digest, f"big in (files API): PUT answered {got}")
            out, _ = self.exec(READ_BIG.format(block=BLOCK, p=api_path))
            expect(int(out) == len(blob), f"big in (files API): guest read {out.strip()} bytes")

        ms = self.alternate(r, mount, api)
        out, _ = self.exec(SHA256.format(p=f"{GUEST_SHARE}/big-in-{r}"))
        expect(out.strip() == digest, "big in (mount): sha256 in the guest differs")
        self.clean([api_path], [host_path])
        return ms

    def big_out(self, r):
        a = self.args
        seed = 20 + r
        digest = big_sha256(seed, a.mib)
        host_path = os.path.join(self.share, f"big-out-{r}")
        api_path = f"{GUEST_HOME}/big-out-{r}"
        got = {}

        def mount():
            self.exec(WRITE_BIG.format(seed=seed, block=BLOCK, mib=a.mib,
                                       p=f"{GUEST_SHARE}/big-out-{r}"))
            got["mount"] = read_host_file(host_path)

        def api():
            self.exec(WRITE_BIG.format(seed=seed, block=BLOCK, mib=a.mib, p=api_path))
            got["api"] = self.get(api_path)

        ms = self.alternate(r, mount, api)
        for k, v in got.items():
            expect(hashlib.sha256(v).hexdigest() == digest, f"big out ({k}): sha256 differs")
        got.clear()
        self.clean([api_path], [host_path])
        return ms

    def alternate(self, r, mount, api):
        """(mount ms, files API ms), the mount first in even runs."""
        if r % 2 == 0:
            m = self.timed(mount)
            return m, self.timed(api)
        f = self.timed(api)
        return self.timed(mount), f

    # ---- baselines ----
    def host_small(self, r):
        """The host-side half alone: the same files written and read back on the host."""
        a = self.args
        blobs = [os.urandom(a.file_kib * 1024) for _ in range(a.files)]
        d = os.path.join(self.hostonly, f"small-{r}")

        def run():
            os.mkdir(d)
            for i, b in enumerate(blobs):
                write_host_file(os.path.join(d, f"f{i:04d}"), b)
            for name in sorted(os.listdir(d)):
                read_host_file(os.path.join(d, name))
        ms = self.timed(run)
        shutil.rmtree(d)
        return ms

    def host_big(self, r, blob):
        p = os.path.join(self.hostonly, f"big-{r}")

        def run():
            write_host_file(p, blob)
            read_host_file(p)
        ms = self.timed(run)
        os.unlink(p)
        return ms

    def guest_dd(self):
        a = self.args
        res = {}
        for where in (GUEST_SHARE, GUEST_HOME):
            out, _ = self.exec(GUEST_DD.format(p=f"{where}/dd.bin", block=BLOCK, mib=a.mib))
            w, rd = (float(x) for x in out.split())
            res[where] = (w, rd)
        return res

    # ---- report ----
    def report(self, started):
        a = self.args
        h = self.health
        out = [f"# Mount benchmark, {started:%Y-%m-%d %H:%M}", "",
               f"{os.cpu_count()} CPUs ({self.cpu}), accelerator `{h['vmm']['accel']}`, "
               f"driver `{h['vmm']['driver']}` ({h['vmm']['description']}); load "
               f"{self.load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; VMs not this run's: "
               f"{self.foreign0} at start, {Bench.foreign_vmms([self.tmp])} at end. One `{PACK}` "
               f"sandbox (cold boot, 1 GiB, 512 MiB overlay) with an `rw` mount of a directory on "
               f"{self.share_fs} (guest: `9p {self.mount_options}`); {a.runs} runs per row, "
               "median ms (min-max).", "",
               "| operation | mount ms | files API ms | files API / mount | host only ms |",
               "|---|---:|---:|---:|---:|"]

        def cell(xs):
            return f"{percentile(xs, 0.5):.0f} ({min(xs):.0f}-{max(xs):.0f})"
        for what, m, f, host in self.rows:
            ratio = percentile(f, 0.5) / percentile(m, 0.5)
            out.append(f"| {what} | {cell(m)} | {cell(f)} | {ratio:.2f}x | "
                       f"{percentile(host, 0.5):.1f} |")
        out.append(f"| an exec that does nothing (`pass`), p50 of {len(self.empty)} | "
                   f"{percentile(self.empty, 0.5):.0f} | | | |")
        per = []
        for what, m, f, _ in self.rows:
            m50, f50 = percentile(m, 0.5), percentile(f, 0.5)
            if "MiB file" in what:
                per.append(f"{what}: mount {a.mib / m50 * 1000:.0f} MiB/s, files API "
                           f"{a.mib / f50 * 1000:.0f} MiB/s")
            else:
                per.append(f"{what}: mount {m50 / a.files:.2f} ms a file, files API "
                           f"{f50 / a.files:.2f} ms a file")
        out += ["", "End to end (medians): " + "; ".join(per) + "."]
        w_share, r_share = self.dd[GUEST_SHARE]
        w_home, r_home = self.dd[GUEST_HOME]
        mib = a.mib
        out += ["", f"Guest side alone (one exec, timed by the guest; write {mib} MiB in 1 MiB "
                f"writes + fsync, then read it back):", "",
                "| | the mount (virtio-9p) | the guest's /home/sandbox (tmpfs) |",
                "|---|---:|---:|",
                f"| write | {w_share:.0f} ms ({mib / w_share * 1000:.1f} MiB/s) | "
                f"{w_home:.0f} ms ({mib / w_home * 1000:.1f} MiB/s) |",
                f"| read | {r_share:.0f} ms ({mib / r_share * 1000:.1f} MiB/s) | "
                f"{r_home:.0f} ms ({mib / r_home * 1000:.1f} MiB/s) |",
                "",
                "Every row ends with the data used on the other side by the same code both ways "
                "(the guest reads what came in, the host reads what came out), so it includes "
                "one exec; \"host only\" is the host's half alone (no VM). A ratio above 1 means "
                "the mount is faster."]
        return "\n".join(out) + "\n"

    # ---- run ----
    def measure(self):
        a = self.args
        self.load0 = os.getloadavg()[0]
        self.foreign0 = Bench.foreign_vmms([self.tmp])
        with open("/proc/cpuinfo") as f:
            self.cpu = next((line.split(":", 1)[1].strip() for line in f
                             if line.startswith("model name")), "?")
        os.chmod(self.base, 0o755)
        allowed = os.path.join(self.base, "allowed")
        os.mkdir(allowed, 0o755)
        self.share = os.path.join(allowed, "share")
        os.mkdir(self.share, 0o755)
        os.chown(self.share, OWNER, OWNER)
        self.hostonly = os.path.join(self.base, "host-only")
        os.mkdir(self.hostonly, 0o700)
        self.share_fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.share],
                                       capture_output=True, text=True).stdout.strip() or "?"
        d = Daemon(self, "mounts", ["--no-snapshots", "--pool-size", "0",
                                    "--allow-mount", allowed])
        self.client = d.client
        self.files = RawClient(d.port, timeout=EXEC_TIMEOUT_MS / 1000)
        self.health = d.healthz()
        desc = self.health["vmm"]["description"]
        expect(os.geteuid() != 0 or "jailed: uid" in desc,
               f"the daemon's VMMs are not jailed: {desc}")
        log("create")
        status, sb, _ = self.client.call(
            "POST", "/sandboxes",
            {"language_pack": PACK, "memory_mib": 1024, "overlay_mib": 512,
             "mounts": [{"host": self.share, "guest": GUEST_SHARE, "mode": "rw"}]})
        expect(status == 201, f"create: {status} {sb}")
        self.sid = sb["id"]
        expect(sb.get("mounts") == [{"host": self.share, "guest": GUEST_SHARE, "mode": "rw",
                                     "uid": OWNER, "gid": OWNER}],
               f"the sandbox's mounts: {sb.get('mounts')}")
        # Also the guest's first python3 (a warm-up): the share must be the 9p mount measured.
        out, _ = self.exec("for line in open('/proc/mounts'):\n"
                           f"    if line.split()[1] == {GUEST_SHARE!r}: print(line, end='')")
        fields = out.split()
        expect(len(fields) >= 4 and fields[2] == "9p",
               f"{GUEST_SHARE} in the guest is not a 9p mount ({out.strip() or 'not mounted'}): "
               f"is the initramfs in --images older than the mount support? (make images)")
        self.mount_options = fields[3]
        self.empty = [self.exec("pass")[1] for _ in range(10)]
        kib, n = a.file_kib, a.files
        self.rows = [(f"{n} files of {kib} KiB into the guest", [], [], []),
                     (f"{n} files of {kib} KiB out of the guest", [], [], []),
                     (f"one {a.mib} MiB file into the guest", [], [], []),
                     (f"one {a.mib} MiB file out of the guest", [], [], [])]
        blob = os.urandom(a.mib * 2**20)
        digest = hashlib.sha256(blob).hexdigest()
        for r in range(a.runs):
            host_small = self.host_small(r)
            host_big = self.host_big(r, blob)
            runs = ((self.small_in, (r,), host_small), (self.small_out, (r,), host_small),
                    (self.big_in, (r, blob, digest), host_big), (self.big_out, (r,), host_big))
            for (what, mount_ms, api_ms, host_ms), (one_run, args, host) in zip(self.rows, runs):
                log(f"run {r + 1}/{a.runs}: {what}")
                m, f = one_run(*args)
                mount_ms.append(m)
                api_ms.append(f)
                host_ms.append(host)
        blob = None     # 100 MiB less while the guest side runs
        log("guest side")
        self.dd = self.guest_dd()
        self.files.close()
        status, body, _ = self.client.call("DELETE", f"/sandboxes/{self.sid}")
        expect(status == 204, f"delete: {status} {body}")

    def run(self):
        self.base = tempfile.mkdtemp(prefix="ebm-mounts.", dir="/var/tmp")
        try:
            return run_and_report(self, "mounts", "ebm.", self.measure, "-mounts")
        finally:
            # After run_and_report: the daemon and its VMMs are gone by then.
            shutil.rmtree(self.base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per row (median)")
    ap.add_argument("--files", type=int, default=1000, help="small files per run")
    ap.add_argument("--file-kib", type=int, default=4, help="size of a small file")
    ap.add_argument("--mib", type=int, default=100, help="size of the big file")
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--emberd", default=os.path.join(REPO, "bin", "emberd"))
    ap.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if not os.access(args.emberd, os.X_OK):
        sys.exit(f"mounts: {args.emberd} is missing: run `make`")
    if not os.path.exists(os.path.join(args.images, "packs.json")):
        sys.exit(f"mounts: no packs.json in {args.images}: run `make images`")
    if args.runs < 1 or args.files < 1 or args.file_kib < 1 or args.mib < 1:
        sys.exit("mounts: --runs, --files, --file-kib and --mib must be at least 1")
    try:
        return MountsBench(args).run()
    except KeyboardInterrupt:
        print("mounts: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
