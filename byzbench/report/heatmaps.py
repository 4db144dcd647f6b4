"""ByzFL-style heatmaps (``heat_map_test_accuracy`` in byzfl/benchmark/evaluate_results.py):
per rule, the number of Byzantine workers f (or f/n) x the data heterogeneity, each cell
the worst case over attacks of the final (or best-over-time) test accuracy, mean over
seeds. Any sweep works: the heterogeneity axis is what the sweep varies in ``partition``
(the option and its parameters, e.g. ``partition.alpha``), or a column you name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from byzbench.report.cells import cell_values, worst_over
from byzbench.report.labels import _label_order, _sorted_values, add_labels, group_order, varying
from byzbench.report.loading import ReportError
from byzbench.report.tables import _fmt, is_rate, markdown

X_AXES = ("f", "byz_frac")


def heterogeneity_axes(runs: pd.DataFrame) -> list[str]:
    """The swept partition keys: ``partition`` (the option) and ``partition.*``."""
    return [c for c in varying(runs) if c == "partition" or c.startswith("partition.")]


def _het_label(runs: pd.DataFrame, cols: list[str]) -> pd.Series:
    if not cols:
        base = runs["partition"] if "partition" in runs else pd.Series("", index=runs.index)
        return base.fillna("").astype(str)
    if len(cols) == 1:
        return runs[cols[0]].astype(str)
    return runs[cols].astype(str).apply(
        lambda r: ",".join(f"{c.split('.', 1)[-1]}={v}" for c, v in r.items()), axis=1)


def worst_case_grid(runs: pd.DataFrame, results: pd.DataFrame, metric: str = "test_accuracy",
                    how: str = "final", x: str = "f", y: list[str] | None = None,
                    exclude: list[str] | tuple = (),
                    order: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Worst case over attacks of ``metric`` per (group, rule, x, heterogeneity).

    Args:
        runs, results: ``load_runs`` / ``load_results`` (labelled or not).
        how: ``final`` (mean over seeds of the last value) or ``best`` (max over rounds
            of the seed-mean curve, ByzFL).
        x: ``f`` (Byzantine workers) or ``byz_frac`` (f/n).
        y: heterogeneity columns (default ``heterogeneity_axes``).
        exclude: further swept keys that are no axis of the result (e.g. hyperparameters
            already fixed by ``select_hparams``). Swept ``cluster.*`` keys that ``x``
            determines (``cluster.byz_frac``; ``cluster.n_workers`` when n grows with f,
            as in ByzFL's fixed number of honest workers) are the x axis, not a group;
            any other swept key makes one heatmap per value.

    Returns columns ``group, rule, x, heterogeneity, value, worst_attack, n_attacks``; a
    (group, rule) that did not run some attack at a cell gets the worst value there.
    """
    if x not in X_AXES:
        raise ReportError(f"--heat-x {x}: one of {', '.join(X_AXES)}")
    order = order or {}
    y = heterogeneity_axes(runs) if y is None else y
    for c in y:
        if c not in runs:
            raise ReportError(f"--heat-y {c}: not a column of this sweep")
    # cluster keys that f (or f/n) determines are the x axis itself, not a group
    xs = [c for c in varying(runs) if c.startswith("cluster.")
          and runs.groupby(x)[c].nunique(dropna=False).max() <= 1]
    exclude = [*y, *xs, *exclude]
    lab = add_labels(runs, exclude=exclude)
    lab["heterogeneity"] = _het_label(lab, y)
    keys = ["group", "rule_label", x, "heterogeneity"]
    cells = cell_values(lab, results, keys + ["attack_label"], metric, how)
    out = []
    for (g, rule), d in lab.groupby(["group", "rule_label"], sort=False):
        attacks = _label_order(d, "attack_label", "attack", order)
        c = cells[(cells["group"] == g) & (cells["rule_label"] == rule)]
        out.append(worst_over(c, keys, "attack_label", metric, complete=attacks))
    if not out:
        raise ReportError("--heatmaps: no run of this sweep finished")
    grid = pd.concat(out, ignore_index=True).rename(
        columns={"rule_label": "rule", "worst_attack_label": "worst_attack", "n": "n_attacks"})
    grid.attrs["x_order"] = _sorted_values(lab[x], None)
    het_rank = lab.sort_values(y, key=lambda s: s.map(
        {v: i for i, v in enumerate(_sorted_values(s, order.get(s.name)))})) if y else lab
    grid.attrs["y_order"] = list(dict.fromkeys(het_rank["heterogeneity"]))
    grid.attrs["groups"] = group_order(lab, order, exclude=exclude)
    grid.attrs["rules"] = _label_order(lab, "rule_label", "agg", order)
    grid.attrs["y_name"] = ",".join(y) or "partition"
    return grid


def _matrix(grid: pd.DataFrame, x: str, group: str, rule: str) -> pd.DataFrame:
    d = grid[(grid["group"] == group) & (grid["rule"] == rule)]
    m = d.pivot(index="heterogeneity", columns=x, values="value")
    return m.reindex(index=[v for v in grid.attrs["y_order"] if v in m.index],
                     columns=[v for v in grid.attrs["x_order"] if v in m.columns])


def grid_markdown(grid: pd.DataFrame, x: str = "f", metric: str = "test_accuracy",
                  how: str = "final") -> str:
    """One table per (group, rule): rows = heterogeneity, columns = ``x``."""
    stat = "final" if how == "final" else "best over time"
    parts = [f"# Worst case over attacks of the {stat} {metric} (mean over seeds): rows = "
             f"{grid.attrs['y_name']} (heterogeneity), columns = {x}\n"]
    for g in grid.attrs["groups"]:
        for rule in grid.attrs["rules"]:
            m = _matrix(grid, x, g, rule)
            if m.empty:
                continue
            m = m.apply(lambda col: col.map(lambda v: _fmt(v, float("nan"))))
            m.columns = [str(c) for c in m.columns]
            parts.append(f"## {rule}" + (f" ({g})" if g else "") + "\n")
            parts.append(markdown(m, f"{grid.attrs['y_name']} \\ {x}") + "\n")
    return "\n".join(parts)


def grid_figures(grid: pd.DataFrame, stem: Path, x: str = "f",
                 metric: str = "test_accuracy", how: str = "final") -> list[Path]:
    """One figure per group, one heatmap panel per rule (shared color scale)."""
    import matplotlib.pyplot as plt

    from byzbench.plots import save, slug

    paths: list[Path] = []
    accuracy = "accuracy" in metric
    for g in grid.attrs["groups"]:
        mats = [(r, _matrix(grid, x, g, r)) for r in grid.attrs["rules"]]
        mats = [(r, m) for r, m in mats if not m.empty]
        if not mats:
            continue
        allv = np.concatenate([m.to_numpy(dtype=float).ravel() for _, m in mats])
        fin = allv[np.isfinite(allv)]
        vmin, vmax = ((0.0, 1.0) if is_rate(metric) or not fin.size
                      else (fin.min(), fin.max()))
        ny, nx = mats[0][1].shape
        fig, axes = plt.subplots(1, len(mats), squeeze=False,
                                 figsize=(1.5 + (0.6 * nx + 1.0) * len(mats), 1.2 + 0.45 * ny))
        for ax, (rule, m) in zip(axes[0], mats):
            a = m.to_numpy(dtype=float)
            im = ax.imshow(np.where(np.isfinite(a), a, np.nan), vmin=vmin, vmax=vmax,
                           cmap="viridis" if accuracy else "viridis_r", aspect="auto")
            for (i, j), v in np.ndenumerate(a):
                if not np.isnan(v):
                    ax.text(j, i, "inf" if np.isinf(v) else f"{v:.2f}", ha="center",
                            va="center", fontsize=7,
                            color="white" if (v - vmin) < 0.5 * (vmax - vmin) else "black")
            ax.set_xticks(range(m.shape[1]), [f"{c:.2g}" if isinstance(c, float) else str(c)
                                              for c in m.columns], fontsize=8)
            ax.set_yticks(range(m.shape[0]), [str(r) for r in m.index] if ax is axes[0, 0]
                          else [], fontsize=8)
            ax.set_xlabel("f" if x == "f" else "f/n")
            ax.set_title(str(rule), fontsize=10)
        axes[0, 0].set_ylabel(grid.attrs["y_name"])
        stat = "final" if how == "final" else "best"
        fig.colorbar(im, ax=list(axes[0]), shrink=0.9, label=f"worst-case {stat} {metric}")
        if g:
            fig.suptitle(g, fontsize=10)
        paths += save(fig, Path(f"{stem}_{slug({'g': g})}" if g else stem))
    return paths
