#!/usr/bin/env python3
"""The longest functions of the host (not counting #[cfg(test)] modules), and
its lines of Rust per crate.

usage: scripts/longest.py [ROOT] [N]   (ROOT defaults to the repository)
"""
import os
import re
import sys

FN = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?(unsafe )?fn (\w+)")


def rust_files(root):
    for d, dirs, files in os.walk(os.path.join(root, "host")):
        dirs[:] = [x for x in dirs if x != "target"]
        for f in files:
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def functions(path):
    with open(path) as fh:
        lines = fh.read().split("\n")
    test_from = next((i for i, l in enumerate(lines) if l.startswith("mod tests") or l.startswith("#[cfg(test)]")), len(lines))
    for i, line in enumerate(lines[:test_from]):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        end = indent = m.group(1)
        for j in range(i + 1, test_from):
            if lines[j] == indent + "}":
                yield m.group(7), j - i + 1
                break


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    found, per_crate = [], {}
    for path in rust_files(root):
        rel = os.path.relpath(path, root)
        parts = rel.split(os.sep)
        crate = "/".join(parts[:2]) if parts[1] != "src" else "host"
        with open(path) as fh:
            per_crate[crate] = per_crate.get(crate, 0) + sum(1 for _ in fh)
        found += [(length, f"{rel}: {name}") for name, length in functions(path)]
    for crate, count in sorted(per_crate.items()):
        print(f"{crate}: {count} lines")
    for length, where in sorted(found, reverse=True)[:n]:
        print(f"{length:5} {where}")


if __name__ == "__main__":
    main()
