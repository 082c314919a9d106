#!/usr/bin/env python3
"""Boot time of the guest kernels: QEMU process start -> the agent's READY (what ember-vm prints as
`ready in N ms`), for emberd's minimal kernel and Debian's stock kernel (the same-run baseline),
each as a bzImage and through its PVH entry (the ELF vmlinux given to QEMU's -kernel).
Runs are interleaved round-robin so drift on the host hits every variant alike.
Usage: bench/kernel-boot.py [--runs N] [--images DIR] [--pack NAME] [--variants a,b,...]
                            [--extra NAME=OUT_DIR ...] [--exec-bench] [--smoke]
--extra adds a kernel built elsewhere (build-kernel.sh's OUT_DIR: bzImage, vmlinux, release) as
variant NAME, booted as a bzImage; NAME-pvh boots its vmlinux. --exec-bench (python pack) runs,
in the same VM after the first exec, a warm syscall-heavy exec (10000 open/read/close of a file)
and a spawn loop (50 fork+exec of /bin/true), and reports p50/p90 of each. --smoke boots every
variant once and runs python and a shell command in it (plus its CPU vulnerability report).
Needs `make images` (both kernels) and bin/ember-vm. Never changes IMAGES_DIR: each variant
boots from a private directory of symlinks with its own packs.json."""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: (bzimage path relative to IMAGES_DIR, release file)
VARIANTS = {
    "stock": ("kernel/vmlinuz", "kernel/release"),
    "stock-pvh": ("kernel/vmlinux", "kernel/release"),
    "minimal": ("kernel/minimal/bzImage", "kernel/minimal/release"),
    "minimal-pvh": ("kernel/minimal/vmlinux", "kernel/minimal/release"),
}
BASELINE = "stock"
# The first exec prints 42: `print(6*7)` for python, a shell expression for any other pack.
CODE = {"python": "print(6*7)"}
SHELL_CODE = "echo $((6*7))"
# --exec-bench: warm execs after the first one, each printing its own guest-side time in ms
# (perf_counter around the loop) so the interpreter's start-up is not in the number.
EXEC_BENCH = {
    "files": """import os, time
t = time.perf_counter()
for _ in range(10000):
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    os.read(fd, 4096)
    os.close(fd)
print(round((time.perf_counter() - t) * 1000, 1))""",
    "spawn": """import subprocess, time
t = time.perf_counter()
for _ in range(50):
    subprocess.run(["/bin/true"], check=True)
print(round((time.perf_counter() - t) * 1000, 1))""",
}
SMOKE_PY = """import os, platform
print(platform.release(), open("/proc/cmdline").read().strip())
cpu = ("vendor_id", "model name", "cpu family")
print([l.strip() for l in open("/proc/cpuinfo") if l.startswith(cpu)][:3])
d = "/sys/devices/system/cpu/vulnerabilities"
for n in sorted(os.listdir(d)):
    print(n, "=", open(os.path.join(d, n)).read().strip())
# KASLR moves the kernel's physical load address (readable as root): differs between boots.
print("uid", os.getuid(), [l.strip() for l in open("/proc/iomem") if "Kernel code" in l])
print(6*7)"""


def make_images(images, tmp, name):
    bzimage, release_file = VARIANTS[name]
    d = os.path.join(tmp, name)
    os.mkdir(d)
    for entry in ("initramfs.cpio.gz", "packs"):
        os.symlink(os.path.join(images, entry), os.path.join(d, entry))
    if name in EXTRA:
        # An --extra kernel: kernel/ is its OUT_DIR (bzImage, vmlinux, release).
        os.symlink(EXTRA[name], os.path.join(d, "kernel"))
    else:
        os.symlink(os.path.join(images, "kernel"), os.path.join(d, "kernel"))
    with open(os.path.join(images, "packs.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    with open(os.path.join(d, release_file), encoding="utf-8") as f:
        release = f.read().strip()
    vmlinux = os.path.join(os.path.dirname(release_file), "vmlinux")
    manifest["kernel"] = {"bzimage": bzimage, "vmlinux": vmlinux, "release": release}
    with open(os.path.join(d, "packs.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return d


EXTRA = {}  # --extra: variant name -> OUT_DIR


def boot_once(ember_vm, images, pack, exec_bench=False):
    steps = [{"exec": {"code": CODE.get(pack, SHELL_CODE)}}]
    if exec_bench:
        steps += [{"exec": {"code": code, "timeout_ms": 120000}} for code in EXEC_BENCH.values()]
    proc = subprocess.run([ember_vm, "--images", images, "--pack", pack],
                          input=json.dumps({"steps": steps}), capture_output=True, text=True,
                          timeout=300)
    m = re.search(r"ready in (\d+) ms \(guest uptime (\d+) ms\)", proc.stderr)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"ember-vm failed on {images}:\n{proc.stderr[-3000:]}")
    results = json.loads(proc.stdout)["results"]
    if results[0].get("stdout") != "42\n":
        raise RuntimeError(f"unexpected exec result on {images}: {results[0]}")
    sample = [int(m.group(1)), int(m.group(2)), results[0]["duration_ms"]]
    for r in results[1:]:
        if r.get("exit_code", 0) != 0 or not r.get("stdout"):
            raise RuntimeError(f"exec bench failed on {images}: {r}")
        sample.append(float(r["stdout"]))
    return tuple(sample)


def smoke(ember_vm, images, name):
    steps = [{"exec": {"code": SMOKE_PY}}]
    proc = subprocess.run([ember_vm, "--images", images, "--pack", "python"],
                          input=json.dumps({"steps": steps}), capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"ember-vm (python) failed on {images}:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout)["results"][0]
    shell_steps = [{"exec": {"code": "uname -r; echo $((6*7))"}}]
    proc2 = subprocess.run([ember_vm, "--images", images, "--pack", "shell"],
                           input=json.dumps({"steps": shell_steps}),
                           capture_output=True, text=True, timeout=300)
    out2 = json.loads(proc2.stdout)["results"][0] if proc2.returncode == 0 else proc2.stderr[-2000:]
    print(f"== {name}\npython: {json.dumps(out)}\nshell: {json.dumps(out2)}")
    ok = (out.get("stdout", "").endswith("42\n") and isinstance(out2, dict)
          and out2.get("stdout", "").endswith("42\n"))
    return ok


def pct(values, q):
    """Nearest-rank percentile (q in 0..100)."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, -(-len(v) * q // 100) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--pack", default="python")
    ap.add_argument("--ember-vm", default=os.path.join(REPO, "bin", "ember-vm"))
    ap.add_argument("--variants", default=None)
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=OUT_DIR")
    ap.add_argument("--exec-bench", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--baseline", default=BASELINE)
    args = ap.parse_args()
    for e in args.extra:
        name, _, out = e.partition("=")
        if not name or not os.path.isfile(os.path.join(out, "bzImage")):
            sys.exit(f"--extra {e}: want NAME=OUT_DIR with OUT_DIR/bzImage")
        EXTRA[name] = EXTRA[name + "-pvh"] = os.path.abspath(out)
        VARIANTS[name] = ("kernel/bzImage", "kernel/release")
        VARIANTS[name + "-pvh"] = ("kernel/vmlinux", "kernel/release")
    if args.variants is None:
        args.variants = ",".join(n for n in VARIANTS if not (n in EXTRA and n.endswith("-pvh")))
    names = [n for n in args.variants.split(",") if n]
    for n in names:
        if n not in VARIANTS:
            sys.exit(f"unknown variant `{n}` (known: {', '.join(VARIANTS)})")
    tmp = tempfile.mkdtemp(prefix="emberd-bench-kernel-")
    try:
        dirs = {n: make_images(args.images, tmp, n) for n in names}
        if args.smoke:
            bad = [n for n in names if not smoke(args.ember_vm, dirs[n], n)]
            if bad:
                sys.exit(f"smoke failed: {', '.join(bad)}")
            return
        samples = {n: [] for n in names}
        for i in range(args.runs):
            # Rotate the order each round so no variant always boots first (or after the same one).
            order = names[i % len(names):] + names[:i % len(names)]
            for n in order:
                samples[n].append(boot_once(args.ember_vm, dirs[n], args.pack, args.exec_bench))
            print(f"round {i + 1}/{args.runs}: " + "  ".join(
                f"{n} {samples[n][-1][0]} ms" + (
                    f" (files {samples[n][-1][3]:.0f}, spawn {samples[n][-1][4]:.0f})"
                    if args.exec_bench else "") for n in names), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.exec_bench:
        report_percentiles(names, samples, args)
        return

    def med(n, k):
        return statistics.median(s[k] for s in samples[n])

    base = med(BASELINE, 0) if BASELINE in samples else None
    print(f"kernel boot, pack {args.pack}, {args.runs} runs each, medians (min-max) in ms")
    print(f"{'variant':<12} {'QEMU start->READY':>22} {'guest uptime@READY':>19} "
          f"{'first exec':>11} {'vs ' + BASELINE:>9}")
    for n in names:
        ready = [s[0] for s in samples[n]]
        speed = f"{base / med(n, 0):.2f}x" if base else "-"
        print(f"{n:<12} {med(n, 0):>9.0f} ({min(ready):>4}-{max(ready):>4})   "
              f"{med(n, 1):>19.0f} {med(n, 2):>11.0f} {speed:>9}")


def report_percentiles(names, samples, args):
    cols = [("QEMU start->READY", 0), ("uptime@READY", 1), ("first exec", 2),
            ("files x10000", 3), ("spawn x50", 4)]
    base = args.baseline if args.baseline in samples else names[0]
    print(f"kernel boot + exec, pack {args.pack}, {args.runs} runs each, p50 / p90 in ms; "
          f"deltas are p50 vs {base}")
    print(f"{'variant':<16}" + "".join(f"{c:>26}" for c, _ in cols))
    for n in names:
        row = f"{n:<16}"
        for _, k in cols:
            v = [s[k] for s in samples[n]]
            b = statistics.median(s[k] for s in samples[base])
            p50 = statistics.median(v)
            row += f"{p50:>9.0f} /{pct(v, 90):>6.0f} ({(p50 / b - 1) * 100:+5.1f}%)"
        print(row)
    print("raw: " + json.dumps(samples))


if __name__ == "__main__":
    main()
