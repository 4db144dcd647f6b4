"""``byzbench-report``: write the store, the tables (and, on request, the reference
comparison, the worst-case heatmaps and the hyperparameter selection) of a sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from byzbench.report.heatmaps import grid_figures, grid_markdown, worst_case_grid
from byzbench.report.labels import add_labels
from byzbench.report.loading import ReportError, _sweep_order, load_results, load_runs, tail_mean
from byzbench.report.reference import compare, load_reference, reference_figure, reference_markdown
from byzbench.report.select import select_hparams, selection_markdown
from byzbench.report.tables import default_metric, final_table, selection_rate, tables, worst_case
from byzbench.report.versus import versus_markdown, versus_table


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 metric: str | None = None, quiet: bool = False,
                 tail: int = 0, reference: str | Path | None = None,
                 select: list[str] | None = None, heatmaps: bool = False,
                 how: str = "final", heat_x: str = "f",
                 heat_y: list[str] | None = None, versus: str | None = None) -> dict[str, Path]:
    """Read ``sweep_dir``, write the store and the tables into ``out_dir`` (default
    ``sweep_dir/report``), print the tables unless ``quiet``; return the written paths.
    ``tail > 0`` adds the final and worst-case tables of ``tail<R>_<metric>``, the mean
    of the metric over the last ``tail`` rounds (``tail_mean``). Optional extras (see
    ``extras``): ``reference`` (ours vs published), ``select`` (worst-case hyperparameter
    selection on the validation split), ``heatmaps`` (f x heterogeneity, worst case over
    attacks), with ``how`` = final | best (over time) for the last two; ``versus`` (every
    attack minus that one, paired by seed and attack parameters)."""
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
    texts.update(extras(sweep_dir, out, runs, results, metric, order, paths, reference,
                        select, heatmaps, how, heat_x, heat_y, versus))
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


def extras(sweep_dir: Path, out: Path, runs: pd.DataFrame, results: pd.DataFrame,
           metric: str, order: dict, paths: dict[str, Path],
           reference: str | Path | None = None, select: list[str] | None = None,
           heatmaps: bool = False, how: str = "final", heat_x: str = "f",
           heat_y: list[str] | None = None, versus: str | None = None) -> dict[str, str]:
    """The optional tables (markdown text by file stem; CSVs and figures written here,
    figure paths added to ``paths``)."""
    texts: dict[str, str] = {}
    if reference is not None:
        cmp = compare(runs, results, load_reference(reference), sweep_dir)
        stem = f"reference_{Path(reference).stem}"
        cmp.to_csv(out / f"{stem}.csv", index=False)
        texts[stem] = reference_markdown(cmp, reference)
        for p in reference_figure(cmp, out / stem):
            paths[p.name] = p
    if versus is not None:
        lab = add_labels(runs)
        vt = versus_table(lab, metric, versus)
        vt.to_csv(out / f"versus_{versus}_{metric}.csv", index=False)
        texts[f"versus_{versus}_{metric}"] = versus_markdown(vt, lab, metric, versus, order)
    hruns, fixed = runs, []
    if select:
        val = metric.replace("test_", "val_", 1)
        table, hruns = select_hparams(runs, results, select, how, val, metric, order)
        fixed = list(select)
        table.to_csv(out / "hparams.csv", index=False)
        texts["hparams"] = selection_markdown(table, select, how, val, metric)
    if heatmaps:
        grid = worst_case_grid(hruns, results, metric, how, heat_x, heat_y, fixed, order)
        stem = f"heatmap_worst_{metric}" + ("_best" if how == "best" else "")
        grid.to_csv(out / f"{stem}.csv", index=False)
        texts[stem] = grid_markdown(grid, heat_x, metric, how)
        for p in grid_figures(grid, out / stem, heat_x, metric, how):
            paths[p.name] = p
    return texts


def _keys(s: str | None) -> list[str] | None:
    return [k.strip() for k in s.split(",") if k.strip()] if s else None


def add_options(p: argparse.ArgumentParser) -> None:
    """The table options (``--out`` to ``--quiet``), shared with scripts/figures.py."""
    p.add_argument("--out", type=Path, default=None, help="default: SWEEP_DIR/report")
    p.add_argument("--metric", default=None,
                   help="final metric of the tables (default test_accuracy, else test_loss)")
    p.add_argument("--tail", type=int, default=0, metavar="ROUNDS",
                   help="also tabulate the metric's mean over the last ROUNDS rounds")
    p.add_argument("--reference", type=Path, default=None, metavar="CSV",
                   help="published numbers (docs/reference/*.csv): ours vs published, the "
                        "difference, OUT where outside mean +- max(2 sd, 3 points), a figure")
    p.add_argument("--select", default=None, metavar="KEYS",
                   help="comma-separated swept keys (e.g. solver.lr,worker_momentum): per "
                        "rule, the values with the best worst-case validation accuracy over "
                        "attacks (needs dataset.val_frac > 0), and the test accuracy there")
    p.add_argument("--heatmaps", action="store_true",
                   help="per rule, f x heterogeneity of the worst case over attacks")
    p.add_argument("--heat-x", default="f", choices=("f", "byz_frac"),
                   help="heatmap columns: f (default) or f/n")
    p.add_argument("--heat-y", default=None, metavar="KEYS",
                   help="heatmap rows (default: the swept partition keys)")
    p.add_argument("--best", action="store_true",
                   help="--select and --heatmaps use the best value over time of the "
                        "seed-mean curve (ByzFL) instead of the final value")
    p.add_argument("--versus", default=None, metavar="ATTACK",
                   help="paired contrast: every other attack minus ATTACK with the same "
                        "attack parameters (e.g. cap), mean ± sd over seeds, and counts")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")


def report_from_args(a: argparse.Namespace) -> dict[str, Path]:
    """``write_report`` with the options of ``add_options``."""
    return write_report(a.sweep_dir, a.out, a.metric, a.quiet, a.tail, a.reference,
                        _keys(a.select), a.heatmaps, "best" if a.best else "final", a.heat_x,
                        _keys(a.heat_y), a.versus)


def main(argv: list[str] | None = None) -> None:
    """Console script ``byzbench-report SWEEP_DIR [--out DIR] [--metric NAME] [--tail R]
    [--reference CSV] [--select KEYS] [--heatmaps] [--best] [--versus ATTACK]``."""
    p = argparse.ArgumentParser(prog="byzbench-report", description="Tables (and optional "
                                "comparisons, selections, heatmaps) from a sweep directory.")
    p.add_argument("sweep_dir", type=Path)
    add_options(p)
    a = p.parse_args(argv)
    try:
        report_from_args(a)
    except (FileNotFoundError, ReportError) as e:
        print(f"byzbench-report: error: {e}", file=sys.stderr)
        sys.exit(2)
