"""Print (or write into docs/RULES.md) the peer parity table: every published unit test of
ByzFL, Flower and Blades replayed by tests/conformance/test_peers.py, with the byzbench
option it runs and whether byzbench's output passes the peer's own assertion (float64).

    python scripts/peer_parity.py           # print the table
    python scripts/peer_parity.py --write   # rewrite the block in docs/RULES.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byzbench.report.tables import replace_between  # noqa: E402
from tests.conformance.test_peers import CASES, agrees, replay  # noqa: E402

START, END = "<!-- parity:start -->", "<!-- parity:end -->"


def table() -> str:
    rows = ["| peer | test file :: test | byzbench option | agrees |", "|---|---|---|---|"]
    for c in CASES:
        ok = agrees(c, replay(c, torch.float64))
        opt = " ".join(o for o in c.overrides)
        rows.append(f"| {c.peer} | `{c.source.split(' ', 1)[1]}` :: {c.test} | `{opt}` "
                    f"(f = {c.f}) | {'yes' if ok else 'no'} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    block = table()
    if ap.parse_args().write:
        p = ROOT / "docs" / "RULES.md"
        p.write_text(replace_between(p.read_text(), START, END, block))
    else:
        print(block)


if __name__ == "__main__":
    main()
