"""Tables and figures from a finished sweep (data files only).

    python scripts/figures.py SWEEP_DIR [--out DIR] [--bench CSV] [--metric NAME] [--tail R]
        [--reference CSV] [--select KEYS] [--heatmaps] [--best]    (as byzbench-report)
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

from byzbench.figures import make_figures, runtime
from byzbench.report.cli import add_options, report_from_args
from byzbench.report.loading import ReportError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", type=Path, nargs="?", default=None)
    p.add_argument("--bench", type=Path, default=None,
                   help="aggregator benchmark CSV (columns n, d, rule, seconds)")
    add_options(p)  # the byzbench-report options (--out, --metric, --tail, --reference, ...)
    a = p.parse_args(argv)
    if a.sweep_dir is None:
        if a.bench is None:
            p.error("give a SWEEP_DIR, or --bench CSV")
        for path in runtime(a.bench, (a.out or Path(".")) / "aggregator_runtime"):
            print(path)
        return 0
    try:
        written = report_from_args(a)
    except (FileNotFoundError, ReportError) as e:
        print(f"figures.py: error: {e}", file=sys.stderr)
        return 2
    for path in [x for x in written.values() if x.suffix in (".png", ".pdf")] + \
            make_figures(a.sweep_dir, a.out, a.bench, a.metric):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
