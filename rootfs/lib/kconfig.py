#!/usr/bin/env python3
"""Checks a kernel .config against the config fragment it was made from.
Called by rootfs/kernel/build-kernel.sh after `olddefconfig`:
  kconfig.py check FRAGMENT CONFIG
Kconfig silently drops what it cannot honour (a missing dependency, a typo, a renamed symbol), so
this never trusts the fragment: every `CONFIG_X=value` must be exactly that in CONFIG and every
`# CONFIG_X is not set` must be off there. Prints each mismatch and exits 1 when there is one."""

import re
import sys

SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse(path, fragment):
    """{symbol: value or None (off)} of a .config or a fragment. A fragment must not name a
    symbol twice (the last one would win silently) and may hold only comments otherwise."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            m = SET_RE.match(line)
            u = UNSET_RE.match(line)
            if m:
                name, value = m.group(1), m.group(2)
            elif u:
                name, value = u.group(1), None
            elif not line or line.startswith("#"):
                continue
            else:
                raise ValueError(f"{path}:{lineno}: not a Kconfig line: `{line}`")
            if fragment and name in values:
                raise ValueError(f"{path}:{lineno}: {name} appears twice")
            if fragment and value == "n":
                raise ValueError(f"{path}:{lineno}: write `# {name} is not set`, not `{name}=n`")
            values[name] = value
    return values


def mismatches(fragment, config):
    problems = []
    for name, want in fragment.items():
        got = config.get(name)
        if want is None:
            if got is not None:
                problems.append(f"{name}: asked off, is {name}={got}")
        elif got is None:
            problems.append(f"{name}: asked {want}, is off or unknown (missing dependency or typo?)")
        elif got != want:
            problems.append(f"{name}: asked {want}, is {got}")
    return problems


def main(argv):
    if len(argv) != 4 or argv[1] != "check":
        print("usage: kconfig.py check FRAGMENT CONFIG", file=sys.stderr)
        return 2
    try:
        fragment = parse(argv[2], fragment=True)
        config = parse(argv[3], fragment=False)
    except (OSError, ValueError) as e:
        print(f"kconfig.py: {e}", file=sys.stderr)
        return 1
    problems = mismatches(fragment, config)
    for p in problems:
        print(f"kconfig.py: {p}", file=sys.stderr)
    if problems:
        print(f"kconfig.py: {len(problems)} of {len(fragment)} options in {argv[2]} did not take",
              file=sys.stderr)
        return 1
    enabled = sum(1 for v in fragment.values() if v is not None)
    print(f"{enabled} options on and {len(fragment) - enabled} off as asked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
