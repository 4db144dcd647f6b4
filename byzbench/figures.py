"""Paper figures from a sweep's data files (PNG + PDF); never imports training code.

- ``convergence_grid``: rows = rules, columns = solvers, lines = attacks; mean over seeds
  with a +-1 sd band.
- ``heatmap``: attack x rule of the mean final metric (one panel per solver).
- ``vs_byz_fraction``: final metric versus the Byzantine fraction f/n, one line per rule.
- ``vs_local_steps``: final metric versus FedAvg's local steps K, one line per rule.
- ``runtime``: aggregator wall-clock seconds versus n and versus d (benchmark CSV).
- ``make_figures``: all of the above that the sweep's axes allow.

Labels are option names (``conf/<group>/<option>.yaml``), plus any swept parameter.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from byzbench import report  # noqa: E402
from byzbench.plots import save, slug  # noqa: E402

CONVEX_MODELS = {"logreg", "linear"}


def _values(df: pd.DataFrame, col: str | None, order: dict) -> list:
    if col is None or col not in df:
        return [None]
    if col.endswith("_label"):
        base = "attack" if col.startswith("attack") else "agg"
        return [v for v in report._label_order(df, col, base, order) if v in set(df[col])]
    return report._sorted_values(df[col], order.get(col))


def _split(df: pd.DataFrame, axes: list[str], order: dict):
    """Yield ({axis: value}, sub-frame) for every combination of ``axes`` present."""
    axes = [a for a in axes if a in df]
    if not axes:
        yield {}, df
        return
    for combo in itertools.product(*[_values(df, a, order) for a in axes]):
        mask = np.ones(len(df), dtype=bool)
        for a, v in zip(axes, combo):
            mask &= (df[a] == v).to_numpy()
        if mask.any():
            yield dict(zip(axes, combo)), df[mask]


def _sel(df: pd.DataFrame, col: str | None, v) -> pd.DataFrame:
    return df if col is None or v is None or col not in df else df[df[col] == v]


def convergence_grid(results: pd.DataFrame, runs: pd.DataFrame, stem: Path,
                     split: str = "test", metric: str = "accuracy", rows: str = "rule_label",
                     cols: str = "solver", lines: str = "attack_label",
                     order: dict | None = None, logy: bool = False) -> list[Path]:
    """One figure per combination of the other swept axes: ``split/metric`` versus round,
    subplot grid ``rows x cols``, one line per value of ``lines`` (mean over seeds, band
    = +-1 sd). Runs that stopped early (diverged) contribute only their logged rounds.

    Args:
        results: the tidy store (``report.load_results``).
        runs: one row per run (``report.load_runs``).
        stem: output path without suffix; a suffix naming the other axes is appended.
        logy: a log y axis (e.g. the gossip consensus distance, which spans decades).
    """
    order = order or {}
    runs = report.add_labels(runs) if "attack_label" not in runs else runs
    lab = runs[["run", "attack_label", "rule_label"]]
    d = results[(results["split"] == split) & (results["metric"] == metric)]
    d = d.merge(lab, on="run")
    if d.empty:
        return []
    others = [a for a in report.group_axes(runs) if a not in (rows, cols, lines)]
    paths: list[Path] = []
    for combo, sub in _split(d, others, order):
        rv, cv, lv = _values(sub, rows, order), _values(sub, cols, order), \
            _values(sub, lines, order)
        fig, axes = plt.subplots(len(rv), len(cv), figsize=(3.4 * len(cv), 2.4 * len(rv)),
                                 squeeze=False, sharex=True, sharey=True)
        colors = plt.cm.tab10.colors
        for i, r in enumerate(rv):
            for j, c in enumerate(cv):
                ax = axes[i, j]
                cell = _sel(_sel(sub, rows, r), cols, c)
                for k, ln in enumerate(lv):
                    x = _sel(cell, lines, ln)
                    if x.empty:
                        continue
                    st = x.groupby("round")["value"].agg(["mean", "std"]).reset_index()
                    sd = st["std"].fillna(0.0)
                    ax.plot(st["round"], st["mean"], color=colors[k % 10], lw=1.3,
                            label=str(ln) if ln is not None else metric)
                    if logy:
                        ax.set_yscale("log")
                    ax.fill_between(st["round"], st["mean"] - sd, st["mean"] + sd,
                                    color=colors[k % 10], alpha=0.2, lw=0)
                if metric == "loss" or metric.startswith("loss"):
                    ax.set_yscale("log")
                ax.grid(alpha=0.3)
                if i == 0 and c is not None:
                    ax.set_title(str(c), fontsize=10)
                if j == 0:
                    ax.set_ylabel(f"{r}\n{split} {metric}" if r is not None else
                                  f"{split} {metric}", fontsize=9)
                if i == len(rv) - 1:
                    ax.set_xlabel("round")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        for ax in axes.flat:
            h, lb = ax.get_legend_handles_labels()
            if len(lb) > len(labels):
                handles, labels = h, lb
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6),
                   bbox_to_anchor=(0.5, 1.0), fontsize=9, frameon=False)
        title = " ".join(f"{k}={v}" for k, v in combo.items())
        fig.tight_layout(rect=(0, 0, 1, 0.97 if len(rv) > 3 else 0.93))
        if title:
            fig.suptitle(title, y=1.02, fontsize=10)
        paths += save(fig, Path(f"{stem}_{slug(combo)}" if combo else stem))
    return paths


def heatmap(runs: pd.DataFrame, stem: Path, metric: str = "test_accuracy",
            panels: str = "solver", order: dict | None = None) -> list[Path]:
    """Attack (columns) x rule (rows) heatmap of the mean final ``metric`` over seeds, one
    panel per value of ``panels``, one figure per combination of the other axes. Failed
    cells are blank; diverged losses count as +inf (shown as 'inf')."""
    order = order or {}
    runs = report.add_labels(runs) if "attack_label" not in runs else runs
    if f"final_{metric}" not in runs:
        return []
    others = [a for a in report.group_axes(runs) if a != panels]
    higher = report.higher_is_better(metric)
    paths: list[Path] = []
    for combo, sub in _split(runs, others, order):
        pv = _values(sub, panels, order)
        att = _values(sub, "attack_label", order)
        rul = _values(sub, "rule_label", order)
        fig, axes = plt.subplots(1, len(pv), figsize=(2.0 + (0.75 * len(att) + 0.3) * len(pv),
                                                       1.2 + 0.4 * len(rul)), squeeze=False)
        mats = []
        for p in pv:
            # ``sub`` is labelled already and fixes every other axis: one group.
            fin = report.final_table(_sel(sub, panels, p), metric)
            m = fin.pivot(index="rule", columns="attack", values="mean")
            mats.append(m.reindex(index=rul, columns=att))
        allv = np.concatenate([m.to_numpy(dtype=float).ravel() for m in mats])
        fin_v = allv[np.isfinite(allv)]
        vmin, vmax = (0.0, 1.0) if report.is_rate(metric) else (
            (fin_v.min(), fin_v.max()) if fin_v.size else (0.0, 1.0))
        log = (not higher) and fin_v.size and fin_v.min() > 0 and fin_v.max() / fin_v.min() > 20
        norm = matplotlib.colors.LogNorm(vmin, vmax) if log else \
            matplotlib.colors.Normalize(vmin, vmax)
        cmap = "viridis" if higher else "viridis_r"
        for ax, p, m in zip(axes[0], pv, mats):
            a = m.to_numpy(dtype=float)
            im = ax.imshow(np.where(np.isfinite(a), a, np.nan), cmap=cmap, norm=norm,
                           aspect="auto")
            for (i, j), v in np.ndenumerate(a):
                if math.isnan(v):
                    continue
                txt = "inf" if math.isinf(v) else (f"{v:.2f}" if abs(v) < 100 else f"{v:.2g}")
                shade = norm(v) if np.isfinite(v) else 1.0
                dark = shade < 0.5 if higher else shade > 0.5
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
            ax.set_xticks(range(len(att)), [str(x) for x in att], rotation=40, ha="right",
                          fontsize=8)
            # shared rows: rule names on the first panel only
            ax.set_yticks(range(len(rul)), [str(x) for x in rul] if ax is axes[0, 0] else [],
                          fontsize=8)
            if p is not None:
                ax.set_title(str(p), fontsize=10)
        fig.colorbar(im, ax=list(axes[0]), shrink=0.9, label=f"final {metric}")
        title = " ".join(f"{k}={v}" for k, v in combo.items())
        if title:
            fig.suptitle(title, fontsize=10)
        name = f"{stem}_{metric}" + (f"_{slug(combo)}" if combo else "")
        paths += save(fig, Path(name))
    return paths


def vs_byz_fraction(runs: pd.DataFrame, stem: Path, metric: str = "test_accuracy",
                    order: dict | None = None) -> list[Path]:
    """Mean final ``metric`` (+-1 sd over seeds) versus f/n, one line per rule; panels:
    columns = attacks, rows = solvers; one figure per combination of the other axes.
    Nothing is drawn unless the sweep has at least two Byzantine fractions."""
    return vs_axis(runs, stem, "byz_frac", "Byzantine fraction f/n", "solver", metric, order,
                   skip=("cluster.byz_frac", "cluster.n_workers"))


def vs_local_steps(runs: pd.DataFrame, stem: Path, metric: str = "test_accuracy",
                   order: dict | None = None) -> list[Path]:
    """Mean final ``metric`` (+-1 sd over seeds) versus FedAvg's local steps K (log
    axis), one line per rule; panels: columns = attacks, rows = participation. Nothing
    is drawn unless the sweep has at least two values of ``algorithm.local_steps``."""
    return vs_axis(runs, stem, "algorithm.local_steps", "local steps K", "cluster.participation",
                   metric, order, logx=True)


def vs_axis(runs: pd.DataFrame, stem: Path, x_col: str, xlabel: str, row_col: str,
            metric: str = "test_accuracy", order: dict | None = None,
            skip: tuple[str, ...] = (), logx: bool = False) -> list[Path]:
    """Mean final ``metric`` (+-1 sd over seeds) versus the numeric column ``x_col``, one
    line per rule; panels: columns = attacks, rows = values of ``row_col``; one figure
    per combination of the other swept axes (minus ``skip``). Nothing is drawn unless
    ``x_col`` takes at least two values."""
    order = order or {}
    runs = report.add_labels(runs) if "attack_label" not in runs else runs
    col = f"final_{metric}"
    if col not in runs or x_col not in runs or runs[x_col].dropna().nunique() < 2:
        return []
    others = [a for a in report.group_axes(runs) if a not in (row_col, x_col, *skip)]
    done = runs[runs["status"] != "failed"].assign(_x=lambda r: pd.to_numeric(r[x_col]))
    paths: list[Path] = []
    for combo, sub in _split(done, others, order):
        att, rows = _values(sub, "attack_label", order), _values(sub, row_col, order)
        rul = _values(sub, "rule_label", order)
        fig, axes = plt.subplots(len(rows), len(att), figsize=(3.3 * len(att), 2.6 * len(rows)),
                                 squeeze=False, sharex=True, sharey=True)
        for i, s in enumerate(rows):
            for j, a in enumerate(att):
                ax = axes[i, j]
                cell = _sel(_sel(sub, row_col, s), "attack_label", a)
                for k, r in enumerate(rul):
                    x = cell[cell["rule_label"] == r]
                    if x.empty:
                        continue
                    st = x.groupby("_x")[col].agg(["mean", "std"]).reset_index()
                    ax.errorbar(st["_x"], st["mean"], yerr=st["std"].fillna(0.0),
                                marker="o", ms=3, lw=1.2, capsize=2, label=str(r),
                                color=plt.cm.tab10.colors[k % 10])
                if logx:
                    ax.set_xscale("log")
                ax.grid(alpha=0.3)
                if i == 0:
                    ax.set_title(str(a), fontsize=10)
                if j == 0:
                    name = f"{row_col}={s}" if row_col != "solver" else s
                    ax.set_ylabel(f"{name}\nfinal {metric}" if s is not None
                                  else f"final {metric}", fontsize=9)
                if i == len(rows) - 1:
                    ax.set_xlabel(xlabel)
        h, lb = [], []
        for ax in axes.flat:
            hh, ll = ax.get_legend_handles_labels()
            if len(ll) > len(lb):
                h, lb = hh, ll
        fig.legend(h, lb, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                   frameon=False)
        title = " ".join(f"{k}={v}" for k, v in combo.items())
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        paths += save(fig, Path(f"{stem}_{slug(combo)}" if combo else stem))
    return paths


def runtime(bench: pd.DataFrame | str | Path, stem: Path, n: str = "n", d: str = "d",
            rule: str | None = None, seconds: str = "seconds") -> list[Path]:
    """Aggregator wall-clock time (median over repeats) versus n (at the most measured d)
    and versus d (at the most measured n), one line per rule (per rule and device when
    several devices were measured), log-log.

    Args:
        bench: the benchmark table (or its CSV path, e.g. the ``--out`` of
            ``scripts/bench_aggregators.py``) with columns named by ``n``, ``d``,
            ``rule`` (default: ``rule``, else ``stage`` as that script writes), ``seconds``.
    """
    df = pd.read_csv(bench) if not isinstance(bench, pd.DataFrame) else bench
    if rule is None:
        rule = "rule" if "rule" in df else "stage"
    df = df.rename(columns={n: "n", d: "d", rule: "rule", seconds: "seconds"})
    if "device" in df and df["device"].nunique() > 1:
        df = df.assign(rule=df["rule"].astype(str) + " [" + df["device"].astype(str) + "]")
    df = df.groupby(["rule", "n", "d"], as_index=False)["seconds"].median()

    def ref(col: str) -> float:
        counts = df.groupby(col)["rule"].count()
        return counts[counts == counts.max()].index.max()

    d_ref, n_ref = ref("d"), ref("n")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, x, fixed, val in ((axes[0], "n", "d", d_ref), (axes[1], "d", "n", n_ref)):
        sub = df[df[fixed] == val]
        for k, (r, g) in enumerate(sub.groupby("rule", sort=True)):
            g = g.sort_values(x)
            ax.plot(g[x], g["seconds"], marker="o", ms=3, label=str(r),
                    color=plt.cm.tab20.colors[k % 20])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel("seconds per aggregation")
        ax.set_title(f"{fixed} = {int(val) if float(val).is_integer() else val}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    h, lb = axes[0].get_legend_handles_labels()
    fig.legend(h, lb, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return save(fig, Path(stem))


def make_figures(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 bench_csv: str | Path | None = None,
                 metric: str | None = None) -> list[Path]:
    """Every figure the sweep's axes allow, into ``out_dir`` (default
    ``sweep_dir/report``): convergence grids (test accuracy, or loss for regression),
    heatmaps (accuracy, plus loss for convex models or regression), final metric versus
    f/n when swept, and the aggregator runtime figure when ``bench_csv`` is given."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    runs = report.add_labels(report.load_runs(sweep_dir))
    results = report.load_results(sweep_dir, runs.drop(
        columns=["attack_label", "rule_label", "group"]))
    order = report._sweep_order(sweep_dir)
    metric = metric or report.default_metric(runs)
    split, name = metric.split("_", 1)
    paths = convergence_grid(results, runs, out / f"convergence_{metric}", split=split,
                             metric=name, order=order)
    paths += heatmap(runs, out / "heatmap", metric, order=order)
    convex = runs["model"].isin(CONVEX_MODELS).all() if "model" in runs else False
    if convex and metric != "test_loss" and "final_test_loss" in runs:
        paths += heatmap(runs, out / "heatmap", "test_loss", order=order)
    paths += vs_byz_fraction(runs, out / f"vs_byz_fraction_{metric}", metric, order=order)
    paths += vs_local_steps(runs, out / f"vs_local_steps_{metric}", metric, order=order)
    if bench_csv is not None:
        paths += runtime(bench_csv, out / "aggregator_runtime")
    return paths
