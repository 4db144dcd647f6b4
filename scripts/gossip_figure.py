"""The gossip study's figure: the consensus distance (mean squared distance of the
honest nodes' parameters to their average, split ``train``) over rounds, one panel per
rule x graph, one line per attack (mean over seeds, band +-1 sd).

    python scripts/gossip_figure.py outputs/sweeps/gossip_topologies/digits \
        --out docs/figures/gossip_consensus
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from byzbench import report
from byzbench.figures import convergence_grid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--out", default=None, help="output stem (default SWEEP/report/consensus)")
    ap.add_argument("--metric", default="consensus", help="train metric to plot")
    a = ap.parse_args(argv)
    runs, results = report.load_runs(a.sweep_dir), report.load_results(a.sweep_dir)
    stem = Path(a.out) if a.out else Path(a.sweep_dir) / "report" / a.metric
    paths = convergence_grid(results, runs, stem, split="train", metric=a.metric,
                             rows="rule_label", cols="topology.graph.name",
                             lines="attack_label", logy=True)
    for p in paths:
        print(p)
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
