#!/usr/bin/env python3
"""Import cycles between the top-level modules of each host crate.

A module A imports B when any file of A names `crate::B`. Prints each crate's
modules that sit on a cycle (none, ideally) and exits 1 if there are any.

usage: scripts/cycles.py
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["host/media/src", "host/engine/src", "host/server/src", "host/src"]


def modules(src):
    names = []
    for entry in sorted(os.listdir(src)):
        path = os.path.join(src, entry)
        if os.path.isdir(path) and entry != "bin":
            names.append(entry)
        elif entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            names.append(entry[:-3])
    return names


def imports(src, mods):
    graph = {m: set() for m in mods}
    for m in mods:
        path = os.path.join(src, m)
        files = []
        if os.path.isdir(path):
            for d, _, fs in os.walk(path):
                files += [os.path.join(d, f) for f in fs if f.endswith(".rs")]
        else:
            files = [path + ".rs"]
        for f in files:
            with open(f) as fh:
                for target in re.findall(r"crate::([a-z_]+)", fh.read()):
                    if target in graph and target != m:
                        graph[m].add(target)
    return graph


def on_cycle(graph, start):
    seen, stack = set(), [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def main():
    found = 0
    for crate in CRATES:
        src = os.path.join(ROOT, crate)
        graph = imports(src, modules(src))
        cyclic = [m for m in graph if on_cycle(graph, m)]
        found += len(cyclic)
        print(f"{crate}: {len(graph)} modules, on a cycle: {', '.join(cyclic) or 'none'}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
