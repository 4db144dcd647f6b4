"""Regenerate README.md's component tables from the config YAMLs' header comments.

    python scripts/component_tables.py          # rewrite the block in README.md
    python scripts/component_tables.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from byzbench.config import declared_topologies
from byzbench.report.tables import replace_between

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "byzbench" / "conf"
GROUPS = [("attack", "Attacks"), ("agg", "Aggregation rules"), ("preagg", "Pre-aggregators"),
          ("solver", "Solvers"), ("algorithm", "Algorithms (what workers send)"),
          ("schedule", "Learning-rate schedules"),
          ("dataset", "Datasets"), ("model", "Models"), ("partition", "Partitions"),
          ("topology", "Topologies (where aggregation happens)"),
          ("agg", "Gossip rules (per node, with topology=gossip)"),
          ("attack", "Gossip attacks (per recipient, with topology=gossip)"),
          ("experiment", "Experiments (sweeps)")]
START, END = "<!-- components:start -->", "<!-- components:end -->"


def header(path: Path) -> str:
    """The YAML's leading comment lines (minus example commands), joined."""
    lines = []
    for ln in path.read_text().splitlines():
        if not ln.startswith("#"):
            break
        text = ln.lstrip("#").strip()
        if text.startswith("@package") or text.lower().startswith(("example", "byzbench ")):
            continue
        lines.append(text)
    return " ".join(lines).replace("|", "\\|")


def tables() -> str:
    out = ["## Components", "",
           "Every option is one YAML in `byzbench/conf/<group>/` and one module; the option "
           "name is the label in every table and plot. `byzbench <group>=<option>` selects it, "
           "`<group>.<param>=value` overrides a parameter.", ""]
    for group, title in GROUPS:
        # gossip-only options (declared topologies = {gossip}) get their own tables
        gossip = title.startswith("Gossip")
        files = [f for f in sorted((CONF / group).glob("*.yaml"))
                 if (declared_topologies(f) == {"gossip"}) == gossip]
        if not files:
            continue
        out += [f"### {title} (`{group}=`)", "", "| option | what |", "|---|---|"]
        out += [f"| `{f.stem}` | {header(f)} |" for f in files]
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = replace_between(text, START, END, tables())
    if a.check:
        if new != text:
            print("README.md component tables are stale: run python scripts/component_tables.py")
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
