#!/usr/bin/env python3
"""scripts/include-cycles.py - include cycles between the modules of a
directory (default: every library directory).

A module is a file stem: broker/topic.c and broker/topic.h are the module
"topic". Module A depends on module B when A.c or A.h includes
"DIR/B.h" (B in the same directory; a foo_int.h private header belongs to
foo, DIR/internal.h, the library's private header, to the module DIR). Prints every cycle (strongly connected component of more than one
module) with the includes that make it, and exits 1 when there is one.

    scripts/include-cycles.py [--known DIR:A,B,...]... [DIR...]
                                            (default: protocol storage
                                             groups cluster broker client
                                             cli)

--known names a cycle that is known and still to be broken (its modules,
exactly): it is printed as such and does not fail the run. scripts/test.sh
runs this with the cycles left today, so a new cycle fails CI.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(name, d):
    stem = os.path.splitext(name)[0]
    if stem == "internal":  # DIR/internal.h: the library's private header
        return d
    return stem[:-4] if stem.endswith("_int") else stem


def graph(d):
    edges = {}
    why = {}
    path = os.path.join(ROOT, d)
    for f in sorted(os.listdir(path)):
        if not f.endswith((".c", ".h")):
            continue
        a = module_of(f, d)
        edges.setdefault(a, set())
        text = open(os.path.join(path, f), errors="replace").read()
        for inc in INC.findall(text):
            if os.path.dirname(inc) != d:
                continue
            b = module_of(os.path.basename(inc), d)
            if b != a:
                edges[a].add(b)
                why.setdefault((a, b), []).append("%s includes %s" % (f, inc))
    return edges, why


def sccs(edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    args, known = sys.argv[1:], set()
    while len(args) >= 2 and args[0] == "--known":
        d, mods = args[1].split(":", 1)
        known.add((d, tuple(sorted(mods.split(",")))))
        args = args[2:]
    dirs = args or ["protocol", "storage", "groups", "cluster", "broker",
                    "client", "cli"]
    found = 0
    for d in dirs:
        if not os.path.isdir(os.path.join(ROOT, d)):
            continue
        edges, why = graph(d)
        for comp in sccs(edges):
            if len(comp) < 2:
                continue
            if (d, tuple(comp)) in known:
                print("%s: known cycle {%s} (still to break)" %
                      (d, ", ".join(comp)))
                continue
            found += 1
            print("%s: cycle {%s}" % (d, ", ".join(comp)))
            for a in comp:
                for b in sorted(edges[a]):
                    if b in comp:
                        for w in why[(a, b)]:
                            print("    %s" % w)
    if not found:
        print("include cycles: none new in %s" % " ".join(dirs))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
