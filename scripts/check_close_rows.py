"""Close rows: do float32 selections and distances agree with float64 brute force?

Rows close to each other relative to their norm (worker momentum, NNM outputs) are
where a Gram matrix's ||x||^2 + ||y||^2 - 2<x, y> loses its digits. Every case below
builds float32 rows ``x_i = m + s z_i`` (``||m||`` = the norm, ``z_i ~ N(0, I_d/d)``
so ``||x_i - m|| ~ s``), runs byzbench's code on them, and compares with an
independent float64 brute force on the *same* float32 values (``torch.cdist`` with
direct differences, ``compute_mode="donot_use_mm_for_euclid_dist"``):

* ``krum s=...`` (n = 20, f = 4, d = 1000, norm 1e3): rank, by exact Krum score, of
  the row Krum chose (1 = the exact choice; mean over 5 seeds) and the largest
  relative error of the rule's pairwise squared distances (max over pairs and seeds);
* ``nnm sets s=0.005`` (n = 20, f = 4, d = 1e4, norm 1): rows whose NNM neighbour set
  differs from the exact one (out of 20, mean over 5 seeds);
* ``nnm->krum`` (same rows, s = 0.01): seeds out of 10 where NNM-then-Krum selects a
  different row than the float64 brute force of the same pipeline;
* ``geomed`` / ``cclip`` (norm 1e3, s = 1e-2, n = 20, d = 1000): distance of the
  float32 output from the same rule run on the float64 rows, in units of s
  (cclip: tau = 0.5 s as a number, center = the rows' mean + 0.3 s z: a previous
  aggregate close to the rows).

Run: ``python scripts/check_close_rows.py`` prints the table for the code at
``--base`` (default /work/main, the code before the change) and for this checkout;
``--code PATH`` prints the numbers of one code tree only (used internally).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rows(n: int, d: int, norm: float, s: float, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, generator=g, dtype=torch.float64)
    m = m / m.norm() * norm
    z = torch.randn(n, d, generator=g, dtype=torch.float64) / d**0.5
    return (m + s * z).float()


def exact_d2(x):
    import torch

    x64 = x.double()
    return torch.cdist(x64, x64, compute_mode="donot_use_mm_for_euclid_dist") ** 2


def krum_scores(d2, k: int):

    d = d2.clone()
    d.fill_diagonal_(float("inf"))
    return d.sort(dim=1).values[:, :k].sum(1)


def rule_d2(x):
    from byzbench import kernels

    return kernels.pairwise(x).d2


def measure() -> dict[str, float]:
    import numpy as np
    import torch

    from byzbench.aggregators.cclip import CClip
    from byzbench.aggregators.geomed import GeoMed
    from byzbench.aggregators.krum import Krum
    from byzbench.preaggregators.nnm import NNM

    out: dict[str, float] = {}
    n, f = 20, 4
    for s in (1e-1, 1e-2, 1e-3):
        ranks, errs = [], []
        for seed in range(5):
            x = rows(n, 1000, 1e3, s, seed)
            ex = exact_d2(x)
            rule = Krum(n, f)
            rule(x)
            i = int(torch.argmax(rule.last_weights))
            sc = krum_scores(ex, n - f - 2)
            ranks.append(1 + int((sc < sc[i]).sum()))
            d2 = torch.as_tensor(rule_d2(x))
            off = ~torch.eye(n, dtype=torch.bool)
            errs.append(float(((d2 - ex).abs() / ex)[off].max()))
        out[f"krum s={s:g}: rank of chosen row"] = float(np.mean(ranks))
        out[f"krum s={s:g}: max rel. distance error"] = max(errs)
    wrong = []
    for seed in range(5):
        x = rows(n, 10_000, 1.0, 0.005, seed)
        nnm = NNM(n, f)
        nnm(x)
        got = nnm.last_mixing > 0
        nbr = exact_d2(x).argsort(dim=1, stable=True)[:, : n - f]
        want = torch.zeros(n, n, dtype=torch.bool).scatter_(1, nbr, True)
        wrong.append(int((got != want).any(dim=1).sum()))
    out["nnm sets s=0.005: rows with a wrong set (of 20)"] = float(np.mean(wrong))
    differ = 0
    for seed in range(10):
        x = rows(n, 10_000, 1.0, 0.01, seed)
        nnm, krum = NNM(n, f), Krum(n, f)
        krum(nnm(x))
        got = int(torch.argmax(krum.last_weights))
        nbr = exact_d2(x).argsort(dim=1, stable=True)[:, : n - f]
        y = x.double()[nbr].mean(1).float()  # NNM's output rows (float32, as the rule sees)
        want = int(torch.argmin(krum_scores(exact_d2(y), n - f - 2)))
        differ += got != want
    out["nnm->krum s=0.01: seeds selecting another row (of 10)"] = float(differ)
    s = 1e-2
    x = rows(n, 1000, 1e3, s, 0)
    out["geomed: output error / s"] = float((GeoMed(n, 0)(x).double()
                                             - GeoMed(n, 0)(x.double())).norm() / s)
    g = torch.Generator().manual_seed(9)
    z = torch.randn(1000, generator=g, dtype=torch.float64) / 1000**0.5
    center = x.double().mean(0) + 0.3 * s * z
    res = []
    for xx in (x, x.double()):
        rule = CClip(n, 0, tau=0.5 * s, iterations=1)
        rule.center = center.to(xx.dtype)
        res.append(rule(xx).double())
    out["cclip: output error / s"] = float((res[0] - res[1]).norm() / s)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="/work/main", help="code tree before the change")
    ap.add_argument("--code", default=None, help="measure this code tree only (JSON out)")
    args = ap.parse_args(argv)
    if args.code:
        sys.path.insert(0, args.code)
        print(json.dumps(measure()))
        return
    cols = {}
    for label, tree in (("before", args.base), ("after", str(ROOT))):
        env = dict(os.environ, PYTHONPATH=tree)
        res = subprocess.run([sys.executable, __file__, "--code", tree], env=env,
                             capture_output=True, text=True, check=True)
        cols[label] = json.loads(res.stdout.strip().splitlines()[-1])
    print("| case | before | after |\n|---|---:|---:|")
    for k in cols["after"]:
        print(f"| {k} | {cols['before'].get(k, float('nan')):.3g} | {cols['after'][k]:.3g} |")


if __name__ == "__main__":
    main()
