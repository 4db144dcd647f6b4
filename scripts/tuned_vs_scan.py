"""Tuned ALIE / IPM (``attack.tune``) against a dense scan of the same range.

For each rule, the damage ||P(cat(G, attack_v(G))) - mean(G)|| of the scale chosen by
``byzbench.attacks.search.maximize`` (``attack.tune: {search: scan}``, and BM's
``search: lpd`` for reference) is compared with the best damage of a dense
log-spaced scan of the same range, on one round of synthetic honest gradients
(``G = 0.5 + N(0, I)``, float64). Prints a markdown table: rule, attack, damage
tuned / scan best, evaluations.

    python scripts/tuned_vs_scan.py                      # n = 20, f = 4, d = 1000
    python scripts/tuned_vs_scan.py --n 11 --f 2 --d 30 --dense 600  # the unit test's
    python scripts/tuned_vs_scan.py --budget 16 ...      # a fixed budget instead of auto
"""

from __future__ import annotations

import argparse
import math

import torch

from byzbench.aggregators.base import Pipeline
from byzbench.attacks._ops import query_candidates
from byzbench.attacks.alie import ALIE
from byzbench.attacks.base import RoundContext
from byzbench.attacks.ipm import IPM
from byzbench.attacks.tuning import Tuned

RULES = ("krum", "multikrum", "bulyan", "median", "trmean", "geomed", "nnm+krum")
ATTACKS = {"alie": (ALIE, "z"), "ipm": (IPM, "eps")}


def make_pipeline(name: str, n: int, f: int) -> Pipeline:
    """The real byzbench rule (and NNM for ``nnm+krum``) for n rows, f declared."""
    from byzbench.aggregators.bulyan import Bulyan
    from byzbench.aggregators.geomed import GeoMed
    from byzbench.aggregators.krum import Krum
    from byzbench.aggregators.median import Median
    from byzbench.aggregators.multikrum import MultiKrum
    from byzbench.aggregators.trmean import TrMean
    from byzbench.preaggregators.nnm import NNM

    rules = {"krum": Krum, "multikrum": MultiKrum, "bulyan": Bulyan, "median": Median,
             "trmean": TrMean, "geomed": GeoMed}
    if name == "nnm+krum":
        return Pipeline([NNM(n, f)], Krum(n, f))
    return Pipeline([], rules[name](n=n, f=f))


def compare(rule: str, attack: str, n: int, f: int, d: int, budget: int | str = "auto",
            searches: tuple[str, ...] = ("scan",), dense: int = 2000, seed: int = 0) -> dict:
    """One row of the table: damage of the tuned scale (per search method) vs the
    dense scan's best over the same range."""
    g = torch.Generator().manual_seed(seed)
    honest = torch.randn(n - f, d, generator=g, dtype=torch.float64) + 0.5
    cls, param = ATTACKS[attack]
    pipe = make_pipeline(rule, n, f)
    ctx = RoundContext(t=0, n=n, f=f, f_declared=f, pipeline=pipe,
                       generator=torch.Generator().manual_seed(1))
    mu = honest.mean(0)
    row: dict = {"rule": rule, "attack": attack}
    for search in searches:
        tuned = Tuned(cls(), budget=budget, search=search)
        b = tuned(honest, ctx)
        row[search] = {"damage": float((ctx.query(torch.cat([honest, b])) - mu).norm()),
                       "scale": tuned.last_scale, "evals": tuned.last_evals}
    lo, hi = tuned.lo, tuned.hi

    grid = [lo * (hi / lo) ** (k / (dense - 1)) for k in range(dense)]
    # the dense scan in batched pipeline calls (what the maximizer's stages use)
    aggs = query_candidates(ctx, honest, lambda v: cls(**{param: v})(honest, ctx), grid)
    vals = (aggs - mu).norm(dim=1).tolist()
    k = max(range(dense), key=vals.__getitem__)
    row.update(scan_best=vals[k], scan_scale=grid[k])
    for search in searches:
        row[search]["ratio"] = row[search]["damage"] / vals[k] if vals[k] > 0 else math.nan
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--f", type=int, default=4)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--budget", default="auto", help="an integer or auto (the default)")
    ap.add_argument("--dense", type=int, default=2000)
    a = ap.parse_args()
    a.budget = a.budget if a.budget == "auto" else int(a.budget)
    print(f"n = {a.n}, f = {a.f}, d = {a.d}, budget {a.budget}, dense scan {a.dense} points "
          "(log-spaced over the tuner's range: alie z in [0.01, 10], ipm eps in [0.01, 100]; "
          "budget auto = tuning.auto_budget(d) for scan, 16 for BM's lpd)\n")
    print("| rule | attack | damage tuned / scan best (scan) | scale tuned / scan | evaluations "
          "| lpd: damage ratio, evaluations |")
    print("|---|---|---|---|---|---|")
    for rule in RULES:
        for attack in ATTACKS:
            r = compare(rule, attack, a.n, a.f, a.d, a.budget, ("scan", "lpd"), a.dense)
            sc, lp = r["scan"], r["lpd"]
            print(f"| {rule} | {attack} | {sc['damage']:.4g} / {r['scan_best']:.4g} = "
                  f"{sc['ratio']:.3f} | {sc['scale']:.4g} / {r['scan_scale']:.4g} | "
                  f"{sc['evals']} | {lp['ratio']:.3f}, {lp['evals']} |", flush=True)


if __name__ == "__main__":
    main()
