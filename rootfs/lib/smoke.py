#!/usr/bin/env python3
"""Boots a candidate pack image in a real VM, runs one piece of code and compares its stdout.
Called before a pack is published: by rootfs/lib/packctl.py (`emberctl pack import`) and by
rootfs/build.sh for the built-in packs. Never writes into IMAGES_DIR: the VM boots from a staging
directory (in $TMPDIR) of symlinks to IMAGES_DIR's kernel and initramfs plus the candidate image.

  smoke.py --images IMAGES_DIR --entry ENTRY.json --squashfs FILE --code CODE --stdout EXPECTED

ENTRY.json is the candidate's packs.json entry (its `image` names where the staging directory puts
FILE; its sha256 must be FILE's). Exit 0 when the code's stdout is EXPECTED and it exited 0; else a
message with what was expected and what came, the exit code and stderr's tail, and exit 1.
ember-vm is $EMBER_VM, else bin/ember-vm of this checkout."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import manifest

HERE = os.path.dirname(os.path.abspath(__file__))
# A cold boot under TCG takes seconds; a busy 2-core machine makes that tens of seconds.
VM_TIMEOUT_S = 600
STDERR_TAIL = 1500


class SmokeError(Exception):
    pass


def find_ember_vm():
    path = os.environ.get("EMBER_VM") or os.path.join(HERE, "..", "..", "bin", "ember-vm")
    path = os.path.normpath(path)
    if not os.access(path, os.X_OK):
        raise SmokeError(f"ember-vm not found at {path} (build it with `make`, or set EMBER_VM)")
    return path


def safe_relative(path, what):
    parts = path.split("/") if isinstance(path, str) else [""]
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise SmokeError(f"{what} `{path}` is not a plain relative path")
    return path


def link(staging, rel, target):
    dest = os.path.join(staging, safe_relative(rel, "path"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.symlink(os.path.abspath(target), dest)


def stage(images_dir, entry, squashfs, staging, boot=None):
    """Fills staging with the kernel, vmlinux and initramfs of images_dir's packs.json (or those
    boot names: {"kernel": {...}, "initramfs": ...} in packs.json's form, for a build that has no
    packs.json yet), the candidate image and a packs.json listing only the candidate."""
    if boot is not None:
        manifest = dict(boot, version=1)
    else:
        with open(os.path.join(images_dir, "packs.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    kernel = manifest["kernel"]
    for rel in (kernel["bzimage"], kernel["vmlinux"], manifest["initramfs"]):
        src = os.path.join(images_dir, safe_relative(rel, "packs.json path"))
        if not os.path.exists(src):
            raise SmokeError(f"{src} is missing (named by {images_dir}/packs.json)")
        link(staging, rel, src)
    link(staging, entry["image"], squashfs)
    staged = dict(manifest)
    staged["packs"] = [entry]
    with open(os.path.join(staging, "packs.json"), "w", encoding="utf-8") as f:
        json.dump(staged, f, indent=2)


def run_vm(ember_vm, staging, name, code):
    script = json.dumps({"steps": [{"exec": {"code": code}}]})
    try:
        proc = subprocess.run([ember_vm, "--images", staging, "--pack", name], input=script,
                              capture_output=True, text=True, timeout=VM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SmokeError(f"ember-vm did not finish within {VM_TIMEOUT_S} s") from None
    tail = proc.stderr[-STDERR_TAIL:].rstrip()
    try:
        out = json.loads(proc.stdout)
        result = out["results"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise SmokeError(f"the VM did not run the code (ember-vm exit {proc.returncode}); "
                         f"ember-vm's stderr:\n{tail}") from None
    return out, result


def smoke(images_dir, entry_path, squashfs, code, expected, boot=None):
    with open(entry_path, encoding="utf-8") as f:
        entry = json.load(f)
    name = entry["name"]
    got_sha = manifest.sha_file(squashfs)
    if entry.get("sha256") != got_sha:
        raise SmokeError(f"{entry_path} says sha256 {entry.get('sha256')}, "
                         f"{squashfs} has {got_sha}")
    ember_vm = find_ember_vm()
    staging = tempfile.mkdtemp(prefix="ember-smoke.")
    try:
        stage(images_dir, entry, squashfs, staging, boot)
        out, result = run_vm(ember_vm, staging, name, code)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stdout = result.get("stdout", "")
    if result.get("stdout_encoding") not in (None, "utf-8"):
        stdout = f"<{result.get('stdout_len')} bytes, not UTF-8>"
    if stdout == expected and result.get("exit_code") == 0 and not result.get("timed_out"):
        return out, result
    stderr = str(result.get("stderr", ""))[-STDERR_TAIL:]
    raise SmokeError(
        f"pack `{name}`: smoke test failed\n"
        f"  code:      {json.dumps(code)}\n"
        f"  expected:  {json.dumps(expected)}\n"
        f"  got:       {json.dumps(stdout)}\n"
        f"  exit code: {result.get('exit_code')} (signal {result.get('signal', 0)}"
        f"{', timed out' if result.get('timed_out') else ''})\n"
        f"  stderr tail:\n" + "".join(f"    {line}\n" for line in stderr.splitlines()))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="smoke.py", description="Boot a candidate pack image and check one exec's stdout.")
    ap.add_argument("--images", required=True, help="images directory (kernel, initramfs)")
    ap.add_argument("--entry", required=True, help="the candidate's packs.json entry (a file)")
    ap.add_argument("--squashfs", required=True, help="the candidate image")
    ap.add_argument("--code", required=True, help="code to run with the pack's interpreter")
    ap.add_argument("--stdout", required=True, help="its expected stdout, exactly")
    ap.add_argument("--bzimage", help="kernel bzImage relative to IMAGES_DIR (with --vmlinux, "
                    "--initramfs and --release: instead of what IMAGES_DIR/packs.json names)")
    ap.add_argument("--vmlinux", help="its ELF, relative to IMAGES_DIR")
    ap.add_argument("--initramfs", help="initramfs, relative to IMAGES_DIR")
    ap.add_argument("--release", help="the kernel's release")
    args = ap.parse_args(argv)
    boot_args = (args.bzimage, args.vmlinux, args.initramfs, args.release)
    boot = None
    if any(boot_args):
        if not all(boot_args):
            ap.error("--bzimage, --vmlinux, --initramfs and --release go together")
        boot = {"kernel": {"bzimage": args.bzimage, "vmlinux": args.vmlinux,
                           "release": args.release}, "initramfs": args.initramfs}
    try:
        out, result = smoke(args.images, args.entry, args.squashfs, args.code, args.stdout, boot)
    except (SmokeError, OSError, ValueError, KeyError) as e:
        print(f"smoke: {e}", file=sys.stderr)
        return 1
    print(f"smoke: ok (boot {out.get('boot_ms')} ms, exec {result.get('duration_ms')} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
