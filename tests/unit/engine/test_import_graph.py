"""byzbench/ has no import cycle (module-level and function-level imports alike), and
the round and the build name no rule: loop.py and build.py import no module of
byzbench.aggregators other than the pipeline's base, and probe no stage with getattr."""

from __future__ import annotations

import ast
from pathlib import Path

import byzbench

ROOT = Path(byzbench.__file__).resolve().parent


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n in mods and n != m and not m.startswith(n + "."):  # not a parent package
                    edges[m].add(n)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    out, state, stack = [], {}, []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                out.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u)
    return out


def test_no_import_cycle():
    found = cycles(graph())
    assert not found, " ; ".join(" -> ".join(c) for c in found)


def test_round_and_build_name_no_rule_and_probe_nothing():
    edges = graph()
    for m in ("byzbench.loop", "byzbench.build"):
        rules = {e for e in edges[m] if e.startswith("byzbench.aggregators.")
                 or e.startswith("byzbench.preaggregators.")}
        assert rules <= {"byzbench.aggregators.base"}, (m, rules)
        src = (ROOT / f"{m.split('.')[-1]}.py").read_text()
        assert "getattr(" not in src and "hasattr(" not in src, m
