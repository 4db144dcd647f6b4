"""Print the published numbers in docs/reference/*.csv as markdown tables (percent).

    python scripts/reference_tables.py            # every reference table
    python scripts/reference_tables.py repro_epfml_noniid_mnist

Rows: the rule (``agg``); columns: the other keys that vary in the file (attack,
partition, ...); cells: ``mean`` or ``mean +- sd`` in percent. docs/REPRODUCE.md holds
this script's output next to the command.
"""

from __future__ import annotations

import argparse
import csv
import pathlib

REF = pathlib.Path(__file__).resolve().parents[1] / "docs" / "reference"
KEYS = ("attack", "worker_momentum", "preagg", "partition", "partition.noniid")


def table(path: pathlib.Path) -> str:
    """One markdown table for one reference CSV."""
    rows = [{k: "" for k in KEYS} | r for r in csv.DictReader(path.open())]
    cols = [k for k in KEYS if len({r[k] for r in rows}) > 1]
    fixed = [f"{k}={rows[0][k]}" for k in KEYS if k not in cols and rows[0][k]]
    head = [" / ".join(f"{k.rsplit('.', 1)[-1]}={r[k]}" if "." in k else r[k] for k in cols)
            for r in rows]
    columns = list(dict.fromkeys(head))
    aggs = list(dict.fromkeys(r["agg"] for r in rows))
    cell = {}
    for r, h in zip(rows, head):
        v = f"{float(r['mean']):.2f}"  # the CSVs hold percent
        if r["sd"]:
            v += f" +- {float(r['sd']):.2f}"
        cell[r["agg"], h] = v
    metrics = sorted({r["metric"] for r in rows})
    out = [f"{path.stem}: {', '.join(metrics)} (%)" + (f"; {', '.join(fixed)}" if fixed else ""),
           "", "| agg | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for a in aggs:
        out.append(f"| {a} | " + " | ".join(cell.get((a, c), "") for c in columns) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="experiment names (default: all)")
    args = ap.parse_args()
    paths = [REF / f"{n}.csv" for n in args.names] or sorted(REF.glob("*.csv"))
    print("\n\n".join(table(p) for p in paths))


if __name__ == "__main__":
    main()
