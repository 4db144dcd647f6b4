"""Tables and figures from a finished sweep (data files only).

    python scripts/figures.py SWEEP_DIR [--out DIR] [--bench CSV] [--metric NAME] [--tail R]
    python scripts/figures.py --bench CSV --out DIR      # the aggregator runtime figure only

Writes results.csv/.parquet, runs.csv, the markdown tables (final metric mean +- sd,
worst case over attacks, Byzantine-selection rate) and the figures (convergence grid,
attack x rule heatmap, final metric versus f/n when swept, aggregator runtime when a
benchmark CSV is given) as PNG + PDF into DIR (default SWEEP_DIR/report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from byzbench.report import write_report
from byzbench.report.figures import make_figures, runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", type=Path, nargs="?", default=None)
    p.add_argument("--out", type=Path, default=None, help="default: SWEEP_DIR/report")
    p.add_argument("--bench", type=Path, default=None,
                   help="aggregator benchmark CSV (columns n, d, rule, seconds)")
    p.add_argument("--metric", default=None, help="default test_accuracy, else test_loss")
    p.add_argument("--tail", type=int, default=0, metavar="ROUNDS",
                   help="also tabulate the metric's mean over the last ROUNDS rounds")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")
    a = p.parse_args(argv)
    if a.sweep_dir is None:
        if a.bench is None:
            p.error("give a SWEEP_DIR, or --bench CSV")
        for path in runtime(a.bench, (a.out or Path(".")) / "aggregator_runtime"):
            print(path)
        return 0
    try:
        write_report(a.sweep_dir, a.out, a.metric, a.quiet, a.tail)
    except FileNotFoundError as e:
        print(f"figures.py: error: {e}", file=sys.stderr)
        return 2
    for path in make_figures(a.sweep_dir, a.out, a.bench, a.metric):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
