#!/usr/bin/env python3
"""The layering stays true: fails when a module imports from a layer above its own, when a
module of the framework imports through the crate root's re-exports instead of by module path,
or when any crate of the workspace has an import circle (module-level `use` graph).

    scripts/check-layers.py            # every crate under crates/
    scripts/check-layers.py --graph    # also print the framework's module graph

The layers of crates/switchboard/src, bottom to top (docs/architecture.md):

    leaves (base, config, error) <- io <- outbound <- conn <- hub <- app <- session <- server

A module may use modules of its own layer and of the layers below; inside a layer (a folder),
the absence of circles keeps the imports in one direction. Test code (`#[cfg(test)] mod ... {`
at the end of a file, and files named tests.rs) is not counted: tests may use anything.
"""

import os
import re
import sys

LAYERS = {
    "base": 0,
    "config": 0,
    "error": 0,
    "io": 1,
    "outbound": 2,
    "conn": 3,
    "hub": 4,
    "app": 5,
    "session": 6,
    "server": 7,
}
LAYER_NAMES = ["leaves", "io", "outbound", "conn", "hub", "app", "session", "server"]

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
BRACE = re.compile(r"\b(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*?)\}", re.S)
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{")


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            found[tuple(parts)] = path
    return found


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = TEST_MOD.search(text)
    if cut:
        text = text[: cut.start()]
    return re.sub(r"//[^\n]*", "", text)


def graph(src):
    """(edges: module -> set of modules it uses, root_imports: module -> names imported from
    the crate root)."""
    mods = modules(src)

    def resolve(path):
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in mods:
                return tuple(path[:n])
        return None

    edges, root_imports = {}, {}
    for module, path in mods.items():
        if module == ():
            continue
        text = code_of(path)

        def base(kind):
            if kind == "crate":
                return []
            if kind == "self":
                return list(module)
            return list(module[:-1])

        targets, from_root = set(), set()

        def add(kind, segs):
            full = base(kind) + segs
            target = resolve(full)
            if target is None:
                return
            if target == () and full and full[0][:1].isupper():
                from_root.add(full[0])
            targets.add(target)

        for kind, rest in PATH.findall(text):
            add(kind, [s for s in rest.split("::") if s])
        for kind, prefix, inner in BRACE.findall(text):
            pre = [s for s in prefix.split("::") if s]
            for item in re.split(r"[,\s]+", inner):
                item = item.strip().split(" as ")[0]
                if item and item not in ("self", "*"):
                    add(kind, pre + [s for s in item.split("::") if s and s not in "{}"])
        targets.discard(module)
        targets.discard(())
        edges[module] = targets
        if from_root:
            root_imports[module] = from_root
    return edges, root_imports


def circles(edges):
    """Strongly connected components of two modules or more (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                found.append(comp)

    for v in list(edges):
        if v not in index:
            strong(v)
    return found


def name(module):
    return "::".join(module) or "crate root"


def main():
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    show = "--graph" in sys.argv
    problems = []
    for crate in sorted(os.listdir(os.path.join(top, "crates"))):
        src = os.path.join(top, "crates", crate, "src")
        if not os.path.isdir(src):
            continue
        edges, root_imports = graph(src)
        for comp in circles(edges):
            problems.append(f"{crate}: import circle: {', '.join(sorted(name(m) for m in comp))}")
        if crate != "switchboard":
            continue
        for module, names in sorted(root_imports.items()):
            problems.append(
                f"{crate}: {name(module)} imports {', '.join(sorted(names))} through the crate root's "
                "re-exports (import by module path)"
            )
        for module, targets in sorted(edges.items()):
            layer = LAYERS.get(module[0])
            if layer is None:
                problems.append(f"{crate}: {name(module)} is in no layer (add it to scripts/check-layers.py)")
                continue
            for target in sorted(targets):
                above = LAYERS.get(target[0])
                if above is not None and above > layer:
                    problems.append(
                        f"{crate}: {name(module)} ({LAYER_NAMES[layer]}) uses {name(target)} "
                        f"({LAYER_NAMES[above]}), a layer above it"
                    )
        if show:
            for module, targets in sorted(edges.items()):
                print(f"{name(module)} -> {', '.join(name(t) for t in sorted(targets))}")
        n_edges = sum(len(t) for t in edges.values())
        print(f"{crate}: {len(edges)} modules, {n_edges} imports", file=sys.stderr)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check-layers: every crate free of import circles; the framework's layers hold", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
