#!/usr/bin/env python3
"""Picks the kernel modules the guest needs, with their dependency closure, for the initramfs.
Called by rootfs/build.sh: modules.py MODDIR LIST DEST (MODDIR = <kernel root>/lib/modules/<release>).
Never hard-codes a load order: the order is whatever depmod's modules.dep says, trimmed."""

import os
import shutil
import sys


def die(message):
    print(f"modules.py: {message}", file=sys.stderr)
    sys.exit(1)


def module_name(path):
    """kernel/drivers/char/hw_random/virtio-rng.ko[.xz] -> virtio_rng (the kernel's own spelling)."""
    base = os.path.basename(path)
    for suffix in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def read_list(path):
    names = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if len(line.split()) != 1:
                die(f"{path}:{lineno}: one module name per line, got `{line}`")
            names.append(line)
    if not names:
        die(f"{path}: lists no modules")
    return names


def read_modules_dep(path):
    """Returns {module path: [dependency paths]} in file order (depmod's modules.order order)."""
    deps = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            key, sep, rest = line.partition(":")
            if not sep or not key:
                die(f"{path}:{lineno}: not a modules.dep line: `{line}`")
            deps[key] = rest.split()
    return deps


def read_builtin(path):
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {module_name(line.strip()) for line in f if line.strip()}


def main(argv):
    if len(argv) != 4:
        die("usage: modules.py MODDIR LIST DEST")
    moddir, list_path, dest = argv[1:]
    dep_path = os.path.join(moddir, "modules.dep")
    if not os.path.exists(dep_path):
        die(f"{dep_path} is missing (run depmod -b <root> <release> first)")
    deps = read_modules_dep(dep_path)
    builtin = read_builtin(os.path.join(moddir, "modules.builtin"))

    by_name = {}
    for path in deps:
        by_name.setdefault(module_name(path), []).append(path)

    wanted = []
    for name in read_list(list_path):
        norm = module_name(name + ".ko")
        paths = by_name.get(norm, [])
        if len(paths) > 1:
            die(f"module `{name}` is ambiguous in {dep_path}: {' '.join(paths)}")
        if paths:
            wanted.append(paths[0])
        elif norm in builtin:
            print(f"{name}: built into the kernel, nothing to load")
        else:
            die(f"module `{name}` (from {list_path}) is neither in {dep_path} nor built in; "
                "check the spelling or the kernel config")

    closure = set()
    stack = list(wanted)
    while stack:
        path = stack.pop()
        if path in closure:
            continue
        if path not in deps:
            die(f"{dep_path}: `{path}` is a dependency but has no line of its own")
        closure.add(path)
        stack.extend(deps[path])

    os.makedirs(dest, exist_ok=True)
    lines = []
    for path in deps:  # keep depmod's order and line format
        if path not in closure:
            continue
        src = os.path.join(moddir, path)
        dst = os.path.join(dest, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o644)
        lines.append(f"{path}: {' '.join(deps[path])}".rstrip(" ") + "\n")
    with open(os.path.join(dest, "modules.dep"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    print(f"{len(closure)} modules: " + " ".join(sorted(module_name(p) for p in closure)))


if __name__ == "__main__":
    main(sys.argv)
