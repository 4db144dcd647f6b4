"""Worst-case hyperparameter selection (ByzFL's ``find_best_hyperparameters``; Allouah et
al., "Byzantine machine learning made easy"): per rule, and per value of every other swept
axis, keep the values of the selected keys (e.g. ``solver.lr, worker_momentum``) whose
*worst case over attacks* of the validation accuracy is best, then report the test
accuracy at those values. Selection never looks at the test set."""

from __future__ import annotations

import pandas as pd

from byzbench.report.cells import cell_values, worst_over
from byzbench.report.labels import _label_order, _sorted_values, add_labels, varying
from byzbench.report.loading import ReportError
from byzbench.report.tables import _fmt, higher_is_better, markdown


def _check_keys(runs: pd.DataFrame, keys: list[str]) -> None:
    axes = varying(runs)
    for k in keys:
        if k not in runs.columns:
            raise ReportError(f"--select {k}: not a key of this sweep (swept keys: "
                             f"{', '.join(axes) or 'none'})")


def select_hparams(runs: pd.DataFrame, results: pd.DataFrame, keys: list[str],
                   how: str = "final", val_metric: str = "val_accuracy",
                   test_metric: str = "test_accuracy",
                   order: dict[str, list[str]] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Choose ``keys`` per (group, rule) by the worst case over attacks of ``val_metric``.

    For every combination of the ``keys`` values: the cell value per attack (mean over
    seeds of the final value, or ``how="best"``: max over rounds of the seed-mean curve,
    as ByzFL), its worst case over the attacks that (group, rule) ran (a combination
    missing an attack, or whose runs all failed, counts as the worst possible), and the
    combination with the best worst case (ties: the first in sweep order).

    Returns ``(table, chosen)``: one row per (group, rule) with the chosen values,
    ``val_worst``, ``test_worst`` and ``worst_attack`` (of the test metric at the chosen
    values), ``n_combos``; and the labelled runs at the chosen values.
    """
    _check_keys(runs, keys)
    order = order or {}
    if f"final_{val_metric}" not in runs or runs[f"final_{val_metric}"].isna().all():
        raise ReportError(f"--select: the sweep logged no {val_metric}: run it with "
                         "dataset.val_frac > 0 (a validation split held out of train)")
    lab = add_labels(runs, exclude=keys)
    gr = ["group", "rule_label"]
    val = cell_values(lab, results, gr + keys + ["attack_label"], val_metric, how)
    test = cell_values(lab, results, gr + keys + ["attack_label"], test_metric, how)
    ranks = {k: [str(v) for v in _sorted_values(lab[k], order.get(k))] for k in keys}
    higher = higher_is_better(val_metric)
    rows, chosen = [], []
    for (g, rule), d in lab.groupby(gr, sort=False):
        attacks = _label_order(d, "attack_label", "attack", order)
        v = val[(val["group"] == g) & (val["rule_label"] == rule)]
        wc = worst_over(v, keys, "attack_label", val_metric, complete=attacks)
        if wc.empty:  # every run of this rule failed: nothing to choose from
            continue
        wc["_rank"] = [tuple(ranks[k].index(str(r[k])) if str(r[k]) in ranks[k] else -1
                             for k in keys) for _, r in wc.iterrows()]
        wc = wc.sort_values("_rank", kind="stable")
        best = wc.loc[wc["value"].idxmax() if higher else wc["value"].idxmin()]
        at = {k: best[k] for k in keys}
        t = test[(test["group"] == g) & (test["rule_label"] == rule)]
        for k, x in at.items():
            t = t[t[k].astype(str) == str(x)]
        tw = worst_over(t, [], "attack_label", test_metric, complete=attacks) if len(t) else None
        rows.append({"group": g, "rule": rule, **at, "val_worst": best["value"],
                     "test_worst": tw["value"].iloc[0] if tw is not None else float("nan"),
                     "worst_attack": tw["worst_attack_label"].iloc[0] if tw is not None
                     else None, "n_combos": len(wc)})
        mask = (lab["group"] == g) & (lab["rule_label"] == rule)
        for k, x in at.items():
            mask &= lab[k].astype(str) == str(x)
        chosen.append(lab[mask])
    table = pd.DataFrame(rows, columns=["group", "rule", *keys, "val_worst", "test_worst",
                                        "worst_attack", "n_combos"])
    return table, (pd.concat(chosen) if chosen else lab.iloc[:0])


def selection_markdown(table: pd.DataFrame, keys: list[str], how: str = "final",
                       val_metric: str = "val_accuracy",
                       test_metric: str = "test_accuracy") -> str:
    """The selection as markdown: one section per group, one row per rule."""
    stat = "final" if how == "final" else "best over time"
    parts = [f"# Worst-case selection of {', '.join(keys)}: per rule, the values with the "
             f"best worst case over attacks of the {stat} {val_metric} (mean over seeds); "
             f"{test_metric} ({stat}) at those values, worst attack in parentheses\n"]
    for g, d in table.groupby("group", sort=False):
        t = d.set_index("rule")[keys].astype(str)
        t[f"worst-case {val_metric}"] = [_fmt(v, float("nan")) for v in d["val_worst"]]
        t[f"worst-case {test_metric}"] = [f"{_fmt(v, float('nan'))} ({a})" for v, a in
                                         zip(d["test_worst"], d["worst_attack"])]
        t["combinations"] = d["n_combos"].to_numpy()
        parts.append(f"## {g or 'all runs'}\n")
        parts.append(markdown(t, "rule") + "\n")
    return "\n".join(parts)
