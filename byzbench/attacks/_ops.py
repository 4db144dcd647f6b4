"""Shared math for attacks: honest statistics, the scale-free length unit, closed-form
stealth bounds and the keep-test search of finite_norm (the line maximizer of adaptive
and tuned attacks is ``byzbench.attacks.search.maximize``).

API for attack authors (stable):

* ``length_unit(honest, unit, pivot) -> float`` and ``UNITS``: every attack parameter
  that is a *length* is multiplied by this unit, so the attack is scale-free
  (``attack(c H) = c attack(H)``) unless the user picks ``unit: absolute``;
  ``check_unit(unit)`` validates the option.
* ``search.maximize(objective, lo, hi, budget, method)``: the one line maximizer.
* ``RoundContext.query(x, weights=...)``: the real pipeline, honest-first rows.

Everything here is vectorized over workers (rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from byzbench import kernels, require

_TINY = 1e-12


UNITS = ("spread", "pivot_norm", "absolute")


def check_unit(unit: str, where: str = "attack.unit") -> None:
    """Validate a length-unit option."""
    require(unit in UNITS, where, unit, f"one of {UNITS}")


def length_unit(honest: Tensor, unit: str, pivot: Tensor | None = None) -> float:
    """The length one unit of an attack parameter stands for this round:

    * ``spread``: the mean distance of the honest gradients to their mean,
      ``(1/h) sum_i ||g_i - mu||`` (0 when the honest rows coincide);
    * ``pivot_norm``: ``||pivot||`` (the attack's reference point; default the honest
      mean);
    * ``absolute``: 1 (the parameter is an absolute length, as in most public code).

    ``spread`` and ``pivot_norm`` scale with the gradients, which makes the attack
    scale-free. The spread is robust to the pivot's size (a near-zero mean gradient late
    in training does not shrink it), hence the default of byzbench's attacks.
    """
    if unit == "absolute":
        return 1.0
    if unit == "pivot_norm":
        p = honest.mean(dim=0) if pivot is None else pivot
        return float(p.norm())
    return float((honest - honest.mean(dim=0)).norm(dim=1).mean())


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
    # The aggregators' kernel (comparator network / numpy on CPU): torch.quantile sorts
    # a float64 copy, 5x slower at n = 16, d = 5e3.
    return kernels.columnwise(kernels.median_block, x).to(device=x.device, dtype=x.dtype)


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


def largest_true(
    pred: Callable[[float], bool], start: float, hi: float, budget: int, rtol: float = 1e-3
) -> float:
    """Largest ``x in [0, hi]`` with ``pred(x)``, assuming ``pred`` holds on ``[0, x*]``
    and fails above: doubling from ``start`` until it fails (or reaches ``hi``), then
    bisection until the bracket is within ``rtol`` (relative) or ``budget`` calls are
    spent. Returns the largest ``x`` verified true (0 if none). ``pred(0)`` is assumed.
    """
    return largest_true_batched(lambda xs: [pred(x) for x in xs], start, hi, budget, rtol,
                                depth=0)


def largest_true_batched(
    preds: Callable[[list[float]], list[bool]], start: float, hi: float, budget: int,
    rtol: float = 1e-3, depth: int = 4,
) -> float:
    """:func:`largest_true` (the same result, ``budget`` counting the same tests) with
    ``preds`` evaluating several points per call: the whole doubling grid in one call,
    then ``depth`` bisection steps per call (the ``2^depth - 1`` midpoints they may
    visit, computed as the steps compute them). ``depth=0``: one point per call, in
    the sequential order."""
    good, bad, left = 0.0, None, int(budget)
    if left <= 0:
        return good
    grid = [min(start, hi)]
    while len(grid) < left and grid[-1] < hi:
        grid.append(min(2.0 * grid[-1], hi))
    oks: list[bool] = [] if depth == 0 else preds(grid)
    for i, x in enumerate(grid):
        left -= 1
        if (preds([x])[0] if depth == 0 else oks[i]):
            good = x
            if x >= hi:
                return hi
        else:
            bad = x
            break
    if bad is None:
        return good
    while left > 0 and bad - good > rtol * max(bad, _TINY):
        steps = min(max(depth, 1), left)
        pts = _bisection_tree(good, bad, steps, rtol)
        seen = dict(zip(pts, preds(pts)))
        for _ in range(steps):
            if not bad - good > rtol * max(bad, _TINY):
                break
            mid = 0.5 * (good + bad)
            left -= 1
            if seen[mid]:
                good = mid
            else:
                bad = mid
    return good


def _bisection_tree(good: float, bad: float, depth: int, rtol: float) -> list[float]:
    """The midpoints ``depth`` bisection steps of :func:`largest_true_batched` may test
    from the bracket ``(good, bad)`` (parent first)."""
    if depth == 0 or not bad - good > rtol * max(bad, _TINY):
        return []
    mid = 0.5 * (good + bad)
    return [mid, *_bisection_tree(mid, bad, depth - 1, rtol),
            *_bisection_tree(good, mid, depth - 1, rtol)]


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


def check_deviation(kind: str, gamma: float | None, gamma_max: float | None,
                    unit: str = "spread") -> None:
    """Validate the parameters shared by Min-Max and Min-Sum."""
    require(kind in PERTURBATIONS, "attack.perturbation", kind, f"one of {PERTURBATIONS}")
    check_unit(unit)
    require(gamma is None or gamma >= 0, "attack.gamma", gamma, ">= 0 or null")
    require(gamma_max is None or gamma_max > 0, "attack.gamma_max", gamma_max, "> 0 or null")


def mean_deviation(honest: Tensor, kind: str, gamma: float | None, gamma_max: float | None,
                   solve: Callable[[Tensor, Tensor], Tensor],
                   unit: str = "spread") -> tuple[Tensor, float]:
    """``(b = mu - gamma p, gamma)``: gamma fixed, or ``solve(mu, p)`` (the attack's
    constraint) capped at ``gamma_max`` (Shejwalkar & Houmansadr, NDSS 2021). The
    ``unit_vec`` and ``sign`` perturbations are multiplied by the length unit (``std``
    already scales with the gradients), so a given gamma or gamma_max is scale-free."""
    mu, p = deviation_line(honest, kind, unit)
    if gamma is None:
        gamma = float(solve(mu, p))
        if gamma_max is not None:
            gamma = min(gamma, gamma_max)
    return mu - gamma * p, float(gamma)


def deviation_line(honest: Tensor, kind: str, unit: str = "spread") -> tuple[Tensor, Tensor]:
    """``(mu, p)``: the honest mean and the perturbation, times the length unit for
    ``unit_vec`` and ``sign``; Min-Max's and Min-Sum's rows are ``mu - gamma p``."""
    mu = honest.mean(dim=0)
    p = perturbation(honest, kind)
    if kind != "std":
        p = p * length_unit(honest, unit, mu)
    return mu, p


def scale_line_of(attack: Any) -> Callable[..., Any] | None:
    """The attack's ``scale_line(honest, ctx) -> (base, direction, signs) | None``
    (its rows as a function of its scale parameter are ``base + v signs_j direction``),
    or None where it declares none (``Attack.has_scale_line``)."""
    return attack.scale_line if attack.has_scale_line() else None


def perturbation(honest: Tensor, kind: str) -> Tensor:
    """Shejwalkar & Houmansadr's perturbation vectors ``p [d]`` around the honest mean mu:
    ``unit_vec`` = mu / ||mu||, ``sign`` = sign(mu), ``std`` = coordinate-wise std."""
    mu = honest.mean(dim=0)
    if kind == "unit_vec":
        return unit(mu)
    if kind == "sign":
        return torch.sign(mu)
    return honest_std(honest)


# Input bytes per batched pipeline call of query_candidates (bounds k * n * d).
QUERY_BATCH_BYTES = 1 << 28


def query_candidates(ctx: Any, honest: Tensor, byz_rows: Callable[[float], Tensor],
                     values: list[float]) -> Tensor:
    """Aggregates ``[k, d]`` of ``cat(honest, byz_rows(v))`` for every candidate ``v``,
    through ``ctx.query_batch`` (one batched pipeline call per at most
    ``QUERY_BATCH_BYTES`` of stacked input): how the line maximizer evaluates all its
    scan points at once."""
    h, d = honest.shape
    n = h + ctx.f
    per = max(1, QUERY_BATCH_BYTES // max(1, n * d * honest.element_size()))
    # Rows are written straight into the order the pipeline aggregates (no permuted
    # copy), in an [n, k, d] buffer: its [k, n, d] view is what stages get, and the
    # coordinate-wise ones read it as an [n, k * d] matrix without a copy.
    order = ctx.query_order(honest.device) if ctx.n == n else None
    pos = None if order is None else torch.argsort(order)
    outs = []
    for i in range(0, len(values), per):
        chunk = values[i:i + per]
        buf = honest.new_empty((n, len(chunk), d))
        byz = torch.stack([byz_rows(v) for v in chunk], dim=1)  # [f, k, d]
        if pos is None:
            buf[:h] = honest.unsqueeze(1)
            buf[h:] = byz
        else:
            buf.index_copy_(0, pos[:h], honest.unsqueeze(1).expand(h, len(chunk), d))
            buf.index_copy_(0, pos[h:], byz)
        outs.append(ctx.query_batch(buf.transpose(0, 1), ordered=True))
    return torch.cat(outs)


# Candidates per call of query_line_weighted (also bounded by QUERY_BATCH_BYTES).
LINE_CHUNK = 16


def line_chunk(ctx: Any, honest: Tensor) -> int:
    """Candidates per weighted line query: at most ``LINE_CHUNK`` and at most
    ``QUERY_BATCH_BYTES`` of materialized input (a weighted query materializes)."""
    n, d = honest.shape[0] + ctx.f, honest.shape[1]
    return max(1, min(LINE_CHUNK, QUERY_BATCH_BYTES // max(1, n * d * honest.element_size())))


def query_line_weighted(ctx: Any, honest: Tensor, base: Tensor, direction: Tensor,
                        scales: list[float]) -> tuple[Tensor, Tensor | None]:
    """``ctx.query_line(honest, base, direction, scales, weights=True)`` in calls of
    :func:`line_chunk` candidates: ``(aggregates [k, d], weights [k, n] or None)``,
    row i of the weights as ``ctx.query(candidate i, weights=True)`` (nan: None)."""
    per = line_chunk(ctx, honest)
    aggs: list[Tensor] = []
    ws: list[Tensor | None] = []
    for i in range(0, len(scales), per):
        chunk = torch.tensor(scales[i:i + per], dtype=torch.float64)
        a, w = ctx.query_line(honest, base, direction, chunk, weights=True)
        aggs.append(a)
        ws.extend([None] * len(a) if w is None else w.unbind(0))
    return torch.cat(aggs), kernels.stack_weights(ws, honest.shape[0] + ctx.f, honest)


def byz_kept(w: Tensor | None, i: int, h: int) -> bool | None:
    """Whether candidate ``i``'s Byzantine rows (after the ``h`` honest ones) got total
    weight > 0 (``w`` from :func:`query_line_weighted`); None where its query gave no
    weights (the attack then judges by the aggregate)."""
    if w is None or bool(torch.isnan(w[i]).all()):
        return None
    return bool(w[i, h:].sum() > 0)
