"""Paired contrast of every attack against one reference attack (``--versus ATTACK``):
per (group, rule, attack parameters), the seed-paired difference of the final metric
``attack - reference`` with the same swept attack parameters (e.g. seesaw(cap=2) -
finite_norm(cap=2)), its mean and sd over seeds, and a count of where the attack does
more damage. This is how the seesaw study reads "seesaw beats finite-norm" cell by
cell (docs/STUDY.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from byzbench.report.labels import _label_order, add_labels, group_order
from byzbench.report.loading import ReportError
from byzbench.report.tables import _fmt, _pivot, final_values, higher_is_better, markdown

# A difference counts as clear when |mean| > 2 standard errors (sd / sqrt(seeds)) and
# more than this many metric units (1 point of accuracy).
CLEAR_MIN = 0.01


def versus_table(runs: pd.DataFrame, metric: str, against: str) -> pd.DataFrame:
    """Rows ``group, rule, attack, name, params, diff, sd, n_pairs`` (``attack`` the
    label, ``name`` the option): ``diff`` the mean over seeds of ``final(attack) -
    final(against)`` paired by seed and by the attack's swept parameters (``params``,
    the label without the attack's name), ``sd`` its sample sd (ddof = 1). Failed runs
    are left out; a diverged run counts with its recorded final value (a non-finite
    loss as +inf: ``tables.final_values``)."""
    runs = runs if "attack_label" in runs else add_labels(runs)
    if against not in set(runs["attack"].astype(str)):
        raise ReportError(f"--versus {against}: no run of that attack in the sweep "
                          f"(attacks: {', '.join(sorted(set(runs['attack'].astype(str))))})")
    d = runs[runs["status"] != "failed"].copy()
    d["_v"] = final_values(d, metric)
    d["_params"] = [lab[len(str(a)):] for lab, a in zip(d["attack_label"], d["attack"])]
    keys = ["group", "rule_label", "_params", "seed"]
    base = d[d["attack"].astype(str) == against][keys + ["_v"]].rename(columns={"_v": "_b"})
    m = d[d["attack"].astype(str) != against].merge(base, on=keys)
    m["_diff"] = m["_v"] - m["_b"]
    out = []
    for (g, rule, att, params, name), x in m.groupby(["group", "rule_label", "attack_label",
                                                      "_params", "attack"], sort=False):
        diffs = x["_diff"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            mean = float(np.mean(diffs)) if len(diffs) else np.nan
            sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else np.nan
        out.append({"group": g, "rule": rule, "attack": att, "name": str(name),
                    "params": params, "diff": mean, "sd": sd, "n_pairs": len(diffs)})
    return pd.DataFrame(out, columns=["group", "rule", "attack", "name", "params", "diff",
                                      "sd", "n_pairs"])


def clear(diff: float, sd: float, n: int) -> bool:
    """Whether a paired difference is clear: ``|diff| > max(2 sd / sqrt(n), CLEAR_MIN)``
    (with one pair, only the second bound)."""
    if not np.isfinite(diff):
        return bool(np.isinf(diff))
    se = 2.0 * sd / np.sqrt(n) if n > 1 and np.isfinite(sd) else 0.0
    return abs(diff) > max(se, CLEAR_MIN)


def versus_markdown(vt: pd.DataFrame, runs: pd.DataFrame, metric: str, against: str,
                    order: dict | None = None) -> str:
    """Per group, rules x attacks of ``diff ± sd`` (a ``*`` marks a clear difference),
    then per attack the count of cells where it does more / clearly more damage than
    ``against``."""
    runs = runs if "attack_label" in runs else add_labels(runs)
    order = order or {}
    higher = higher_is_better(metric)
    worse = "lower" if higher else "higher"
    att_order = [a for a in _label_order(runs, "attack_label", "attack", order)
                 if a in set(vt["attack"])]
    rule_order = _label_order(runs, "rule_label", "agg", order)
    parts = [f"# Paired contrast: final {metric} of each attack minus {against} with the same "
             f"attack parameters, mean ± sd over seeds ({worse} = more damage than {against}; "
             f"* = |diff| > max(2 sd / sqrt(seeds), {CLEAR_MIN}))\n"]
    for g in group_order(runs, order):
        d = vt[vt["group"] == g]
        if d.empty:
            continue
        cell = [_fmt(m, s) + (" *" if clear(m, s, k) else "")
                for m, s, k in zip(d["diff"], d["sd"], d["n_pairs"])]
        t = _pivot(d, "rule", "attack", pd.Series(cell, index=d.index), rule_order, att_order)
        t.columns = [f"{c} − {against}" for c in t.columns]
        pairs = sorted(set(d["n_pairs"]))
        parts.append(f"## {g or 'all runs'} (seed pairs per cell: {', '.join(map(str, pairs))})\n")
        parts.append(markdown(t, "rule") + "\n")
    lines = [f"| attack | cells | more damage than {against} | clearly more | clearly less |",
             "|---|---|---|---|---|"]
    sign = -1.0 if higher else 1.0
    for a, d in vt.groupby("name", sort=False):
        more = int((sign * d["diff"] > 0).sum())
        cl = [clear(m, s, k) for m, s, k in zip(d["diff"], d["sd"], d["n_pairs"])]
        clearly_more = int(sum(c and sign * m > 0 for c, m in zip(cl, d["diff"])))
        clearly_less = int(sum(c and sign * m < 0 for c, m in zip(cl, d["diff"])))
        lines.append(f"| {a} | {len(d)} | {more} | {clearly_more} | {clearly_less} |")
    parts.append("## Count over all groups, rules and parameters\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)
