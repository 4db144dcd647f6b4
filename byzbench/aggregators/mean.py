"""Arithmetic mean: the non-robust baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import require
from byzbench.stages import Rule


class Mean(Rule):
    r"""Average of all rows: :math:`u = \frac{1}{n} \sum_{i=1}^n x_i`.

    Not robust: one Byzantine row moves it arbitrarily far, and a non-finite row makes
    the output non-finite (the training loop then marks the run diverged).

    Args:
        n: rows it will receive (injected; unused, accepted for a uniform signature).
        f: declared Byzantine count (injected; unused).

    ``last_weights [n]`` is ``1/n`` on every row.

    Reference: the standard averaging of (mini-batch) SGD; the baseline of every
    Byzantine-robustness paper, e.g. Blanchard et al., NeurIPS 2017.
    """

    batch_weights = True

    def __init__(self, n: int = 0, f: int = 0):
        require(n >= 0, "agg.n", n, "n >= 0")
        require(f >= 0, "agg.f", f, "f >= 0")
        self.n, self.f = n, f
        self.last_weights: Tensor | None = None
        self.last_batch_weights: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n = x.shape[0]
        self.last_weights = torch.full((n,), 1.0 / max(n, 1), dtype=x.dtype, device=x.device)
        return x.mean(dim=0)

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the mean of each candidate's rows."""
        return fam.combine(np.full((fam.k, fam.n), 1.0 / max(fam.n, 1)))

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, d]``."""
        self.last_weights = None
        k, n = xs.shape[:2]
        self.last_batch_weights = torch.full((k, n), 1.0 / max(n, 1), dtype=xs.dtype,
                                             device=xs.device)
        return xs.mean(dim=1)
