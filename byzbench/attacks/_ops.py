"""Shared math for attacks: honest statistics, closed-form stealth bounds and the line
searches adaptive attacks run on the real aggregation pipeline.

Everything here is vectorized over workers (rows); the only Python loops are over
*candidate scales* in a line search, each candidate being one pipeline evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from byzbench import require

_TINY = 1e-12


def empty_rows(honest: Tensor) -> Tensor:
    """``[0, d]`` with the dtype/device of ``honest`` (the f = 0 answer)."""
    return honest.new_zeros((0, honest.shape[-1]))


def honest_std(honest: Tensor) -> Tensor:
    """Coordinate-wise standard deviation ``[d]`` (unbiased, as ``torch.std`` in the
    public code of Baruch et al. and Shejwalkar & Houmansadr); 0 when only one row."""
    if honest.shape[0] < 2:
        return torch.zeros_like(honest[0])
    return honest.std(dim=0, correction=1)


def coordinate_median(x: Tensor) -> Tensor:
    """Coordinate-wise median ``[n, d] -> [d]``; for even n the mean of the two middle
    values (the usual statistical median, not torch's lower median)."""
    return x.quantile(0.5, dim=0) if x.shape[0] % 2 == 0 else x.median(dim=0).values


def medoid(x: Tensor) -> Tensor:
    """The row of ``x [n, d]`` minimizing the sum of Euclidean distances to all rows
    (ties -> lowest index)."""
    return x[torch.cdist(x, x).sum(dim=1).argmin()]


def unit(v: Tensor) -> Tensor:
    """``v / ||v||`` (zero stays zero)."""
    return v / v.norm().clamp_min(_TINY)


def max_pairwise_distance(x: Tensor) -> Tensor:
    """``max_ij ||x_i - x_j||`` (scalar tensor)."""
    return torch.cdist(x, x).max()


def largest_scale_in_balls(base: Tensor, v: Tensor, centers: Tensor, radius: Tensor) -> Tensor:
    """Largest ``c >= 0`` with ``max_i ||base + c v - centers_i|| <= radius``.

    Each ``||base + c v - g_i||^2 = radius^2`` is a quadratic in c,
    ``|v|^2 c^2 + 2 <a_i, v> c + |a_i|^2 - radius^2 = 0`` with ``a_i = base - g_i``; the
    feasible set of one ball is ``[c_i^-, c_i^+]`` and of all balls (convex) their
    intersection, so the answer is ``min_i c_i^+``, clamped at 0 when ``base`` itself is
    infeasible. Exact (the limit of the bisection the papers run).
    """
    a = base.unsqueeze(0) - centers
    vv = (v * v).sum().clamp_min(_TINY)
    av = a @ v
    disc = (av * av - vv * ((a * a).sum(dim=1) - radius * radius)).clamp_min(0.0)
    return ((-av + disc.sqrt()) / vv).min().clamp_min(0.0)


def largest_scale_sum_sq(base: Tensor, v: Tensor, centers: Tensor, bound: Tensor) -> Tensor:
    """Largest ``c >= 0`` with ``sum_i ||base + c v - centers_i||^2 <= bound``.

    The left side is ``h |v|^2 c^2 + 2 c sum_i <a_i, v> + sum_i |a_i|^2`` (a_i = base -
    g_i), a convex quadratic; the answer is its larger root, clamped at 0.
    """
    a = base.unsqueeze(0) - centers
    qa = centers.shape[0] * (v * v).sum().clamp_min(_TINY)
    qb = 2.0 * (a @ v).sum()
    qc = (a * a).sum() - bound
    disc = (qb * qb - 4.0 * qa * qc).clamp_min(0.0)
    return ((-qb + disc.sqrt()) / (2.0 * qa)).clamp_min(0.0)


def line_search_max(
    objective: Callable[[float], float], lo: float, hi: float, budget: int
) -> tuple[float, float]:
    """Maximize a scalar ``objective`` over ``[lo, hi]`` with at most ``budget`` calls.

    Coarse grid first (``lo`` and ``hi * 2^-k``, geometric so small and large scales are
    both tried, about half the budget), then golden-section refinement on the bracket
    formed by the best grid point's neighbours. The best point ever evaluated is
    returned, so a non-unimodal objective (e.g. Krum: rises while the Byzantine vector is
    selected, then drops) still yields the best value seen; for "rise then drop" shapes
    the golden section converges to the drop. Returns ``(x_best, value_best)``.
    """
    budget = max(int(budget), 2)
    n_grid = max(2, (budget + 1) // 2)
    if lo > 0:
        grid = [lo * (hi / lo) ** (k / (n_grid - 1)) for k in range(n_grid)]
    else:
        grid = [lo] + [hi * 2.0 ** -(n_grid - 2 - k) for k in range(n_grid - 1)]
    vals = [objective(x) for x in grid]
    i = max(range(len(grid)), key=lambda k: (vals[k], k))
    best_x, best_v = grid[i], vals[i]
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    left = budget - len(grid)
    r = (math.sqrt(5.0) - 1.0) / 2.0

    def ev(x: float) -> float:
        nonlocal best_x, best_v
        v = objective(x)
        if v > best_v or (v == best_v and x > best_x):
            best_x, best_v = x, v
        return v

    if left == 1:
        ev(0.5 * (a + b))
    elif left >= 2:
        c, d_ = b - r * (b - a), a + r * (b - a)
        fc, fd = ev(c), ev(d_)
        left -= 2
        while left > 0:
            left -= 1
            if fc > fd:  # the max lies in [a, d_]
                b, d_, fd = d_, c, fc
                c = b - r * (b - a)
                fc = ev(c)
            else:  # in [c, b]; ties go right (larger scales) for "rise then drop" shapes
                a, c, fc = c, d_, fd
                d_ = a + r * (b - a)
                fd = ev(d_)
    return best_x, best_v


def largest_true(
    pred: Callable[[float], bool], start: float, hi: float, budget: int, rtol: float = 1e-3
) -> float:
    """Largest ``x in [0, hi]`` with ``pred(x)``, assuming ``pred`` holds on ``[0, x*]``
    and fails above: doubling from ``start`` until it fails (or reaches ``hi``), then
    bisection until the bracket is within ``rtol`` (relative) or ``budget`` calls are
    spent. Returns the largest ``x`` verified true (0 if none). ``pred(0)`` is assumed.
    """
    good, bad, left = 0.0, None, int(budget)
    x = min(start, hi)
    while left > 0:
        left -= 1
        if pred(x):
            good = x
            if x >= hi:
                return hi
            x = min(2.0 * x, hi)
        else:
            bad = x
            break
    if bad is None:
        return good
    while left > 0 and bad - good > rtol * max(bad, _TINY):
        mid = 0.5 * (good + bad)
        left -= 1
        if pred(mid):
            good = mid
        else:
            bad = mid
    return good


def query_with_weights(ctx, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """Evaluate the real pipeline on ``x [n, d]`` without side effects and return
    ``(aggregate [d], row weights [n] or None)``. The weights are read inside the
    pipeline's ``frozen()`` block, since restoring state also restores ``last_weights``."""
    p = ctx.pipeline
    if p is not None and hasattr(p, "frozen") and hasattr(p, "row_weights"):
        with p.frozen():
            agg = p(x)
            w = p.row_weights(x.shape[0])
        return agg, w
    return ctx.query(x), None


def alie_z_max(n: int, f: int, formula: str = "paper") -> float:
    """Baruch et al.'s z_max: ``s = floor(n/2 + 1) - f`` "supporters" are needed, and
    ``z_max = Phi^-1(p)`` with ``p = (n - s) / n`` (``paper``: Algorithm 3 of the NeurIPS
    paper as we read it) or ``p = (n - f - s) / (n - f)`` (``honest``: the honest-worker
    fraction used by the public code of Karimireddy et al. and Ozfatura et al.).
    Raises ConfigError when p is outside (0, 1) (no finite z_max: give z explicitly)."""
    from statistics import NormalDist

    require(formula in ("paper", "honest"), "attack.z_formula", formula, "paper or honest")
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n if formula == "paper" else (n - f - s) / max(n - f, 1)
    require(0 < p < 1, "attack.z", None,
            f"the ALIE formula has no finite z_max for n={n}, f={f} (p={p:.3f}); give attack.z")
    return NormalDist().inv_cdf(p)


def own_grads(honest: Tensor, ctx: Any, name: str) -> Tensor:
    """The Byzantine workers' own gradients ``ctx.byz_grads [f, d]`` (local threat
    model) in the dtype/device of ``honest``; ``[0, d]`` when f = 0."""
    if ctx.f == 0:
        return empty_rows(honest)
    if ctx.byz_grads is None:
        raise RuntimeError(f"{name} with f > 0 needs ctx.byz_grads (local threat model)")
    return ctx.byz_grads.to(dtype=honest.dtype, device=honest.device)


PERTURBATIONS = ("unit_vec", "sign", "std")


def check_deviation(kind: str, gamma: float | None, gamma_max: float | None) -> None:
    """Validate the parameters shared by Min-Max and Min-Sum."""
    require(kind in PERTURBATIONS, "attack.perturbation", kind, f"one of {PERTURBATIONS}")
    require(gamma is None or gamma >= 0, "attack.gamma", gamma, ">= 0 or null")
    require(gamma_max is None or gamma_max > 0, "attack.gamma_max", gamma_max, "> 0 or null")


def mean_deviation(honest: Tensor, kind: str, gamma: float | None, gamma_max: float | None,
                   solve: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, float]:
    """``(b = mu - gamma p, gamma)``: gamma fixed, or ``solve(mu, p)`` (the attack's
    constraint) capped at ``gamma_max`` (Shejwalkar & Houmansadr, NDSS 2021)."""
    mu = honest.mean(dim=0)
    p = perturbation(honest, kind)
    if gamma is None:
        gamma = float(solve(mu, p))
        if gamma_max is not None:
            gamma = min(gamma, gamma_max)
    return mu - gamma * p, float(gamma)


def perturbation(honest: Tensor, kind: str) -> Tensor:
    """Shejwalkar & Houmansadr's perturbation vectors ``p [d]`` around the honest mean mu:
    ``unit_vec`` = mu / ||mu||, ``sign`` = sign(mu), ``std`` = coordinate-wise std."""
    mu = honest.mean(dim=0)
    if kind == "unit_vec":
        return unit(mu)
    if kind == "sign":
        return torch.sign(mu)
    return honest_std(honest)
