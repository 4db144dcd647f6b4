"""Adaptive robust clipping (ARC; Allouah et al., 2024)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import PreAggregator


class ARC(PreAggregator):
    r"""Adaptive robust clipping: the ``k`` largest-norm rows are clipped to the norm of
    the (k+1)-th largest, with :math:`k = \lfloor 2 (f/n) (n - f) \rfloor`:

    .. math:: y_i = x_i \min\Big(1, \frac{C}{\|x_i\|}\Big), \qquad
        C = \|x_{\pi(k+1)}\|,

    where :math:`\pi` orders rows by decreasing norm. ``f = 0`` leaves rows unchanged.
    Row-preserving. Non-finite norms count as the largest, so up to k non-finite rows
    are clipped (to nan, still discarded downstream) without affecting C. Rows with norm
    at most C are returned unchanged (so zero rows stay zero when C = 0: no 0/0).

    Args:
        n: rows it will receive (injected); ``n_out = n``. Needs ``2f < n``.
        f: declared Byzantine count (injected).

    ``last_mixing`` is None; ``last_threshold`` holds C. The output buffer is reused
    across calls (valid until the next call; see ``kernels.reusable``).

    Reference: Y. Allouah, R. Guerraoui, N. Gupta, A. Jellouli, G. Rizk, J. Stephan,
    "Adaptive Gradient Clipping for Robust Federated Learning", ICLR 2025
    (arXiv:2405.14432; first titled "Boosting Robustness by Clipping Gradients in
    Distributed Learning", 2024).
    """

    def __init__(self, n: int, f: int):
        require(f >= 0, "preagg.arc.f", f, "f >= 0")
        require(2 * f < n, "preagg.arc.f", f, f"arc needs 2f < n (n={n})")
        self.n, self.f = n, f
        self.n_out = n
        self.last_mixing: Tensor | None = None
        self.last_threshold: float | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [n, d]``."""
        n = x.shape[0]
        k = math.floor(2 * self.f * (n - self.f) / n) if n else 0
        if k == 0:
            self.last_threshold = None
            return x
        norms = torch.nan_to_num(torch.linalg.vector_norm(x, dim=1), nan=math.inf)
        c = torch.sort(norms, descending=True).values[min(k, n - 1)]
        self.last_threshold = float(c)
        # Rows at or below C keep scale 1 (also when C = 0 and the row is 0: no 0/0).
        scale = torch.where(norms > c, c / norms, torch.ones_like(norms))
        return torch.mul(x, scale.unsqueeze(1), out=kernels.reusable(self, tuple(x.shape), x))

    batch_mixing = True  # row-preserving

    def line(self, fam: Any) -> Any:
        """Line path (``aggregators.line``): row norms from the family's Gram matrix,
        the same threshold per candidate, the rows scaled."""
        n = fam.n
        k = math.floor(2 * self.f * (n - self.f) / n) if n else 0
        if k == 0:
            return fam
        norms = np.nan_to_num(np.sqrt(fam.sq_norms()), nan=math.inf)
        c = -np.sort(-norms, axis=1)[:, min(k, n - 1), None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return fam.scale_rows(np.where(norms > c, c / norms, 1.0))

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, n, d]`` (a new tensor; ``last_threshold`` not set)."""
        n = xs.shape[1]
        k = math.floor(2 * self.f * (n - self.f) / n) if n else 0
        if k == 0:
            return xs
        norms = torch.nan_to_num(torch.linalg.vector_norm(xs, dim=-1), nan=math.inf)
        c = torch.sort(norms, dim=-1, descending=True).values[:, min(k, n - 1), None]
        scale = torch.where(norms > c, c / norms, torch.ones_like(norms))
        return xs * scale.unsqueeze(-1)
