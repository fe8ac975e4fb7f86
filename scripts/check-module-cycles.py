#!/usr/bin/env python3
"""Fails when modules of the library import each other in a cycle.

Every module is a node; a path such as `crate::store::token::TokenKey`, `super::leg` or a `use`
tree naming one is an edge from the module that writes it to the module it names. Edges are
compared between siblings: `gateway::leg` using `credentials::oauth` is an edge between the
top-level `gateway` and `credentials`, and `gateway::leg` using `gateway::upstream::client` is an
edge between `leg` and `upstream` inside `gateway`. A parent using its child, or a child its
parent (the parent re-exports for its children), is not an edge. Any strongly connected set of
siblings is a cycle; each is printed with one line of evidence per edge.

Usage: scripts/check-module-cycles.py [src-dir]   (default: src)
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
PATH_RE = re.compile(rf"\b(crate|super|self)((?:\s*::\s*{IDENT})+)")
MOD_BLOCK_RE = re.compile(rf"\bmod\s+({IDENT})\s*\{{")
MOD_DECL_RE = re.compile(rf"\bmod\s+({IDENT})\s*;")
USE_RE = re.compile(r"\buse\s+([^;]*);", re.S)


def strip(source: str) -> str:
    """Blank out comments and string/char literals, keeping offsets and newlines."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif source.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if source.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif source.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', source[i:]) and not re.match(r"\w", source[i - 1] if i else " "):
            m = re.match(r'r(#*)"', source[i:])
            end = '"' + m.group(1)
            j = source.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}'), or a lifetime (left alone).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", source[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(path: Path, root: Path) -> tuple[str, ...]:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def expand_use(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`]."""
    tree = re.sub(rf"\s+as\s+{IDENT}", "", tree)
    tree = re.sub(r"\s+", "", tree)

    def split_top(s: str) -> list[str]:
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix: str, s: str) -> list[str]:
        brace = s.find("{")
        if brace < 0:
            return [prefix + s]
        head, inner = s[:brace], s[brace + 1 : s.rfind("}")]
        return [p for item in split_top(inner) for p in walk(prefix + head, item)]

    return walk("", tree)


def resolve(segments: list[str], current: tuple[str, ...], modules: set[tuple[str, ...]]):
    """Absolute module named by a path written in module `current`, or None."""
    base: list[str] = []
    first, rest = segments[0], segments[1:]
    if first == "crate":
        base = []
    elif first == "self":
        base = list(current)
    elif first == "super":
        base = list(current[:-1])
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    else:
        return None
    full = base + rest
    # The longest prefix that is a module (what follows is an item inside it).
    for k in range(len(full), -1, -1):
        if tuple(full[:k]) in modules:
            return tuple(full[:k])
    return None


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    files = [p for p in sorted(root.rglob("*.rs")) if p.name != "main.rs" or p.parent != root]
    modules: set[tuple[str, ...]] = set()
    texts: dict[Path, str] = {}
    for f in files:
        modules.add(module_of(f, root))
        texts[f] = strip(f.read_text())
    # Inline modules (`mod tests { .. }`) are modules too.
    for f, text in texts.items():
        for m in MOD_BLOCK_RE.finditer(text):
            modules.add(module_of(f, root) + (m.group(1),))

    # (parent, child_a, child_b) -> evidence
    edges: dict[tuple[str, ...], dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))

    for f, text in texts.items():
        file_mod = module_of(f, root)
        # Module path at every offset: follow inline `mod x {` blocks by brace depth.
        stack: list[tuple[int, str]] = []
        depth = 0
        opens = {m.end() - 1: m.group(1) for m in MOD_BLOCK_RE.finditer(text)}
        current_at = []
        for i, ch in enumerate(text):
            if ch == "{":
                depth += 1
                if i in opens:
                    stack.append((depth, opens[i]))
            elif ch == "}":
                if stack and stack[-1][0] == depth:
                    stack.pop()
                depth -= 1
            current_at.append(tuple(name for _, name in stack))

        found: list[tuple[int, list[str]]] = []
        for m in USE_RE.finditer(text):
            for p in expand_use(m.group(1)):
                segs = [s for s in p.split("::") if s]
                if segs and segs[0] in ("crate", "super", "self"):
                    found.append((m.start(), segs))
        for m in PATH_RE.finditer(text):
            segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
            found.append((m.start(), segs))

        for offset, segs in found:
            here = file_mod + current_at[min(offset, len(current_at) - 1)]
            target = resolve(segs, here, modules)
            if target is None:
                continue
            # Compare at the level where the two paths part.
            k = 0
            while k < min(len(here), len(target)) and here[k] == target[k]:
                k += 1
            if k == len(here) or k == len(target):
                continue  # ancestor / descendant
            parent = here[:k]
            a, b = here[k], target[k]
            line = text.count("\n", 0, offset) + 1
            edges[parent][a].setdefault(b, f"{f}:{line}: {'::'.join(segs)}")

    cycles = []
    for parent, graph in sorted(edges.items()):
        for scc in strongly_connected(graph):
            if len(scc) > 1:
                cycles.append((parent, scc, graph))

    if not cycles:
        print(f"no import cycles among {len(modules)} modules")
        return 0
    for parent, scc, graph in cycles:
        where = "::".join(("crate",) + parent)
        print(f"cycle in {where}: {' <-> '.join(sorted(scc))}")
        for a in sorted(scc):
            for b, evidence in sorted(graph[a].items()):
                if b in scc:
                    print(f"  {a} -> {b}   ({evidence})")
    return 1


def strongly_connected(graph: dict[str, dict[str, str]]) -> list[set[str]]:
    """Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[set[str]] = []
    nodes = set(graph) | {b for a in graph for b in graph[a]}

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.add(w)
                if w == v:
                    break
            result.append(scc)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return result


if __name__ == "__main__":
    sys.exit(main())
