#!/usr/bin/python3
"""Source rules a compiler cannot check (make lint; part of make test).

1. Waits: no raw pthread_cond_timedwait / pthread_cond_init / usleep / nanosleep outside
   src/util (util/sync.h has the one monotonic condition wait and the one bounded sleep; a copied
   wait loop on the wrong clock once made every exec spin a CPU core).
2. Ownership: a `<module>_internal.h` header is included by `<module>.c` alone (exceptions in
   INTERNAL_USERS, each with its reason).
3. No include cycle among the project's headers; and the warm pool stays a leaf of src/sandbox:
   pool.c/pool.h include no sandbox header but the catalog's (the manager hands it an ops
   table; the pool never reaches back into the manager).
4. Host functions stay under MAX_FUNCTION_LINES lines (brace-delimited bodies at column 0).
Prints every violation as file:line: message and exits 1 when there is one.
"""
import os
import re
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MAX_FUNCTION_LINES = 80
HOST_DIRS = ["src/api", "src/sandbox", "src/vmm", "src/channel", "src/client", "src/net", "src/util",
             "src/proto", "cmd/emberd", "cmd/emberctl", "cmd/ember-vm"]
# Internal headers shared by more than their module's own .c: restart recovery is part of the
# manager (it rebuilds the manager's table), so it may see the manager's structs.
INTERNAL_USERS = {"manager_internal.h": {"manager.c", "recover.c"}}
# Modules of src/sandbox that depend on nothing of it but these (catalogdiff: pure comparisons of
# catalogs, which the pool uses to keep its clones of packs a reload left unchanged).
LEAF_MODULES = {"pool": {"catalog", "catalogdiff"}}
RAW_WAITS = re.compile(r"\b(pthread_cond_timedwait|pthread_cond_init|usleep|nanosleep)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(dirs, exts=(".c", ".h")):
    for d in dirs:
        full = os.path.join(REPO, d)
        if not os.path.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            if name.endswith(exts):
                yield os.path.join(d, name)


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read().split("\n")


def strip_comment(line):
    return re.sub(r"/\*.*?\*/|//.*$", "", line)


def check_waits(problems):
    for path in sources(["src/" + d for d in os.listdir(os.path.join(REPO, "src"))] + [
            "cmd/" + d for d in os.listdir(os.path.join(REPO, "cmd"))]):
        if path.startswith("src/util/"):
            continue
        for n, line in enumerate(read(path), 1):
            m = RAW_WAITS.search(strip_comment(line))
            if m:
                problems.append(f"{path}:{n}: raw {m.group(1)}(): use util/sync.h "
                                "(cond_init_monotonic, cond_wait_until, sleep_ms) or wait on "
                                "the event itself")


def includes(path):
    return [(n, m.group(1)) for n, line in enumerate(read(path), 1)
            if (m := INCLUDE.match(line))]


def check_internal_headers(problems):
    for path in sources(["src/" + d for d in os.listdir(os.path.join(REPO, "src"))]):
        for n, inc in includes(path):
            base = os.path.basename(inc)
            if not base.endswith("_internal.h"):
                continue
            owners = INTERNAL_USERS.get(base, {base[:-len("_internal.h")] + ".c"})
            if os.path.basename(path) not in owners and os.path.basename(path) != base:
                problems.append(f"{path}:{n}: includes {inc}, which only "
                                f"{' and '.join(sorted(owners))} may include (go through "
                                "the module's interface)")


def find_cycle(graph):
    """Returns one cycle (a list of nodes) in graph {node: set(nodes)}, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def check_cycles(problems):
    headers = {}
    for path in sources(["src/" + d for d in os.listdir(os.path.join(REPO, "src"))], (".h",)):
        headers[path[len("src/"):]] = {inc for _, inc in includes(path)}
    cycle = find_cycle(headers)
    if cycle:
        problems.append("src: header include cycle: " + " -> ".join(cycle))
    for path in sources(["src/sandbox"]):
        mod = os.path.splitext(os.path.basename(path))[0]
        allowed = LEAF_MODULES.get(mod)
        if allowed is None:
            continue
        for n, inc in includes(path):
            dep = os.path.splitext(os.path.basename(inc))[0]
            if inc.startswith("sandbox/") and dep != mod and dep not in allowed:
                problems.append(f"{path}:{n}: the {mod} module includes {inc}; it may use "
                                f"only {', '.join(sorted(allowed))} (its owner calls it "
                                "through its interface, never the other way round)")


def check_function_lengths(problems):
    for path in sources(HOST_DIRS, (".c",)):
        lines = read(path)
        start = None
        for i, line in enumerate(lines):
            if line == "{":
                start = i
            elif line == "}" and start is not None:
                length = i - start + 1
                if length > MAX_FUNCTION_LINES:
                    j = start - 1
                    while j > 0 and "(" not in lines[j]:
                        j -= 1
                    m = re.search(r"(\w+)\s*\(", lines[j])
                    name = m.group(1) if m else "?"
                    problems.append(f"{path}:{start + 1}: {name}() is {length} lines "
                                    f"(host functions stay under {MAX_FUNCTION_LINES}: split "
                                    "it into phases)")
                start = None


def main():
    problems = []
    check_waits(problems)
    check_internal_headers(problems)
    check_cycles(problems)
    check_function_lengths(problems)
    for p in problems:
        print(p)
    print(f"lint: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
