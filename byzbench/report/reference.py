"""Ours versus published numbers: ``byzbench-report SWEEP --reference FILE``.

The reference CSV (``docs/reference/<experiment>.csv``) is tidy, one published number a
row: ``experiment,attack,agg,worker_momentum,preagg,partition,metric,mean,sd,source``.
Every column other than ``metric, mean, sd, source`` is a key (any config key works,
e.g. ``partition.alpha``); an empty cell means "not a key for that row". A key matches
a run's Hydra choice or override, or else the value in the run's ``.hydra/config.yaml``
(so keys fixed by an experiment, not swept, match too). Numbers compare as numbers
(``0.9`` = ``0.90``); ``preagg`` compares as the list of pre-aggregators
(``[bucketing]`` = ``bucketing``; ``none`` = empty). An ``experiment`` key is ignored
when no run of the sweep used an experiment.

Metric: ``test_accuracy`` (our final value), ``tail<R>_test_accuracy`` (mean over the
last R rounds) or ``best_test_accuracy`` (max over rounds), likewise for other metrics.

Units: accuracies in the reference are in percent (as papers print them); ours are
fractions and are multiplied by 100 here, so the table and the tolerance are in
percentage points. Other metrics compare as they are.

Flag: ours (mean over seeds) is ``OUT`` when ``|ours - published| > max(2 sd, 3 points)``
for accuracies, ``> 2 sd`` for other metrics (no sd: not flagged).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from byzbench.report.labels import varying
from byzbench.report.loading import ReportError, _float, config_value, tail_mean
from byzbench.report.tables import markdown

VALUE_COLS = ("metric", "mean", "sd", "source")
COLUMNS = ("row", "group", "keys", "metric", "published", "published_sd", "ours", "ours_sd",
           "n_seeds", "diff", "tolerance", "flag", "source")


def load_reference(path: str | Path) -> pd.DataFrame:
    """The reference CSV with every cell a string ('' = empty)."""
    ref = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("metric", "mean") if c not in ref.columns]
    if missing:
        raise ReportError(f"--reference {path}: missing column(s) {', '.join(missing)} "
                         "(schema: key columns..., metric, mean, sd, source)")
    acc = ref[ref["metric"].str.contains("accuracy")]["mean"].map(_float)
    if len(acc) and (acc <= 1.0).all():
        raise ReportError(f"--reference {path}: accuracies must be in percent (as papers print "
                          f"them); these look like fractions (max {acc.max()})")
    return ref


def _norm(key: str, v: object) -> object:
    """Canonical form of a config value for matching."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return () if key == "preagg" else None
    s = str(v).strip()
    if key == "preagg":
        parts = [p for p in re.split(r"[\[\],+\s'\"]+", s) if p]
        return tuple(p for p in parts if p not in ("none", "null"))
    x = _float(s)
    return x if not math.isnan(x) else s


def run_values(runs: pd.DataFrame, results: pd.DataFrame, metric: str) -> pd.Series:
    """Per-run value of ``metric``: ``<split>_<name>`` (final), ``tail<R>_<split>_<name>``
    (mean over the last R rounds) or ``best_<split>_<name>`` (each run's max over rounds,
    min for a loss; averaged over seeds afterwards, whereas ByzFL's heatmaps, and
    ``--heatmaps --best``, take the max of the seed-mean curve). Indexed like ``runs``."""
    m = re.fullmatch(r"tail(\d+)_(\w+?)_(\w+)", metric)
    if m:
        tm = tail_mean(results, m.group(2), m.group(3), int(m.group(1)))
        return runs["run"].map(tm)
    m = re.fullmatch(r"best_(\w+?)_(\w+)", metric)
    if m:
        d = results[(results["split"] == m.group(1)) & (results["metric"] == m.group(2))]
        g = d.groupby("run")["value"]
        return runs["run"].map(g.max() if "accuracy" in metric else g.min())
    col = f"final_{metric}"
    return runs[col] if col in runs else pd.Series(np.nan, index=runs.index)


def _key_values(runs: pd.DataFrame, sweep_dir: Path, key: str) -> pd.Series:
    col = runs[key] if key in runs else pd.Series(None, index=runs.index, dtype=object)
    vals = []
    for run, v in zip(runs["run"], col):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            v = config_value(sweep_dir, run, key)
        vals.append(_norm(key, v))
    return pd.Series(vals, index=runs.index, dtype=object)


def compare(runs: pd.DataFrame, results: pd.DataFrame, ref: pd.DataFrame,
            sweep_dir: str | Path) -> pd.DataFrame:
    """One row per reference row and value of the sweep's other axes (``group``: swept
    keys the reference row does not name, seed excluded): published mean and sd, ours
    (mean, sd over seeds of finished runs), ``diff = ours - published``, ``tolerance``
    and ``flag`` (``ok``, ``OUT``, ``no sd`` when no tolerance applies, ``not run``)."""
    sweep_dir = Path(sweep_dir)
    keys = [c for c in ref.columns if c not in VALUE_COLS]
    if "experiment" in keys and runs.get("experiment", pd.Series(dtype=object)).isna().all():
        keys.remove("experiment")
    kv = {k: _key_values(runs, sweep_dir, k) for k in keys}
    done = runs["status"] != "failed"
    axes = [c for c in varying(runs) if c != "seed"]
    out = []
    for i, r in ref.iterrows():
        named = {k: r[k] for k in keys if str(r[k]).strip() != ""}
        mask = done.copy()
        for k, v in named.items():
            want = _norm(k, v)
            mask &= kv[k].map(lambda x, w=want: x == w).astype(bool)
        metric = r["metric"]
        acc = "accuracy" in metric
        scale = 100.0 if acc else 1.0
        pub = _float(r["mean"])
        psd = _float(r.get("sd", ""))
        tol = max(2 * psd if not math.isnan(psd) else 0.0, 3.0) if acc else 2 * psd
        label = ", ".join(f"{k}={v}" for k, v in named.items())
        base = {"row": i, "keys": label, "metric": metric, "published": pub,
                "published_sd": psd, "tolerance": tol, "source": r.get("source", "")}
        sub = runs[mask]
        if sub.empty:
            out.append({**base, "group": "", "ours": np.nan, "ours_sd": np.nan, "n_seeds": 0,
                        "diff": np.nan, "flag": "not run"})
            continue
        vals = run_values(sub, results, metric) * scale
        rest = [a for a in axes if a not in named
                and sub[a].astype(str).nunique(dropna=False) > 1]
        groups = sub.groupby(rest, sort=False, dropna=False) if rest else [((), sub)]
        for g, d in groups:
            v = vals.loc[d.index].astype(float).dropna()
            ours = float(v.mean()) if len(v) else np.nan
            sd = float(v.std(ddof=1)) if len(v) > 1 else np.nan
            diff = ours - pub
            flag = "no sd" if math.isnan(tol) else (
                "OUT" if abs(diff) > tol else "ok") if not math.isnan(diff) else "no value"
            gl = " ".join(f"{a}={x}" for a, x in zip(rest, g if isinstance(g, tuple) else (g,)))
            out.append({**base, "group": gl, "ours": ours, "ours_sd": sd, "n_seeds": len(v),
                        "diff": diff, "flag": flag})
    return pd.DataFrame(out, columns=list(COLUMNS))


def reference_markdown(cmp: pd.DataFrame, path: str | Path) -> str:
    """The comparison as a markdown table (accuracies in percent)."""
    t = pd.DataFrame({
        "setting": [k + (f" [{g}]" if g else "") for k, g in zip(cmp["keys"], cmp["group"])],
        "metric": cmp["metric"],
        "published": [_pm(m, s) for m, s in zip(cmp["published"], cmp["published_sd"])],
        "ours": [_pm(m, s) + f" (n={n})" for m, s, n in zip(cmp["ours"], cmp["ours_sd"],
                                                          cmp["n_seeds"])],
        "diff": [f"{d:+.2f}" if not math.isnan(d) else "" for d in cmp["diff"]],
        "tolerance": [f"{t:.2f}" if not math.isnan(t) else "" for t in cmp["tolerance"]],
        "flag": cmp["flag"],
    }).set_index("setting")
    n_out = int((cmp["flag"] == "OUT").sum())
    return (f"# Ours vs published ({Path(path).name}): mean ± sd over seeds; accuracies in "
            "percent; OUT = |diff| > max(2 sd, 3 points) (accuracies) or 2 sd (others)\n\n"
            + markdown(t, "setting") + f"\n\n{n_out} of {len(cmp)} rows OUT; "
            f"{int((cmp['flag'] == 'not run').sum())} not run.\n")


def _pm(m: float, s: float) -> str:
    if m is None or math.isnan(m):
        return "-"
    return f"{m:.2f}" if s is None or math.isnan(s) else f"{m:.2f} ± {s:.2f}"


def reference_figure(cmp: pd.DataFrame, stem: Path) -> list[Path]:
    """Per reference row: the published mean with its tolerance band (grey) and ours,
    mean +- sd over seeds (blue; red when OUT); one panel per metric. Keys shared by
    every row (e.g. the experiment) are left out of the labels."""
    import matplotlib.pyplot as plt

    from byzbench.plots import save

    d = cmp[cmp["flag"] != "not run"].reset_index(drop=True)
    if d.empty:
        return []
    parts = [k.split(", ") for k in d["keys"]]
    common = set.intersection(*(set(p) for p in parts)) if len(d) > 1 else set()
    d["label"] = [", ".join(x for x in p if x not in common) + (f" [{g}]" if g else "")
                  for p, g in zip(parts, d["group"])]
    metrics = list(dict.fromkeys(d["metric"]))
    sizes = [int((d["metric"] == m).sum()) for m in metrics]
    fig, axes = plt.subplots(len(metrics), 1, squeeze=False, height_ratios=sizes,
                             figsize=(7.5, 1.0 + 0.32 * len(d) + 0.5 * len(metrics)))
    for ax, m in zip(axes[:, 0], metrics):
        e = d[d["metric"] == m]
        y = np.arange(len(e))[::-1]
        tol = e["tolerance"].fillna(0.0).to_numpy()
        ax.barh(y, 2 * tol, left=e["published"] - tol, height=0.6, color="0.85",
                label="published ± tolerance")
        ax.plot(e["published"], y, "k|", ms=12, label="published mean")
        colors = ["tab:red" if f == "OUT" else "tab:blue" for f in e["flag"]]
        for yi, v, sd, c in zip(y, e["ours"], e["ours_sd"].fillna(0.0), colors):
            ax.errorbar(v, yi, xerr=sd, fmt="none", ecolor=c, capsize=2, lw=1)
        ax.scatter(e["ours"], y, c=colors, s=14, zorder=3, label="ours (mean ± sd)")
        ax.set_yticks(y, e["label"], fontsize=7)
        ax.set_xlabel(m + (" (%)" if "accuracy" in m else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best", frameon=False)
    if common:
        fig.suptitle(", ".join(sorted(common)), fontsize=9)
    fig.tight_layout()
    return save(fig, stem)
