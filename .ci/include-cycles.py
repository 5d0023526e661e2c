#!/usr/bin/env python3
"""Include circles between modules under src/: a module is a file name without its
extension (kv.c and kv.h are "kv"); A depends on B if A.c or A.h includes "B.h".
Prints every strongly connected component of more than one module; exit 1 if any."""
import collections, os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
deps = collections.defaultdict(set)
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith((".c", ".h")):
            mod = os.path.splitext(f)[0]
            deps[mod]
            text = open(os.path.join(d, f), encoding="utf-8").read()
            for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M):
                dep = os.path.splitext(os.path.basename(inc))[0]
                if dep != mod and dep != "config":
                    deps[mod].add(dep)

index, low, stack, on, cycles = {}, {}, [], set(), []
def visit(v):  # Tarjan
    index[v] = low[v] = len(index)
    stack.append(v); on.add(v)
    for w in deps[v]:
        if w not in deps:
            continue
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            cycles.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(deps):
    if v not in index:
        visit(v)
print("%d modules, %s" % (len(deps), "include circles: %s" % cycles if cycles else "no include circle"))
sys.exit(1 if cycles else 0)
