"""MoNNA's nearest-neighbour averaging (Farhadkhani et al., ICML 2023)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import require
from byzbench.aggregators import _ops


class MoNNA:
    r"""Nearest-neighbour averaging around a pivot: the mean of the ``n - f`` rows
    closest to the pivot :math:`p` (the pivot row itself included, at distance 0):

    .. math:: u = \frac{1}{n - f} \sum_{i \in N(p)} x_i.

    In the paper every honest worker averages the ``n - f`` neighbours of its *own*
    (trusted) momentum; a server has no vector of its own, so the pivot is either row
    ``pivot`` (an int; the paper's and ByzFL's definition, meaningful when that row is
    honest: byzbench's seeded row permutation makes it a uniformly random worker), or
    ``"previous"``: the server's previous output (zero before the first call), a
    trusted vector. Ties go to the lower row index. Non-finite rows are infinitely
    far and never averaged while at most f rows are non-finite; a non-finite pivot row
    is replaced by the first finite row. Not permutation invariant with an int pivot.

    Args:
        n: rows it will receive (injected). Needs ``f < n``.
        f: declared Byzantine count (injected).
        pivot: row index in ``[0, n)``, or ``"previous"``.

    ``last_weights [n]`` is ``1/(n - f)`` on the averaged rows.

    Reference: S. Farhadkhani, R. Guerraoui, N. Gupta, L. N. Hoang, R. Pinot,
    J. Stephan, "Robust Collaborative Learning with Linear Gradient Overhead",
    ICML 2023.
    """

    def __init__(self, n: int, f: int, pivot: int | str = 0):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(f < n, "agg.f", f, f"monna needs f < n (n={n})")
        ok = pivot == "previous" or (isinstance(pivot, int) and 0 <= pivot < n)
        require(ok, "agg.pivot", pivot, f"an int in [0, n) (n={n}) or 'previous'")
        self.n, self.f, self.pivot = n, f, pivot
        self.previous: Tensor | None = None
        self.last_weights: Tensor | None = None

    @_ops.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        f = self.f
        _ops.check_rows("monna", n, f < n, f"f < n (f={f})")
        # Distances to one pivot need only row norms and one matrix-vector product.
        sq, bad = _ops.sq_norms(x)
        if self.pivot == "previous":
            v = self.previous
            if v is None or v.shape != (d,):
                v = torch.zeros(d, dtype=x.dtype, device=x.device)
            v = v.to(x.device, x.dtype)
            dist = sq - 2.0 * _ops.to_np(x @ v) + float(_ops.to_np(v @ v))
        else:
            i = int(self.pivot)
            if bad[i] and (~bad).any():
                i = int(np.flatnonzero(~bad)[0])
            dist = sq - 2.0 * _ops.to_np(x @ x[i]) + sq[i]
            dist[i] = 0.0
        dist = np.where(bad, np.inf, np.maximum(dist, 0.0))
        idx = _ops.stable_smallest(dist, n - f)
        w = np.zeros(n)
        w[idx] = 1.0 / len(idx)
        out = _ops.combine(x, w, bad)
        if self.pivot == "previous":
            self.previous = out.detach().clone()
        self.last_weights = _ops.one_hot(n, idx, x)
        return out
