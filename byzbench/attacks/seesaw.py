"""Seesaw attack (byzbench's definition of Yang et al.'s directional deviation attack):
Byzantine vectors deviate from the honest median along one direction, switching side
every ``period`` rounds."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import (
    check_unit,
    coordinate_median,
    empty_rows,
    honest_std,
    largest_scale_in_balls,
    length_unit,
    max_pairwise_distance,
    medoid,
    unit,
)
from byzbench.attacks.base import Attack, RoundContext
from byzbench.attacks.search import check_search, maximize_line

PIVOTS = ("median", "mean", "medoid")
DIRECTIONS = ("pivot", "std", "sign")
MAGNITUDES = ("adaptive", "stealth", "fixed", "growing")


class Seesaw(Attack):
    """``b_t = r_t - s_t * lambda_t * L_t * u_t`` around a pivot r_t, the side flipping
    like a seesaw every ``period`` rounds; ``L_t`` is the round's length unit, so lambda
    is scale-free.

    * pivot ``r_t``: coordinate-wise ``median`` of the honest gradients (default; the
      paper's reference gradient), ``mean``, or ``medoid`` (honest row with the least
      sum of distances to the others).
    * direction ``u_t`` (unit norm): ``pivot`` = r_t / ||r_t|| (default), ``std`` = the
      coordinate-wise honest std, normalized (ALIE-like), ``sign`` = sign(r_t) /
      sqrt(d). These are Min-Max's three perturbation vectors with r_t in place of the
      mean.
    * unit ``L_t`` (``unit``): ``spread`` (default) = mean distance of the honest
      gradients to their mean; ``pivot_norm`` = ||r_t||; ``absolute`` = 1 (lambda is
      then a length in gradient units, the behaviour before scale-free units).
    * phase ``s_t = (-1)^floor(t / period)`` (t = ``ctx.t``, from 0): with s_t = +1 the
      Byzantine vectors pull the step back (reversal), with s_t = -1 they overshoot.
      ``period = null`` never flips (s_t = +1): the ``directional_deviation`` option.
    * groups: 1 (all f rows in phase s_t) or 2 (the first ceil(f/2) rows in phase s_t,
      the others in -s_t every round: balanced on the pivot in space, not time).
    * magnitude ``lambda_t`` (same for every row, in units L_t):

      - ``adaptive`` (default): argmax over ``[lo, cap]`` of the signed displacement of
        the real aggregate A (``ctx.query``: the run's pre-aggregators + rule,
        omniscient attacker) from the pivot along ``-s_t u_t``,
        ``J = <A - r_t, -s_t u_t>``; with groups = 2 (no single side) the absolute
        displacement ``|<A - r_t, u_t>|``. Maximized by ``search.maximize`` (log-spaced
        scan, refinement, cliff bisection; or ``search: lpd``) with ``budget`` pipeline
        evaluations. Against the plain mean J grows linearly, so lambda = cap.
      - ``stealth``: the largest lambda (capped at ``cap``) with
        ``max_i ||b - g_i|| <= max_ij ||g_i - g_j||`` for every Byzantine row (the
        Min-Max constraint of Shejwalkar & Houmansadr), computed exactly in closed form.
      - ``fixed``: ``lam``.
      - ``growing``: ``lambda_0 * rho^t`` (uncapped).
    * jitter: if > 0, row k gets ``+ jitter * ||b_k|| / sqrt(d) * z_k``, z_k ~ N(0, I)
      from ``ctx.generator`` (so the f rows are not exact duplicates).

    What is from the paper (Yang, Luo, Dong, Li, SmartIoT 2024; known to us only from
    its abstract, index terms and a summary of its body): a directional deviation
    attack whose reference gradient is the median of the honest gradients, more
    effective than the finite-norm attack, evaluated against SGD, Adam and RMSProp.
    Everything else above (the direction choices, the alternating phase and its
    period, the groups, the magnitude rules, the unit) is byzbench's reading of
    "seesaw", each choice a parameter, since the paper's equations are unavailable.

    Args:
        pivot, direction, period, magnitude, groups, unit: as above.
        lam: lambda for ``fixed`` (>= 0, units).
        cap: upper end of the ``adaptive`` search and cap for ``stealth`` (> 0, units).
        lo: lower end of the ``adaptive`` scan (0 < lo < cap, units).
        lambda_0, rho: ``growing`` schedule (lambda_0 >= 0, rho > 0).
        budget: pipeline evaluations per round for ``adaptive`` (>= 2).
        search: ``scan | lpd`` (see ``byzbench.attacks.search``).
        jitter: relative per-row noise (>= 0; 0 = identical rows).
    Call: honest ``[h, d]``, ctx -> ``[f, d]``.

    Reference: Yang, Luo, Dong, Li, "A Seesaw Model Attack Algorithm for Distributed
    Learning", IEEE SmartIoT 2024, arXiv:2410.05161 (byzbench's reading, see above).
    """

    scale_param = "lam"
    scale_overrides = {"magnitude": "fixed"}  # what Tuned sets so that lam is used
    scale_range = (0.01, 10.0)

    def __init__(
        self,
        pivot: str = "median",
        direction: str = "pivot",
        period: int | None = 10,
        magnitude: str = "adaptive",
        lam: float = 1.0,
        cap: float = 4.0,
        lo: float = 0.01,
        lambda_0: float = 0.1,
        rho: float = 1.05,
        budget: int = 16,
        search: str = "scan",
        unit: str = "spread",
        groups: int = 1,
        jitter: float = 0.0,
    ):
        require(pivot in PIVOTS, "attack.pivot", pivot, f"one of {PIVOTS}")
        require(direction in DIRECTIONS, "attack.direction", direction, f"one of {DIRECTIONS}")
        require(period is None or int(period) >= 1, "attack.period", period, "an int >= 1 or null")
        require(magnitude in MAGNITUDES, "attack.magnitude", magnitude, f"one of {MAGNITUDES}")
        require(lam >= 0, "attack.lam", lam, ">= 0")
        require(cap > 0, "attack.cap", cap, "> 0")
        check_search(search, lo, cap, budget, hi_key="cap")
        check_unit(unit)
        require(lambda_0 >= 0, "attack.lambda_0", lambda_0, ">= 0")
        require(rho > 0, "attack.rho", rho, "> 0")
        require(groups in (1, 2), "attack.groups", groups, "1 or 2")
        require(jitter >= 0, "attack.jitter", jitter, ">= 0")
        self.pivot = pivot
        self.direction = direction
        self.period = None if period is None else int(period)
        self.magnitude = magnitude
        self.lam = float(lam)
        self.cap = float(cap)
        self.lo = float(lo)
        self.lambda_0 = float(lambda_0)
        self.rho = float(rho)
        self.budget = int(budget)
        self.search = search
        self.unit = unit
        self.groups = int(groups)
        self.jitter = float(jitter)
        self.last_lambda: float | None = None  # for logging/tests (units)
        self.last_evals: int = 0  # pipeline evaluations of the last call

    def phase(self, t: int) -> int:
        """``s_t = (-1)^floor(t / period)``; +1 for every t when ``period`` is None."""
        return 1 if self.period is None else (-1) ** (t // self.period)

    def pivot_and_direction(self, honest: Tensor) -> tuple[Tensor, Tensor]:
        """``(r_t [d], u_t [d])``, ``||u_t|| = 1`` (0 if the direction vector is 0)."""
        if self.pivot == "median":
            r = coordinate_median(honest)
        elif self.pivot == "mean":
            r = honest.mean(dim=0)
        else:
            r = medoid(honest)
        if self.direction == "pivot":
            u = r
        elif self.direction == "std":
            u = honest_std(honest)
        else:
            u = torch.sign(r)
        return r, unit(u)

    def row_signs(self, t: int, f: int, honest: Tensor) -> Tensor:
        """``[f]`` the phase of each Byzantine row (groups = 2: halves opposite)."""
        s = honest.new_full((f,), float(self.phase(t)))
        if self.groups == 2:
            s[(f + 1) // 2 :] *= -1.0
        return s

    def scale_line(self, honest: Tensor, ctx: RoundContext
                   ) -> tuple[Tensor, Tensor, Tensor] | None:
        """``(base, direction, signs)``: with ``magnitude: fixed`` the rows are
        ``base + lam signs_j direction`` (None with jitter: rows off the line)."""
        if self.jitter > 0 or self.magnitude != "fixed":
            return None
        r, u = self.pivot_and_direction(honest)
        return r, -length_unit(honest, self.unit, r) * u, self.row_signs(ctx.t, ctx.f, honest)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        f = ctx.f
        self.last_evals = 0
        if f == 0:
            return empty_rows(honest)
        r, u = self.pivot_and_direction(honest)
        signs = self.row_signs(ctx.t, f, honest)
        s = float(self.phase(ctx.t))
        L = length_unit(honest, self.unit, r)

        def rows(lam: float) -> Tensor:
            return r.unsqueeze(0) - (lam * L) * signs.unsqueeze(1) * u.unsqueeze(0)

        if self.magnitude == "fixed":
            lam = self.lam
        elif self.magnitude == "growing":
            lam = self.lambda_0 * self.rho**ctx.t
        elif self.magnitude == "stealth":
            radius = max_pairwise_distance(honest)
            # The rows sit at r - s u * lam L (and r + s u * lam L with groups = 2).
            lam_t = largest_scale_in_balls(r, -s * u, honest, radius)
            if self.groups == 2 and f > 1:
                lam_t = torch.minimum(lam_t, largest_scale_in_balls(r, s * u, honest, radius))
            lam = min(float(lam_t) / L, self.cap) if L > 0 else 0.0
        else:

            def displacement(aggs: Tensor) -> Tensor:
                along = (aggs - r) @ u
                return -s * along if self.groups == 1 or f == 1 else along.abs()

            res = maximize_line(ctx, honest, r, -L * u, displacement, self.lo, self.cap,
                                self.budget, self.search, signs=signs)
            lam, self.last_evals = res.x, res.evals
        self.last_lambda = lam
        b = rows(lam)
        if self.jitter > 0:
            z = torch.randn(b.shape, generator=ctx.generator, dtype=b.dtype, device=b.device)
            b = b + self.jitter * b.norm(dim=1, keepdim=True) * b.shape[1] ** -0.5 * z
        return b
