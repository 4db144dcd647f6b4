"""Tidy metrics (round, split, metric, value) and the run summary."""

from __future__ import annotations

import csv
import json
import math
import platform
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from byzbench import host

COLUMNS = ("round", "split", "metric", "value")


class MetricsLog:
    """Rows kept as device tensors until ``flush`` (one host sync per flush)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str, float]] = []
        self._pending: list[tuple[int, str, str, Tensor | float]] = []

    def add(self, t: int, split: str, metric: str, value: Tensor | float) -> None:
        self._pending.append((t, split, metric, value))

    def flush(self) -> None:
        if not self._pending:
            return
        tensors = [v for *_, v in self._pending if isinstance(v, Tensor)]
        values = host.to_host(torch.stack([v.detach().float().reshape(()) for v in tensors]))\
            .tolist() if tensors else []
        it = iter(values)
        for t, split, metric, v in self._pending:
            self.rows.append((t, split, metric, next(it) if isinstance(v, Tensor) else float(v)))
        self._pending.clear()

    def last(self, split: str, metric: str) -> float | None:
        self.flush()
        for _t, s, m, v in reversed(self.rows):
            if s == split and m == metric:
                return v
        return None

    def state_dict(self) -> dict[str, Any]:
        """The rows as columns (checkpoints): rounds, an index into the ``names``
        (split, metric), values as float64 (every value is a Python float: exact)."""
        self.flush()
        names: dict[tuple[str, str], int] = {}
        keys = [names.setdefault((s, m), len(names)) for _, s, m, _ in self.rows]
        return {"t": torch.tensor([r[0] for r in self.rows], dtype=torch.long),
                "key": torch.tensor(keys, dtype=torch.long),
                "value": torch.tensor([r[3] for r in self.rows], dtype=torch.float64),
                "names": [list(k) for k in names]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the rows (and drop pending ones) by those of ``state_dict()``."""
        names = [tuple(k) for k in state["names"]]
        self.rows = [(t, *names[k], v) for t, k, v in zip(
            state["t"].tolist(), state["key"].tolist(), state["value"].tolist())]
        self._pending.clear()

    def write_csv(self, path: Path) -> None:
        self.flush()
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS)
            for t, s, m, v in self.rows:
                w.writerow((t, s, m, repr(float(v))))


def versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers."""
    import hydra
    import numpy

    import byzbench

    return {"byzbench": byzbench.__version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "hydra": hydra.__version__,
            "python": platform.python_version()}


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """``summary.json`` (non-finite floats written as strings so the file stays JSON)."""
    # Written last and atomically: its presence marks a finished run (sweep resume).
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(summary), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
