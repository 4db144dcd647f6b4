"""Figures moved to :mod:`byzbench.report.figures` (all analysis code lives in
``byzbench/report/``); this module keeps the old import path working."""

from byzbench.report.figures import (  # noqa: F401
    CONVEX_MODELS,
    convergence_grid,
    heatmap,
    make_figures,
    plt,
    runtime,
    save,
    vs_byz_fraction,
)
