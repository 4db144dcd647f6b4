"""Result store and tables for a sweep directory (data files in, tables out).

``byzbench-report SWEEP_DIR`` (or ``python -m byzbench.report SWEEP_DIR``) reads every
run dir below SWEEP_DIR (any folder holding a ``summary.json``) and writes, into
``SWEEP_DIR/report`` unless ``--out`` says otherwise:

- ``runs.csv``: one row per run (status, error, choices, overrides, seed, n, f, final
  metrics, wall time);
- ``results.csv`` / ``results.parquet``: the tidy store, one row per run x round x
  metric (``round, split, metric, value``) plus the run's config columns and seed;
- ``final_<metric>.md/.csv``: final metric mean +- sd over seeds, rule x attack, one
  table per value of the other swept axes (solver, Byzantine fraction, ...);
- ``worst_case_<metric>.md/.csv``: per rule, the worst attack (lowest mean accuracy, or
  highest mean loss) and its value;
- ``selection.md/.csv``: Byzantine-selection rate per rule, the mean over rounds and
  seeds of the fraction of aggregation weight on Byzantine rows (``train/byz_weight``),
  for rules that expose weights; ``f/n`` is what a rule blind to the attack would give.

No training code is imported: everything comes from ``summary.json``, ``metrics.csv``,
``.hydra/overrides.yaml`` and the sweep's ``multirun.yaml``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

# Overrides that do not change the numbers: never an axis of a table.
IGNORED_KEYS = {"progress", "plot", "threads", "resume", "device", "experiment"}


def higher_is_better(metric: str) -> bool:
    """Accuracies (any name containing 'accuracy') are maximized; everything else is a
    loss or an error (minimized)."""
    return "accuracy" in metric

CHOICE_KEYS = ("dataset", "model", "attack", "agg", "preagg", "solver", "schedule",
               "partition", "experiment")


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


def _sorted_values(values: pd.Series, order: list[str] | None = None) -> list:
    vals = list(dict.fromkeys(values.dropna().tolist()))
    order = order or []

    def key(v: Any) -> tuple:
        s = str(v)
        if s in order:
            return (0, order.index(s), 0.0, "")
        if s == "none":
            return (1, 0, 0.0, "")
        x = _float(s)
        # numbers ascending; other strings keep their first appearance (sorted runs)
        return (2, 0, x, "") if not math.isnan(x) else (3, 0, 0.0, "")

    return sorted(vals, key=key)


def config_columns(runs: pd.DataFrame) -> list[str]:
    """Columns of ``runs`` that describe the config (choices and overrides), not results."""
    skip = {"run", "status", "error", "seed", "n", "f", "f_declared", "byz_frac", "wall_time",
            "rounds_done", "config_hash", "attack_label", "rule_label", "group"}
    return [c for c in runs.columns if c not in skip and not c.startswith("final_")
            and c not in IGNORED_KEYS]


def varying(runs: pd.DataFrame) -> list[str]:
    """Config columns that take more than one value across the runs (the sweep's axes,
    seed excluded)."""
    return [c for c in config_columns(runs)
            if runs[c].astype(str).nunique(dropna=False) > 1]


def add_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``attack_label`` / ``rule_label`` (the option name plus any swept parameter
    of it, e.g. ``seesaw(period=1,groups=2)``) and ``group`` (the other swept axes,
    e.g. ``solver=adam``; '' when there are none)."""
    runs = runs.copy()
    axes = varying(runs)

    def label(base: str, prefixes: tuple[str, ...]) -> pd.Series:
        params = [c for c in axes if c.startswith(prefixes)]
        out = runs[base].astype(str) if base in runs else pd.Series("", index=runs.index)
        if base == "agg" and "preagg" in axes:
            out = runs["preagg"].astype(str) + "+" + out
        if params:
            inner = runs[params].astype(str).apply(
                lambda r: ",".join(f"{c.split('.', 1)[1]}={v}" for c, v in r.items()), axis=1)
            out = out + "(" + inner + ")"
        return out

    runs["attack_label"] = label("attack", ("attack.",))
    runs["rule_label"] = label("agg", ("agg.", "preagg."))
    rest = group_axes(runs)
    runs["group"] = runs[rest].astype(str).apply(
        lambda r: " ".join(f"{c}={v}" for c, v in r.items()), axis=1) if rest else ""
    return runs


def group_axes(runs: pd.DataFrame) -> list[str]:
    """Swept axes other than the attack and the rule (and their parameters)."""
    return [c for c in varying(runs) if c not in ("attack", "agg", "preagg")
            and not c.startswith(("attack.", "agg.", "preagg."))]


def default_metric(runs: pd.DataFrame) -> str:
    """``test_accuracy`` for classification sweeps, else ``test_loss``."""
    if "final_test_accuracy" in runs and runs["final_test_accuracy"].notna().any():
        return "test_accuracy"
    return "test_loss"


def final_table(runs: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Final ``metric`` over seeds per (group, rule, attack): ``mean``, ``sd`` (sample,
    ddof=1; NaN for one seed), ``n_seeds`` (finished runs), ``n_failed``, ``n_diverged``.

    Runs that diverged count with their recorded final value; a non-finite loss counts
    as +inf (the worst), so a diverged seed shows in the mean rather than vanishing."""
    runs = runs if "attack_label" in runs else add_labels(runs)
    col = f"final_{metric}"
    vals = runs[col] if col in runs else pd.Series(np.nan, index=runs.index)
    if not higher_is_better(metric):
        vals = vals.where(~(vals.isna() & (runs["status"] == "diverged")), np.inf)
    df = runs.assign(_v=vals)
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
    max loss) among the attacks that ran, and that mean and sd."""
    higher = higher_is_better(metric)
    out = []
    for (g, rule), d in final.groupby(["group", "rule"], sort=False):
        d = d[d["n_seeds"] > 0]
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


def _pivot(df: pd.DataFrame, rows: str, cols: str, cell: pd.Series,
           row_order: list, col_order: list) -> pd.DataFrame:
    t = df.assign(_cell=cell).pivot(index=rows, columns=cols, values="_cell")
    t = t.reindex(index=[r for r in row_order if r in t.index],
                  columns=[c for c in col_order if c in t.columns])
    t.index.name, t.columns.name = None, None
    return t


def _label_order(runs: pd.DataFrame, label: str, base: str, order: dict) -> list:
    """Label order: the option's order in the sweep, then its parameters' order."""
    keys = [c for c in varying(runs) if c.startswith(base + ".")]
    cols = [base] + keys
    firsts = runs.drop_duplicates(label)[[label] + [c for c in cols if c in runs]]

    def key(r: pd.Series) -> tuple:
        parts = []
        for c in cols:
            if c not in r:
                continue
            vals = _sorted_values(runs[c], order.get(c))
            parts.append(vals.index(r[c]) if r[c] in vals else len(vals))
        return tuple(parts)

    return [r[label] for _, r in sorted(firsts.iterrows(), key=lambda ir: key(ir[1]))]


def group_order(runs: pd.DataFrame, order: dict[str, list[str]] | None = None) -> list[str]:
    """The ``group`` labels of labelled ``runs``, sorted axis by axis in sweep order."""
    order = order or {}
    axes = group_axes(runs)
    ranks = {c: _sorted_values(runs[c], order.get(c)) for c in axes}
    firsts = runs.drop_duplicates("group")
    keyed = [(tuple(ranks[c].index(r[c]) if r[c] in ranks[c] else -1 for c in axes), r["group"])
             for _, r in firsts.iterrows()]
    return [g for _, g in sorted(keyed, key=lambda x: x[0])]


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


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 metric: str | None = None, quiet: bool = False,
                 tail: int = 0) -> dict[str, Path]:
    """Read ``sweep_dir``, write the store and the tables into ``out_dir`` (default
    ``sweep_dir/report``), print the tables unless ``quiet``; return the written paths.
    ``tail > 0`` adds the final and worst-case tables of ``tail<R>_<metric>``, the mean
    of the metric over the last ``tail`` rounds (``tail_mean``)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    runs = load_runs(sweep_dir)
    if runs.empty:
        raise FileNotFoundError(f"no run dir (summary.json) below {sweep_dir}")
    results = load_results(sweep_dir, runs)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    runs.to_csv(out / "runs.csv", index=False)
    paths["runs"] = out / "runs.csv"
    results.to_csv(out / "results.csv", index=False)
    paths["results_csv"] = out / "results.csv"
    try:
        pq = results.copy()
        for c in pq.columns:
            if pq[c].dtype == object:
                pq[c] = pq[c].astype("string")
        pq.to_parquet(out / "results.parquet", index=False)
        paths["results_parquet"] = out / "results.parquet"
    except ImportError as e:  # pyarrow is in the [test] extra, not a core dependency
        print(f"byzbench-report: results.parquet skipped ({e})", file=sys.stderr)
    metric = metric or default_metric(runs)
    order = _sweep_order(sweep_dir)
    lab = add_labels(runs)
    fin = final_table(lab, metric)
    fin.to_csv(out / f"final_{metric}.csv", index=False)
    worst_case(fin, metric).to_csv(out / f"worst_case_{metric}.csv", index=False)
    selection_rate(results, lab).to_csv(out / "selection.csv", index=False)
    texts = tables(runs, results, metric, order)
    if tail > 0:
        split, name = metric.split("_", 1)
        tm = f"tail{tail}_{metric}"
        runs_t = runs.assign(**{f"final_{tm}": runs["run"].map(
            tail_mean(results, split, name, tail))})
        fin_t = final_table(add_labels(runs_t), tm)
        fin_t.to_csv(out / f"final_{tm}.csv", index=False)
        worst_case(fin_t, tm).to_csv(out / f"worst_case_{tm}.csv", index=False)
        texts.update({k: v for k, v in tables(runs_t, results, tm, order).items()
                      if k.startswith(("final_", "worst_case_"))})
    for stem, text in texts.items():
        (out / f"{stem}.md").write_text(text)
        paths[stem] = out / f"{stem}.md"
        if not quiet:
            print(text)
    counts = runs["status"].value_counts().to_dict()
    if not quiet:
        print(f"{len(runs)} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
              f"files in {out}")
    return paths


def main(argv: list[str] | None = None) -> None:
    """Console script ``byzbench-report SWEEP_DIR [--out DIR] [--metric NAME]``."""
    p = argparse.ArgumentParser(prog="byzbench-report", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: SWEEP_DIR/report")
    p.add_argument("--metric", default=None,
                   help="final metric of the tables (default test_accuracy, else test_loss)")
    p.add_argument("--tail", type=int, default=0, metavar="ROUNDS",
                   help="also tabulate the metric's mean over the last ROUNDS rounds")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        write_report(a.sweep_dir, a.out, a.metric, a.quiet, a.tail)
    except FileNotFoundError as e:
        print(f"byzbench-report: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
