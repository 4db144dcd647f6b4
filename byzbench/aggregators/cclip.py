"""Centered clipping (Karimireddy, He, Jaggi, ICML 2021)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import require
from byzbench.aggregators import _ops


class CClip:
    r"""Centered clipping around a stateful center :math:`v_0` (the previous output):

    .. math:: v_{l+1} = v_l + \frac{1}{n} \sum_{i=1}^n (x_i - v_l)
        \min\Big(1, \frac{\tau}{\|x_i - v_l\|}\Big), \quad l = 0, \dots, L - 1,

    output :math:`v_L`, which becomes the next call's :math:`v_0` (zero before the
    first call, as in the paper's Algorithm with :math:`v` initialized at 0).

    Every iterate is :math:`v_l = a_l v_0 + \sum_j w_j x_j`, so distances follow from
    :math:`\|x_i\|^2`, :math:`X v_0` and :math:`X X^\top w`: the default L = 1 reads the
    ``[n, d]`` data three times (row norms, one matrix-vector product, the final
    combination), each further iteration twice more; no ``[n, d]`` temporary. Non-finite rows
    are infinitely far: their clipped contribution :math:`\min(1, \tau/\infty)` is 0.
    The center is *reassigned* (never mutated in place) so ``Pipeline.query`` can
    restore it. Not idempotent on identical rows: each iteration moves at most
    :math:`\tau` towards them.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; unused by the rule).
        tau: clipping radius, > 0.
        iterations: L, >= 1 (the paper uses 1 with momentum).

    ``last_weights [n]`` holds the coefficients :math:`w_j` of the rows in the output
    (the remaining mass :math:`a_L` sits on the previous center).

    Reference: S. P. Karimireddy, L. He, M. Jaggi, "Learning from History for
    Byzantine Robust Optimization", ICML 2021.
    """

    def __init__(self, n: int = 0, f: int = 0, tau: float = 10.0, iterations: int = 1):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(tau > 0, "agg.tau", tau, "tau > 0")
        require(iterations >= 1, "agg.iterations", iterations, "iterations >= 1")
        self.n, self.f, self.tau, self.iterations = n, f, tau, iterations
        self.center: Tensor | None = None
        self.last_weights: Tensor | None = None

    @_ops.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        _ops.check_rows("cclip", n, n >= 1, "n >= 1")
        v0 = self.center
        if v0 is None or v0.shape != (d,):
            v0 = torch.zeros(d, dtype=x.dtype, device=x.device)
        v0 = v0.to(device=x.device, dtype=x.dtype)
        sq, bad = _ops.sq_norms(x)
        p = np.where(bad, 0.0, _ops.to_np(x @ v0))  # <x_i, v0>
        vv = float(_ops.to_np(v0 @ v0))
        a, w = 1.0, np.zeros(n)
        for _ in range(self.iterations):  # L iterations on n-vectors
            # v = a v0 + X^T w; <x_i, X^T w> = (X X^T w)_i costs two matrix-vector
            # products, skipped while w = 0 (always the case in the first iteration).
            gw = _ops.to_np(x @ _ops.combine(x, w, bad)) if w.any() else np.zeros(n)
            gw = np.where(bad, 0.0, gw)
            d2 = sq - 2.0 * (a * p + gw) + a * a * vv + 2.0 * a * (w @ p) + w @ gw
            dist = np.sqrt(np.maximum(d2, 0.0))
            with np.errstate(divide="ignore"):
                s = np.minimum(1.0, self.tau / dist)
            s = np.where(bad, 0.0, s)
            keep = 1.0 - s.sum() / n
            a, w = a * keep, w * keep + s / n
        out = _ops.combine(x, w, bad) + a * v0
        self.center = out.detach().clone()
        self.last_weights = torch.as_tensor(w, dtype=x.dtype).to(x.device)
        return out
