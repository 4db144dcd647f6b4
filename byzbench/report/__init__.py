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
  for rules that expose weights; ``f/n`` is what a rule blind to the attack would give;
- on request: ``reference_<name>.*`` (``--reference``, ours vs published,
  ``reference``), ``hparams.*`` (``--select``, worst-case hyperparameter selection on
  the validation split, ``select``), ``heatmap_worst_<metric>.*`` (``--heatmaps``, f x
  heterogeneity of the worst case over attacks, ``heatmaps``).

Modules: ``loading`` (run dirs -> frames), ``labels`` (sweep axes, labels, order),
``tables`` (over-seed tables, markdown), ``cells`` (final / best-over-time cell values,
worst case over attacks), ``select``, ``heatmaps``, ``reference``, ``cli``; the paper
figures are ``byzbench.figures`` (``scripts/figures.py``).

No training code is imported: everything comes from ``summary.json``, ``metrics.csv``,
``.hydra/overrides.yaml`` / ``.hydra/config.yaml`` and the sweep's ``multirun.yaml``.
"""

from byzbench.report.cli import main, write_report
from byzbench.report.labels import (
    _label_order,
    _sorted_values,
    add_labels,
    config_columns,
    group_axes,
    group_order,
    varying,
)
from byzbench.report.loading import (
    CHOICE_KEYS,
    IGNORED_KEYS,
    _sweep_order,
    load_results,
    load_runs,
    tail_mean,
)
from byzbench.report.tables import (
    default_metric,
    final_table,
    higher_is_better,
    is_rate,
    markdown,
    selection_rate,
    tables,
    worst_case,
)
from byzbench.report.versus import versus_markdown, versus_table

__all__ = ["CHOICE_KEYS", "IGNORED_KEYS", "add_labels", "config_columns", "default_metric",
           "final_table", "group_axes", "group_order", "higher_is_better", "is_rate",
           "load_results", "load_runs", "main", "markdown", "selection_rate", "tables",
           "tail_mean", "varying",
           "versus_markdown", "versus_table", "worst_case", "write_report", "_label_order",
           "_sorted_values", "_sweep_order"]
