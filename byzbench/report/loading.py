"""Loading a sweep directory: one row per run (``load_runs``) and the tidy store, one
row per run x round x metric (``load_results``). Reads only ``summary.json``,
``metrics.csv``, ``.hydra/overrides.yaml`` / ``.hydra/config.yaml`` and the sweep's
``multirun.yaml``; no training code."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

# Overrides that do not change the numbers: never an axis of a table.
IGNORED_KEYS = {"progress", "plot", "threads", "resume", "device", "experiment"}

CHOICE_KEYS = ("dataset", "model", "attack", "agg", "preagg", "solver", "schedule",
               "partition", "experiment")


class ReportError(ValueError):
    """A bad report option or input (one line for the user, exit code 2)."""


def _float(x: Any) -> float:
    """JSON values written by ``write_summary`` (non-finite floats are strings)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _run_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p.parent for p in sweep_dir.rglob("summary.json")]

    def key(p: Path) -> tuple:
        rel = p.relative_to(sweep_dir).parts
        # Hydra's job numbers sort numerically (2 before 10).
        return tuple((0, int(s), "") if s.isdigit() else (1, 0, s) for s in rel)

    return sorted(dirs, key=key)


def _overrides(run_dir: Path, summary: dict[str, Any]) -> list[str]:
    ov = summary.get("overrides")
    if ov is None:
        # Failed runs may not record their overrides; Hydra wrote them next to the run.
        path = run_dir / ".hydra" / "overrides.yaml"
        ov = yaml.safe_load(path.read_text()) if path.is_file() else []
    return [str(o) for o in ov or []]


def _parse_override(o: str) -> tuple[str, str] | None:
    if "=" not in o or o.startswith("~"):
        return None
    k, v = o.split("=", 1)
    return k.lstrip("+"), v


def load_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per run dir below ``sweep_dir``.

    Columns: ``run`` (path relative to the sweep dir), ``status``, ``error``, ``seed``,
    ``n``, ``f``, ``f_declared``, ``byz_frac`` (= f / n), one column per Hydra choice
    (dataset, model, attack, agg, solver, ...), one per override key not already a
    choice (e.g. ``attack.period``, ``cluster.byz_frac``; values as strings), one
    ``final_<metric>`` per final metric, ``wall_time``, ``rounds_done``, ``config_hash``.
    """
    sweep_dir = Path(sweep_dir)
    rows = []
    for d in _run_dirs(sweep_dir):
        try:
            s = json.loads((d / "summary.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            s = {"status": "failed", "error": f"unreadable summary.json: {e}"}
        row: dict[str, Any] = {"run": str(d.relative_to(sweep_dir)) or ".",
                               "status": s.get("status", "failed"), "error": s.get("error")}
        choices = s.get("choices") or {}
        for k in CHOICE_KEYS:
            v = choices.get(k)
            row[k] = None if v is None else (v if isinstance(v, str) else str(v))
        for k, v in choices.items():
            if k not in row:
                row[k] = None if v is None else str(v)
        for o in _overrides(d, s):
            kv = _parse_override(o)
            if kv and kv[0] not in row and kv[0] != "seed":
                row[kv[0]] = kv[1]
        row["seed"] = s.get("seed")
        if row["seed"] is None:
            seeds = [kv[1] for o in _overrides(d, s) if (kv := _parse_override(o))
                     and kv[0] == "seed"]
            row["seed"] = int(seeds[0]) if seeds else 0
        for k in ("n", "f", "f_declared"):
            row[k] = s.get(k)
        n, f = _float(row["n"]), _float(row["f"])
        row["byz_frac"] = f / n if n > 0 else math.nan
        for k, v in (s.get("final") or {}).items():
            row[f"final_{k}"] = _float(v)
        for k in ("wall_time", "rounds_done", "config_hash"):
            row[k] = s.get(k)
        rows.append(row)
    runs = pd.DataFrame(rows)
    if len(runs) == 0:
        return runs
    for k in ("n", "f", "f_declared", "rounds_done"):
        runs[k] = pd.to_numeric(runs[k], errors="coerce").astype("Int64")
    runs["seed"] = runs["seed"].astype(int)
    return runs


@functools.lru_cache(maxsize=4096)
def _run_config(path: Path) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def config_value(sweep_dir: str | Path, run: str, key: str) -> Any:
    """The value of dotted ``key`` in a run's composed config (``.hydra/config.yaml``),
    for keys a sweep fixes without overriding them (set by an experiment or a default);
    None when absent. ``preagg`` gives the list of pre-aggregator option names."""
    node: Any = _run_config(Path(sweep_dir) / run / ".hydra" / "config.yaml")
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if key == "preagg":
        return list(node or {})
    return node


def load_results(sweep_dir: str | Path, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy store: one row per run x round x metric (``round, split, metric, value``)
    with the run's config columns, seed, n, f and status. Runs without ``metrics.csv``
    (failed ones) contribute no rows; they stay in ``load_runs``."""
    sweep_dir = Path(sweep_dir)
    runs = load_runs(sweep_dir) if runs is None else runs
    keep = [c for c in runs.columns if not c.startswith("final_")
            and c not in ("error", "wall_time", "rounds_done", "config_hash")]
    frames = []
    for _, r in runs.iterrows():
        path = sweep_dir / r["run"] / "metrics.csv"
        if not path.is_file():
            continue
        m = pd.read_csv(path)
        for c in keep:
            m[c] = r[c]
        frames.append(m)
    cols = keep + ["round", "split", "metric", "value"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def tail_mean(results: pd.DataFrame, split: str = "test", metric: str = "accuracy",
              window: int = 50) -> pd.Series:
    """Per run, the mean of ``split/metric`` over its evaluations in the last ``window``
    rounds (round > last round - window). Under an attack that flips every few rounds
    the value at the last round depends on the phase the run stopped in; the tail mean
    does not."""
    d = results[(results["split"] == split) & (results["metric"] == metric)]
    if d.empty:
        return pd.Series(dtype=float)
    last = d.groupby("run")["round"].transform("max")
    return d[d["round"] > last - window].groupby("run")["value"].mean()


def _sweep_order(sweep_dir: Path) -> dict[str, list[str]]:
    """Order of each swept value as written in the sweep (multirun.yaml), so tables
    and legends follow the command line rather than the alphabet."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}
    hyd = cfg.get("hydra") or {}
    items = list(((hyd.get("sweeper") or {}).get("params") or {}).items())
    for o in (hyd.get("overrides") or {}).get("task") or []:
        kv = _parse_override(str(o))
        if kv:
            items.append(kv)
    order: dict[str, list[str]] = {}
    for k, v in items:
        v = str(v)
        if not re.search(r"[\[\]\(\)\{\}]", v):  # plain a,b,c lists only
            order[k.lstrip("+")] = [s.strip() for s in v.split(",")]
    return order
