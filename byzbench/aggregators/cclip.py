"""Centered clipping (Karimireddy, He, Jaggi, ICML 2021)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class CClip(Rule):
    r"""Centered clipping around a stateful center :math:`v_0` (the previous output):

    .. math:: v_{l+1} = v_l + \frac{1}{n} \sum_{i=1}^n (x_i - v_l)
        \min\Big(1, \frac{\tau}{\|x_i - v_l\|}\Big), \quad l = 0, \dots, L - 1,

    output :math:`v_L`, which becomes the next call's :math:`v_0` (zero before the
    first call, as in the paper's Algorithm with :math:`v` initialized at 0).

    ``tau = "auto"`` (default, scale-free): :math:`\tau` is the median over the finite
    rows of :math:`\|x_i - v_0\|`, fixed for the call's L iterations, so about half
    the rows are clipped in the first iteration whatever the gradients' scale. A number
    is an absolute radius in gradient-norm units (the paper's and the reference codes'
    choice: epfml noniid tau = 10 with L = 3, ICML 2021 CIFAR code and ByzFL tau = 100
    with L = 1); an absolute tau that is large for the task never clips, and cclip is
    then the mean: ``last_stats["cclip_clipped"]`` (logged per round) shows it.

    Distances :math:`\|x_i - v_l\|` are computed directly (``kernels.sqdist_to``): exact
    when the rows are close to the center relative to their norm. Each iteration reads
    the ``[n, d]`` data twice (distances, combination); no ``[n, d]`` temporary.
    Non-finite rows are infinitely far: their clipped contribution is 0. The center is
    *reassigned* (never mutated in place) so ``Pipeline.query`` can restore it. Not
    translation-equivariant (the first center is the origin).

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; unused by the rule).
        tau: ``"auto"`` or the clipping radius (> 0, absolute).
        iterations: L, >= 1 (the paper uses 1 with momentum).

    ``last_weights [n]`` holds the coefficients :math:`w_j` of the rows in the output
    (the remaining mass sits on the previous center). ``last_stats``:
    ``cclip_clipped`` (fraction of the n rows with :math:`\|x_i - v_0\| > \tau`,
    non-finite rows included) and ``cclip_tau``.

    Reference: S. P. Karimireddy, L. He, M. Jaggi, "Learning from History for
    Byzantine Robust Optimization", ICML 2021.
    """

    state_keys = ("center",)


    def __init__(self, n: int = 0, f: int = 0, tau: float | str = "auto", iterations: int = 1):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(tau == "auto" or (isinstance(tau, (int, float)) and tau > 0), "agg.tau", tau,
                "'auto' or a number > 0")
        require(iterations >= 1, "agg.iterations", iterations, "iterations >= 1")
        self.n, self.f, self.tau, self.iterations = n, f, tau, iterations
        self.center: Tensor | None = None
        self.last_weights: Tensor | None = None
        self.last_stats: dict[str, float] = {}

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the centre joins the family's basis, and
        every iterate is a combination of basis rows: distances to it are quadratic
        forms of the small Gram matrix."""
        n = fam.n
        kernels.check_rows("cclip", n, n >= 1, "n >= 1")
        raw = fam.basis.raw
        v0 = self.center
        if v0 is None or v0.shape != raw.shape[1:]:
            v0 = torch.zeros(raw.shape[1], dtype=raw.dtype, device=raw.device)
        basis, j = fam.basis.extend(v0)
        pad = ((0, 0), (0, 0), (0, 1))
        fam = line.Family(basis, np.pad(fam.coef, pad), np.pad(fam.touch, pad), fam.var,
                          fam.bad)
        v = np.zeros((fam.k, basis.r))
        v[:, j] = 1.0
        touch = np.zeros((fam.k, basis.r), dtype=bool)
        touch[:, j] = True
        tau = self.tau
        for _ in range(self.iterations):
            dist = np.sqrt(fam.sqdist_to(v))
            if isinstance(tau, str):  # auto: fixed at the first iteration, as the call
                tau = np.array([np.median(dd[~bb]) if (~bb).any() else 0.0
                                for dd, bb in zip(dist, fam.bad)])[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.where(dist <= tau, 1.0, tau / dist)
            s = np.where(fam.bad, 0.0, s) / n
            keep = 1.0 - s.sum(axis=1, keepdims=True)
            v = np.einsum("ka,kar->kr", s, fam.clean()) + keep * v
            touch = touch | ((s != 0)[:, :, None] & fam.touch).any(axis=1)
        return fam.vectors(v, touch)

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        kernels.check_rows("cclip", n, n >= 1, "n >= 1")
        v0 = self.center
        if v0 is None or v0.shape != (d,):
            v0 = torch.zeros(d, dtype=x.dtype, device=x.device)
        v = v0.to(device=x.device, dtype=x.dtype)
        w = np.zeros(n)
        tau = self.tau
        for it in range(self.iterations):
            d2, bad = kernels.sqdist_to(x, v)
            dist = np.sqrt(d2)
            if tau == "auto":
                tau = float(np.median(dist[~bad])) if (~bad).any() else 0.0
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.where(dist <= tau, 1.0, tau / dist)
            s = np.where(bad, 0.0, s)
            if it == 0:
                self.last_stats = {"cclip_clipped": float((s < 1.0).mean()), "cclip_tau": tau}
            keep = 1.0 - s.sum() / n
            w = w * keep + s / n
            v = kernels.combine(x, s / n, bad) + keep * v
        self.center = v.detach().clone()
        self.last_weights = torch.as_tensor(w, dtype=x.dtype).to(x.device)
        return v
