"""Geometric median by the smoothed Weiszfeld algorithm (RFA, Pillutla et al.)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

INITS = ("mean", "zero")


class GeoMed(Rule):
    r"""Approximate geometric median :math:`\arg\min_v \sum_i \alpha_i \|v - x_i\|`
    (uniform :math:`\alpha_i = 1/n`) by the smoothed Weiszfeld iteration of RFA:

    .. math:: v^{(r+1)} = \frac{\sum_i \beta_i x_i}{\sum_i \beta_i}, \qquad
        \beta_i = \frac{\alpha_i}{\max(\nu_{\rm eff}, \|v^{(r)} - x_i\|)},

    started at ``init`` (the mean, or zero as in epfml's RFA) and stopped when a step
    moves v by at most ``tol`` times the median distance from v to the rows, or after
    ``max_iter`` iterations (``tol = 0``: exactly ``max_iter``, e.g. RFA's T = 3 or 8).
    RFA stops on the relative change of the objective, but far outliers dominate that
    sum and stop the iteration early (a 1e6 outlier made it stop about 0.3 away from
    the median of unit-scale rows); the step relative to the median distance is
    scale-free and unaffected by outliers.

    Smoothing: :math:`\nu_{\rm eff} = \nu \cdot s` with s the median distance of
    the finite rows to the starting point (scale-free, default), or
    :math:`\nu_{\rm eff} = \nu` when ``absolute_nu`` (RFA's code and ByzFL: nu = 0.1
    in gradient-norm units).

    Every iterate after the start is a convex combination :math:`v = \sum_j c_j x_j`, so
    the iteration runs on the ``n x n`` centered Gram matrix of ``kernels.pairwise``
    (:math:`\|x_i - v\|^2 = G_{ii} - 2 (Gc)_i + c^\top G c`, translation invariant since
    the c sum to 1, so its error is relative to the rows' spread, like a direct
    :math:`\|x_i - v\|`) and touches the ``[n, d]`` data twice: one Gram matrix, one
    final combination (plus one norm pass when starting at zero, whose distances are
    computed directly). Non-finite rows get weight 0.

    Args:
        n: rows it will receive (injected; needs n >= 1).
        f: declared Byzantine count (injected; unused: breakdown point 1/2).
        nu: smoothing, > 0 (relative to s unless ``absolute_nu``).
        tol: step tolerance relative to the median row distance, >= 0.
        max_iter: maximum Weiszfeld iterations, >= 1.
        init: ``mean`` | ``zero``.
        absolute_nu: read ``nu`` in gradient-norm units (not scale-free).

    ``last_weights [n]`` holds the final coefficients :math:`c` (they sum to 1).
    ``last_stats``: ``geomed_iterations``.

    Reference: K. Pillutla, S. M. Kakade, Z. Harchaoui, "Robust Aggregation for
    Federated Learning", IEEE Trans. Signal Processing 2022 (RFA, Algorithm 2).
    """

    def __init__(self, n: int = 1, f: int = 0, nu: float = 1e-6, tol: float = 1e-6,
                 max_iter: int = 100, init: str = "mean", absolute_nu: bool = False):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(nu > 0, "agg.nu", nu, "nu > 0")
        require(tol >= 0, "agg.tol", tol, "tol >= 0")
        require(max_iter >= 1, "agg.max_iter", max_iter, "max_iter >= 1")
        require(init in INITS, "agg.init", init, f"one of {', '.join(INITS)}")
        self.n, self.f, self.nu, self.tol, self.max_iter = n, f, nu, tol, max_iter
        self.init, self.absolute_nu = init, bool(absolute_nu)
        self.last_weights: Tensor | None = None
        self.last_iterations = 0
        self.last_stats: dict[str, float] = {}

    # Batched queries (Pipeline.query_batch): the k problems' distances computed
    # together (one Gram product for those needing no centering), the n x n part per k.
    batch = kernels.batch_by_pairwise

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]``."""
        n = x.shape[0]
        kernels.check_rows("geomed", n, n >= 1, "n >= 1")
        pw = kernels.pairwise(x) if pw is None else pw
        if pw.bad.all():
            self.last_weights = None
            return x.mean(dim=0)
        c = self._weights(pw, lambda: kernels.sqdist_to(x)[0])
        self.last_weights = torch.as_tensor(c, dtype=x.dtype).to(x.device)
        return kernels.combine(x, c, pw.bad)

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same Weiszfeld iteration on each
        candidate's ``n x n`` Gram matrix from the family's basis."""
        kernels.check_rows("geomed", fam.n, fam.n >= 1, "n >= 1")
        g, bad = fam.centred_gram()
        if bad.all(axis=1).any():
            return fam.materialize().mean(dim=1)  # all rows non-finite: nan, as the call
        sq = fam.sq_norms() if self.init == "zero" else None
        return fam.combine(self._weights_batch(g, bad, sq))

    def _weights_batch(self, g: np.ndarray, bad: np.ndarray,
                       sq0: np.ndarray | None) -> np.ndarray:
        """:meth:`_weights` of k problems at once (``g [k, n, n]``, ``bad [k, n]``,
        ``sq0 [k, n]`` squared norms for ``init: zero``): the same iteration on
        ``[k, n]`` arrays, each problem frozen once its own stopping rule holds."""
        k, n = bad.shape
        good = ~bad
        alpha = good / good.sum(axis=1, keepdims=True)
        c = alpha.copy()
        diag = np.diagonal(g, axis1=1, axis2=2)
        cnt = good.sum(axis=1)
        rows = np.arange(k)
        lo, hi = (cnt - 1) // 2, cnt // 2
        all_good = bool(good.all())

        def dists(c: np.ndarray) -> np.ndarray:
            gc = (c[:, None, :] @ g)[:, 0, :]
            vv = (gc * c).sum(axis=1, keepdims=True)
            return np.sqrt(np.maximum(diag - 2.0 * gc + vv, 0.0))

        def median(dist: np.ndarray) -> np.ndarray:  # over each problem's good rows
            s = np.sort(dist if all_good else np.where(good, dist, np.inf), axis=1)
            return 0.5 * (s[rows, lo] + s[rows, hi])

        zero = self.init == "zero"
        dist = np.sqrt(np.where(good, sq0, 0.0)) if zero else dists(c)
        nu = np.full(k, self.nu) if self.absolute_nu else self.nu * median(dist)
        active = np.ones(k, dtype=bool)
        nu_pos = bool((nu > 0).all())  # then every beta is finite
        nu = nu[:, None]
        it = 0
        while it < self.max_iter and active.any():
            if it:
                dist = dists(c)
            it += 1
            with np.errstate(divide="ignore", invalid="ignore"):
                beta = alpha / np.maximum(nu, dist)
                if not all_good:
                    beta = np.where(good, beta, 0.0)
            if not nu_pos:
                on_row = ~np.isfinite(beta).all(axis=1)  # v sits on a row and nu = 0
                beta[on_row] = np.where(good & (dist <= 0.0), 1.0, 0.0)[on_row]
            c_new = beta / beta.sum(axis=1, keepdims=True)
            if it == 1 and zero:
                c = c_new
                continue
            dc = c_new - c
            step = np.sqrt(np.maximum(((dc[:, None, :] @ g)[:, 0, :] * dc).sum(axis=1), 0.0))
            c = np.where(active[:, None], c_new, c)
            active &= ~(step <= self.tol * median(dist))
        return c

    def _weights(self, pw: kernels.Pairwise, sq_norms) -> np.ndarray:
        """The Weiszfeld coefficients ``c [n]`` (sum 1) from the centred Gram matrix;
        ``sq_norms()``: squared row norms, read when starting at zero."""
        g, bad = pw.gram, pw.bad
        good = ~bad
        alpha = good / good.sum()
        c = alpha.copy()
        if self.init == "zero":
            dist = np.sqrt(np.where(good, sq_norms(), 0.0))
        else:
            dist = np.sqrt(kernels.sqdist_to_combo(g, c))
        nu = self.nu if self.absolute_nu else self.nu * kernels.median(dist[good])
        iters = 0
        while iters < self.max_iter:  # iterations on n x n quantities only
            if iters:
                dist = np.sqrt(kernels.sqdist_to_combo(g, c))
            iters += 1
            with np.errstate(divide="ignore", invalid="ignore"):
                beta = np.where(good, alpha / np.maximum(nu, dist), 0.0)
            if not np.isfinite(beta).all():  # v sits on a row and nu = 0 (s = 0)
                beta = np.where(good & (dist <= 0.0), 1.0, 0.0)
            c_new = beta / beta.sum()
            if iters == 1 and self.init == "zero":
                c = c_new
                continue
            dc = c_new - c
            step = float(np.sqrt(max(dc @ g @ dc, 0.0)))  # ||v_new - v_old||
            c = c_new
            if step <= self.tol * kernels.median(dist[good]):
                break
        self.last_iterations = iters
        self.last_stats = {"geomed_iterations": float(iters)}
        return c
