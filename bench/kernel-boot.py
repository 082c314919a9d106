#!/usr/bin/env python3
"""Boot time of the guest kernels: QEMU process start -> the agent's READY (what ember-vm prints as
`ready in N ms`), for emberd's minimal kernel and Debian's stock kernel (the same-run baseline),
each as a bzImage and through its PVH entry (the ELF vmlinux given to QEMU's -kernel).
Runs are interleaved round-robin so drift on the host hits every variant alike.
Usage: bench/kernel-boot.py [--runs N] [--images DIR] [--pack NAME] [--variants a,b,...]
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


def make_images(images, tmp, name):
    bzimage, release_file = VARIANTS[name]
    d = os.path.join(tmp, name)
    os.mkdir(d)
    for entry in ("initramfs.cpio.gz", "packs", "kernel"):
        os.symlink(os.path.join(images, entry), os.path.join(d, entry))
    with open(os.path.join(images, "packs.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    with open(os.path.join(images, release_file), encoding="utf-8") as f:
        release = f.read().strip()
    vmlinux = os.path.join(os.path.dirname(release_file), "vmlinux")
    manifest["kernel"] = {"bzimage": bzimage, "vmlinux": vmlinux, "release": release}
    with open(os.path.join(d, "packs.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return d


def boot_once(ember_vm, images, pack):
    script = {"steps": [{"exec": {"code": CODE.get(pack, SHELL_CODE)}}]}
    proc = subprocess.run([ember_vm, "--images", images, "--pack", pack],
                          input=json.dumps(script), capture_output=True, text=True, timeout=300)
    m = re.search(r"ready in (\d+) ms \(guest uptime (\d+) ms\)", proc.stderr)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"ember-vm failed on {images}:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)["results"][0]
    if result.get("stdout") != "42\n":
        raise RuntimeError(f"unexpected exec result on {images}: {result}")
    return int(m.group(1)), int(m.group(2)), result["duration_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", default=os.environ.get("IMAGES_DIR", "/var/lib/emberd/images"))
    ap.add_argument("--pack", default="python")
    ap.add_argument("--ember-vm", default=os.path.join(REPO, "bin", "ember-vm"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    names = [n for n in args.variants.split(",") if n]
    for n in names:
        if n not in VARIANTS:
            sys.exit(f"unknown variant `{n}` (known: {', '.join(VARIANTS)})")
    tmp = tempfile.mkdtemp(prefix="emberd-bench-kernel-")
    try:
        dirs = {n: make_images(args.images, tmp, n) for n in names}
        samples = {n: [] for n in names}
        for i in range(args.runs):
            for n in names:
                samples[n].append(boot_once(args.ember_vm, dirs[n], args.pack))
            print(f"round {i + 1}/{args.runs}: " + "  ".join(
                f"{n} {samples[n][-1][0]} ms" for n in names), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

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


if __name__ == "__main__":
    main()
