"""Tables over seeds: final metric mean +- sd per (group, rule, attack), worst case over
attacks per rule, Byzantine-selection rate; markdown rendering."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from byzbench.report.labels import _label_order, add_labels, group_order


def higher_is_better(metric: str) -> bool:
    """Accuracies (any name containing 'accuracy') are maximized; everything else is a
    loss or an error (minimized)."""
    return "accuracy" in metric


def is_rate(metric: str) -> bool:
    """Metrics in [0, 1] whatever the run: accuracies and a backdoor's ``asr`` (lower is
    better for the defender, so minimized by ``higher_is_better``)."""
    return "accuracy" in metric or metric.endswith("asr")


def default_metric(runs: pd.DataFrame) -> str:
    """``test_accuracy`` for classification sweeps, else ``test_loss``."""
    if "final_test_accuracy" in runs and runs["final_test_accuracy"].notna().any():
        return "test_accuracy"
    return "test_loss"


def final_values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's final ``metric`` (``final_<metric>``, NaN where absent) as floats; for a
    loss, a diverged run's missing (non-finite) value counts as +inf, the worst."""
    col = f"final_{metric}"
    vals = runs[col].astype(float) if col in runs else pd.Series(np.nan, index=runs.index)
    if not higher_is_better(metric):
        vals = vals.where(~(vals.isna() & (runs["status"] == "diverged")), np.inf)
    return vals


def final_table(runs: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Final ``metric`` over seeds per (group, rule, attack): ``mean``, ``sd`` (sample,
    ddof=1; NaN for one seed), ``n_seeds`` (finished runs), ``n_failed``, ``n_diverged``.

    Runs that diverged count with their recorded final value; a non-finite loss counts
    as +inf (the worst), so a diverged seed shows in the mean rather than vanishing."""
    runs = runs if "attack_label" in runs else add_labels(runs)
    df = runs.assign(_v=final_values(runs, metric))
    out = []
    for (g, rule, att), d in df.groupby(["group", "rule_label", "attack_label"], sort=False):
        done = d[d["status"] != "failed"]["_v"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            mean = float(np.mean(done)) if len(done) else np.nan
            sd = float(np.std(done, ddof=1)) if len(done) > 1 else np.nan
        out.append({"group": g, "rule": rule, "attack": att, "mean": mean, "sd": sd,
                    "n_seeds": len(done), "n_failed": int((d["status"] == "failed").sum()),
                    "n_diverged": int((d["status"] == "diverged").sum())})
    return pd.DataFrame(out, columns=["group", "rule", "attack", "mean", "sd", "n_seeds",
                                      "n_failed", "n_diverged"])


def worst_case(final: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Per (group, rule): the attack with the worst mean final ``metric`` (min accuracy,
    max loss) among the attacks that ran and logged it (a backdoor's ``asr`` is not
    logged under ``attack=none``), and that mean and sd."""
    higher = higher_is_better(metric)
    out = []
    for (g, rule), d in final.groupby(["group", "rule"], sort=False):
        d = d[(d["n_seeds"] > 0) & (d["mean"].notna() | (d["n_diverged"] > 0))]
        if d.empty:
            continue
        i = d["mean"].fillna(-np.inf if higher else np.inf)
        w = d.loc[i.idxmin() if higher else i.idxmax()]
        out.append({"group": g, "rule": rule, "worst_attack": w["attack"], "mean": w["mean"],
                    "sd": w["sd"], "n_seeds": w["n_seeds"]})
    return pd.DataFrame(out, columns=["group", "rule", "worst_attack", "mean", "sd", "n_seeds"])


def selection_rate(results: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Byzantine-selection rate per (group, rule, attack): mean over rounds and seeds of
    ``train/byz_weight`` (fraction of aggregation weight on Byzantine rows), next to
    ``f_over_n``, the rate of a rule that ignores the attack. Rules exposing no weights
    are absent."""
    runs = runs if "attack_label" in runs else add_labels(runs)
    w = results[(results["split"] == "train") & (results["metric"] == "byz_weight")]
    if w.empty:
        return pd.DataFrame(columns=["group", "rule", "attack", "rate", "sd", "n_seeds",
                                     "f_over_n"])
    per_run = w.groupby("run")["value"].mean().rename("rate")
    df = runs.set_index("run").join(per_run, how="inner").reset_index()
    out = []
    for (g, rule, att), d in df.groupby(["group", "rule_label", "attack_label"], sort=False):
        out.append({"group": g, "rule": rule, "attack": att, "rate": d["rate"].mean(),
                    "sd": d["rate"].std(ddof=1) if len(d) > 1 else np.nan,
                    "n_seeds": len(d), "f_over_n": float(d["byz_frac"].mean())})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- formatting

def _fmt(mean: float, sd: float, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "nan"
    if math.isinf(mean):
        return "inf"
    s = f"{mean:.{digits}f}"
    return s if sd is None or math.isnan(sd) else f"{s} ± {sd:.{digits}f}"


def markdown(df: pd.DataFrame, index_name: str = "") -> str:
    """A GitHub-flavoured markdown table of ``df`` (index as the first column)."""
    head = [index_name or (df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in df.iterrows():
        lines.append("| " + " | ".join([str(i)] + ["" if pd.isna(v) else str(v)
                                                   for v in r.tolist()]) + " |")
    return "\n".join(lines)


def replace_between(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` replaced by
    ``block`` (one newline after ``begin`` and before ``end``): how scripts regenerate
    the tables in README.md and docs. ``ValueError`` names a missing marker."""
    for m in (begin, end):
        if m not in text:
            raise ValueError(f"marker {m} not found")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}"


def _pivot(df: pd.DataFrame, rows: str, cols: str, cell: pd.Series,
           row_order: list, col_order: list) -> pd.DataFrame:
    t = df.assign(_cell=cell).pivot(index=rows, columns=cols, values="_cell")
    t = t.reindex(index=[r for r in row_order if r in t.index],
                  columns=[c for c in col_order if c in t.columns])
    t.index.name, t.columns.name = None, None
    return t


def tables(runs: pd.DataFrame, results: pd.DataFrame, metric: str | None = None,
           order: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Markdown text of the three tables, keyed by file stem."""
    runs = add_labels(runs)
    order = order or {}
    metric = metric or default_metric(runs)
    att_order = _label_order(runs, "attack_label", "attack", order)
    rule_order = _label_order(runs, "rule_label", "agg", order)
    groups = group_order(runs, order)
    fin = final_table(runs, metric)
    out: dict[str, str] = {}

    parts = [f"# Final {metric}: mean ± sd over seeds (rows: rule, columns: attack)\n"]
    for g in groups:
        d = fin[fin["group"] == g]
        cell = [_fmt(m, s) + (f" [{k} div]" if k else "") + (f" [{x} failed]" if x else "")
                for m, s, k, x in zip(d["mean"], d["sd"], d["n_diverged"], d["n_failed"])]
        cell = [("failed" if n == 0 else c) for c, n in zip(cell, d["n_seeds"])]
        t = _pivot(d, "rule", "attack", pd.Series(cell, index=d.index), rule_order, att_order)
        seeds = sorted(set(d["n_seeds"]) - {0})
        parts.append(f"## {g or 'all runs'} (seeds per cell: {', '.join(map(str, seeds))})\n")
        parts.append(markdown(t, "rule") + "\n")
    out[f"final_{metric}"] = "\n".join(parts)

    wc = worst_case(fin, metric)
    cell = pd.Series([f"{_fmt(m, s)} ({a})" for m, s, a in
                      zip(wc["mean"], wc["sd"], wc["worst_attack"])], index=wc.index)
    t = _pivot(wc.assign(group=wc["group"].replace("", "all runs")), "rule", "group", cell,
               rule_order, [g or "all runs" for g in groups])
    worst = "min" if higher_is_better(metric) else "max"
    out[f"worst_case_{metric}"] = (
        f"# Worst case over attacks: {worst} over attacks of the mean final {metric} "
        "(the worst attack in parentheses)\n\n" + markdown(t, "rule") + "\n")

    sel = selection_rate(results, runs)
    parts = ["# Byzantine-selection rate: mean fraction of aggregation weight on Byzantine "
             "rows (rules that expose weights; f/n = a rule blind to the attack)\n"]
    for g in groups:
        d = sel[sel["group"] == g]
        if d.empty:
            continue
        t = _pivot(d, "rule", "attack", pd.Series([f"{v:.3f}" for v in d["rate"]],
                                                   index=d.index), rule_order, att_order)
        fn = sorted(set(np.round(d["f_over_n"], 3)))
        parts.append(f"## {g or 'all runs'} (f/n = {', '.join(map(str, fn))})\n")
        parts.append(markdown(t, "rule") + "\n")
    if len(parts) == 1:
        parts.append("No rule in this sweep exposes aggregation weights.\n")
    out["selection"] = "\n".join(parts)

    failed = runs[runs["status"] == "failed"]
    if len(failed):
        errs = failed.groupby("error", dropna=False)["run"].agg(["count", "first"])
        lines = ["# Failed runs\n", "| runs | first run dir | error |", "|---|---|---|"]
        lines += [f"| {r['count']} | {r['first']} | {str(e).splitlines()[0][:200]} |"
                  for e, r in errs.iterrows()]
        out["failed"] = "\n".join(lines) + "\n"
    return out
