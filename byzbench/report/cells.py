"""One number per cell of a sweep (a cell = runs that differ only by seed): the mean over
seeds of a metric's final value, or its best value over time (ByzFL's convention), and
the worst case of such cells over attacks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from byzbench.report.loading import ReportError
from byzbench.report.tables import final_values, higher_is_better

HOW = ("final", "best")


def cell_values(runs: pd.DataFrame, results: pd.DataFrame, keys: list[str], metric: str,
                how: str = "final") -> pd.DataFrame:
    """``metric`` (``<split>_<name>``, e.g. ``val_accuracy``) per cell ``keys``.

    ``how="final"``: mean over seeds of each run's last logged value (``final_<metric>``;
    a diverged run's non-finite loss counts as +inf). ``how="best"``: the seed-mean curve
    over evaluation rounds, then its max (min for a loss) over rounds: ByzFL's
    ``heat_map_test_accuracy`` / ``find_best_hyperparameters``. Failed runs count in
    neither; a cell with no finished run has value NaN.

    Returns one row per cell: ``keys``, ``value``, ``n_seeds``.
    """
    if how not in HOW:
        raise ReportError(f"how={how!r} is invalid: one of {', '.join(HOW)}")
    done = runs[runs["status"] != "failed"]
    cols = keys + ["value", "n_seeds"]
    if how == "final":
        g = done.assign(value=final_values(done, metric)).groupby(keys, sort=False,
                                                                  dropna=False)
        out = g["value"].mean().reset_index()
        out["n_seeds"] = g.size().to_numpy()
        return out[cols]
    split, name = metric.split("_", 1)
    d = results[(results["split"] == split) & (results["metric"] == name)][["run", "round",
                                                                            "value"]]
    d = d.merge(done[["run"] + keys], on="run")
    if d.empty:
        return pd.DataFrame(columns=cols)
    curve = d.groupby(keys + ["round"], sort=False, dropna=False)["value"].mean().reset_index()
    g = curve.groupby(keys, sort=False, dropna=False)["value"]
    out = (g.max() if higher_is_better(metric) else g.min()).reset_index()
    seeds = d.groupby(keys, sort=False, dropna=False)["run"].nunique().reset_index(name="n_seeds")
    return out.merge(seeds, on=keys)[cols]


def worst_over(cells: pd.DataFrame, keys: list[str], over: str, metric: str,
               complete: list | None = None) -> pd.DataFrame:
    """Per ``keys``, the worst ``value`` over the values of column ``over`` (min for an
    accuracy, max for a loss) and which one it is (``worst_<over>``). A cell with no
    value (NaN: every seed failed), or a value of ``complete`` missing, makes the
    worst case the worst possible (-inf accuracy, +inf loss): a configuration that did
    not run against every attack is never the best one."""
    higher = higher_is_better(metric)
    bad = -np.inf if higher else np.inf
    rows = []
    groups = cells.groupby(keys, sort=False, dropna=False) if keys else [((), cells)]
    for k, d in groups:
        v = d.set_index(over)["value"].astype(float)
        if complete is not None:
            v = v.reindex(complete)
        v = v.fillna(bad)
        w = v.idxmin() if higher else v.idxmax()
        rows.append(dict(zip(keys, k if isinstance(k, tuple) else (k,)),
                         value=float(v[w]), **{f"worst_{over}": w}, n=len(v)))
    return pd.DataFrame(rows, columns=keys + ["value", f"worst_{over}", "n"])
