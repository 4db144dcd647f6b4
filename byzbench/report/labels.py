"""Axes of a sweep and labels: which config columns vary, the attack / rule labels
(option name plus swept parameters) and the order of values (the sweep's, not the
alphabet)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from byzbench.report.loading import IGNORED_KEYS, _float


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


def add_labels(runs: pd.DataFrame, exclude: Iterable[str] = ()) -> pd.DataFrame:
    """Add ``attack_label`` / ``rule_label`` (the option name plus any swept parameter
    of it, e.g. ``seesaw(period=1,groups=2)``) and ``group`` (the other swept axes,
    e.g. ``solver=adam``; '' when there are none). Axes in ``exclude`` (e.g. the
    hyperparameters being selected, or a heatmap's axes) appear in no label."""
    runs = runs.copy()
    exclude = set(exclude)
    axes = [c for c in varying(runs) if c not in exclude]

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
    rest = group_axes(runs, exclude)
    # a key absent from some runs (NaN there, e.g. partition.alpha of IID runs) is left
    # out of their label
    runs["group"] = runs[rest].apply(
        lambda r: " ".join(f"{c}={v}" for c, v in r.items() if not _absent(v)),
        axis=1) if rest else ""
    return runs


def _absent(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "nan"


def group_axes(runs: pd.DataFrame, exclude: Iterable[str] = ()) -> list[str]:
    """Swept axes other than the attack and the rule (and their parameters), minus
    ``exclude``."""
    exclude = set(exclude)
    return [c for c in varying(runs) if c not in ("attack", "agg", "preagg")
            and not c.startswith(("attack.", "agg.", "preagg.")) and c not in exclude]


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


def group_order(runs: pd.DataFrame, order: dict[str, list[str]] | None = None,
                exclude: Iterable[str] = ()) -> list[str]:
    """The ``group`` labels of labelled ``runs``, sorted axis by axis in sweep order."""
    order = order or {}
    axes = group_axes(runs, exclude)
    ranks = {c: _sorted_values(runs[c], order.get(c)) for c in axes}
    firsts = runs.drop_duplicates("group")
    keyed = [(tuple(ranks[c].index(r[c]) if r[c] in ranks[c] else -1 for c in axes), r["group"])
             for _, r in firsts.iterrows()]
    return [g for _, g in sorted(keyed, key=lambda x: x[0])]
