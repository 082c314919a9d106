#!/usr/bin/env python3
"""Validates pack definitions (rootfs/packs/<name>/pack.json) and writes the packs.json manifest.
Called by rootfs/build.sh only:
  manifest.py check PACK_DIR            validate; print the interpreter argv as one JSON line
  manifest.py write OUT BZIMAGE VMLINUX RELEASE NAME=SHA256 ...
                                        merge pack.json files with built-image facts; BZIMAGE and
                                        VMLINUX are the kernel's paths relative to OUT's directory
Never reads or hashes images itself: the caller vouches for the hashes it passes."""

import json
import os
import re
import sys

MANIFEST_VERSION = 1
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Sanity bounds that catch typos (ms vs s, bytes vs MiB); the daemon enforces its own limits.
DEFAULT_BOUNDS = {
    "exec_timeout_ms": (1, 3_600_000),
    "output_limit_bytes": (1, 1 << 30),
    "memory_mib": (64, 65536),
    "vcpus": (1, 64),
    "overlay_mib": (1, 65536),
}
PACK_KEYS = ("name", "interpreter", "description", "defaults")


class PackError(Exception):
    pass


def strict_object(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise PackError(f"duplicate key `{key}`")
        obj[key] = value
    return obj


def reject_constant(name):
    raise PackError(f"`{name}` is not JSON")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def load_pack(pack_dir):
    """Returns the validated pack.json of pack_dir, or raises PackError naming file and field."""
    path = os.path.join(pack_dir, "pack.json")
    dir_name = os.path.basename(os.path.normpath(pack_dir))

    def bad(field, message):
        return PackError(f"{path}: field `{field}`: {message}")

    try:
        with open(path, encoding="utf-8") as f:
            pack = json.load(f, object_pairs_hook=strict_object, parse_constant=reject_constant)
    except OSError as e:
        raise PackError(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, PackError) as e:
        raise PackError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(pack, dict):
        raise PackError(f"{path}: must be a JSON object")
    unknown = sorted(set(pack) - set(PACK_KEYS))
    if unknown:
        raise bad(unknown[0], f"unknown key (allowed: {', '.join(PACK_KEYS)})")
    for key in PACK_KEYS:
        if key not in pack:
            raise bad(key, "missing")

    name = pack["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad("name", f"must match {NAME_RE.pattern}, got {json.dumps(name)}")
    if name != dir_name:
        raise bad("name", f"is `{name}` but the directory is `{dir_name}`")

    argv = pack["interpreter"]
    if not isinstance(argv, list) or not argv or len(argv) > 16:
        raise bad("interpreter", "must be a non-empty array of at most 16 strings")
    for i, arg in enumerate(argv):
        if not isinstance(arg, str) or not arg or "\0" in arg or len(arg) > 256:
            raise bad(f"interpreter[{i}]", "must be a non-empty string without NUL, <= 256 bytes")
    if not argv[0].startswith("/"):
        raise bad("interpreter[0]", f"must be an absolute path, got `{argv[0]}`")

    desc = pack["description"]
    if not isinstance(desc, str) or not desc.strip() or len(desc) > 200 or "\n" in desc:
        raise bad("description", "must be one non-empty line of at most 200 characters")

    defaults = pack["defaults"]
    if not isinstance(defaults, dict):
        raise bad("defaults", "must be an object")
    unknown = sorted(set(defaults) - set(DEFAULT_BOUNDS))
    if unknown:
        raise bad(f"defaults.{unknown[0]}", f"unknown key (allowed: {', '.join(DEFAULT_BOUNDS)})")
    for key, (low, high) in DEFAULT_BOUNDS.items():
        if key not in defaults:
            raise bad(f"defaults.{key}", "missing")
        value = defaults[key]
        if not is_int(value) or not low <= value <= high:
            raise bad(f"defaults.{key}", f"must be an integer in {low}..{high}, got {json.dumps(value)}")
    return pack


def cmd_check(pack_dir):
    pack = load_pack(pack_dir)
    print(json.dumps(pack["interpreter"]))


def check_relative(what, path):
    if (not re.fullmatch(r"[A-Za-z0-9._/-]{1,255}", path) or path.startswith("/")
            or any(part in ("", ".", "..") for part in path.split("/"))):
        raise PackError(f"bad {what} path `{path}` (want a plain path relative to IMAGES_DIR)")


def cmd_write(out, kernel, pack_args, packs_root):
    bzimage, vmlinux, release = kernel
    check_relative("bzImage", bzimage)
    check_relative("vmlinux", vmlinux)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", release):
        raise PackError(f"bad kernel release `{release}`")
    packs = []
    for arg in pack_args:
        name, sep, sha = arg.partition("=")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise PackError(f"bad pack argument `{arg}` (want NAME=SHA256)")
        pack = load_pack(os.path.join(packs_root, name))
        packs.append({
            "name": pack["name"],
            "image": f"packs/{name}.squashfs",
            "sha256": sha,
            "interpreter": pack["interpreter"],
            "description": pack["description"],
            "defaults": {key: pack["defaults"][key] for key in DEFAULT_BOUNDS},
        })
    if not packs:
        raise PackError("no pack images to list")
    packs.sort(key=lambda p: p["name"])
    manifest = {
        "version": MANIFEST_VERSION,
        "kernel": {"bzimage": bzimage, "vmlinux": vmlinux, "release": release},
        "initramfs": "initramfs.cpio.gz",
        "packs": packs,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    try:
        with open(out, encoding="utf-8") as f:
            if f.read() == text:
                print("unchanged")
                return
    except FileNotFoundError:
        pass
    tmp = f"{out}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print("written")


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "check":
            cmd_check(argv[2])
        elif len(argv) >= 6 and argv[1] == "write":
            packs_root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packs")
            cmd_write(argv[2], argv[3:6], argv[6:], os.path.normpath(packs_root))
        else:
            raise PackError("usage: manifest.py check PACK_DIR | "
                            "write OUT BZIMAGE VMLINUX RELEASE NAME=SHA256...")
    except PackError as e:
        print(f"manifest.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
