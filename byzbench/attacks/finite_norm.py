"""Finite-norm (bounded) attack of El Mhamdi et al.: the honest mean plus a bounded
deviation on one direction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from byzbench import ConfigError, require
from byzbench.attacks._ops import (
    byz_kept,
    check_unit,
    empty_rows,
    largest_true_batched,
    length_unit,
    query_line_weighted,
)
from byzbench.attacks.base import Attack, RoundContext, repeat_rows
from byzbench.attacks.search import check_search, maximize_line

DIRECTIONS = ("max_var", "coordinate", "linf", "vector")
MODES = ("adaptive", "largest_kept", "norm")


class FiniteNorm(Attack):
    """``b = mu + gamma * L * e`` for all f Byzantine workers (mu = honest mean, L the
    round's length unit: ``unit: spread`` (default) = mean distance of the honest
    gradients to mu, ``pivot_norm`` = ||mu||, ``absolute`` = 1; gamma is scale-free).

    Direction ``e`` (unit norm):

    * ``max_var`` (default): one-hot on the coordinate of largest honest variance (the
      paper's attack on l_p rules perturbs a single coordinate; which one is the
      attacker's choice, byzbench picks the one where honest gradients are most spread,
      ties -> lowest index);
    * ``coordinate``: one-hot on ``coordinate``;
    * ``linf``: ``(1, ..., 1) / sqrt(d)`` (the l_inf variant: every coordinate at once);
    * ``vector``: the given ``vector`` (normalized to unit norm by byzbench).

    Magnitude ``gamma``:

    * ``norm``: the fixed bound ``gamma``;
    * ``adaptive`` (default): the argmax over ``[lo, cap]`` of the displacement of the
      real aggregate along e, ``J = <A - mu, e>``, by ``search.maximize`` (log-spaced
      scan, refinement, cliff bisection; or ``search: lpd``) with ``budget`` pipeline
      evaluations: the same maximizer, objective family, unit and cap as seesaw's
      adaptive magnitude (the study's fair protocol, docs/STUDY.md). It reads the
      paper's "as large as the rule still lets through": against selection rules
      (Krum, Bulyan) J rises while b is selected and collapses after, against
      coordinate-wise rules J saturates once b passes the honest values (ties go to
      the smallest gamma), against the mean J grows to the cap;
    * ``largest_kept`` (byzbench's default before the fair protocol): the largest
      ``gamma in [0, cap]`` for which the
      pipeline still *keeps* b, by doubling from ``gamma`` then bisection (relative
      tolerance ``rtol``, at most ``budget`` tests) on ``ctx.query_line`` (the real
      pre-aggregators + rule, no side effects). "Keeps" is byzbench's precise reading:
      if the rule exposes ``last_weights`` (composed through pre-aggregators'
      ``last_mixing``), b is kept iff the Byzantine rows get total weight > 0 (Krum:
      b is the selected vector); otherwise b is kept iff the aggregate still *responds*
      to b, i.e. its marginal rate along e, ``<A(gamma) - A(gamma (1 - 1e-3)), e> /
      (1e-3 gamma)``, is at least ``keep_rate * f / n`` (the mean responds at rate f/n;
      a coordinate-wise median responds at rate 1 while b is the median and 0 once b is
      past the honest values). Both assume kept on ``[0, gamma*]``, rejected above.

    The paper's point is that such bounded deviations bias training into a plateau
    without making it diverge. Returns ``[f, d]`` (identical rows).

    Args:
        direction: one of ``max_var | coordinate | linf | vector``.
        coordinate: index for ``direction=coordinate`` (must be < d).
        vector: list of d floats for ``direction=vector`` (non-zero).
        mode: ``adaptive | largest_kept | norm``.
        gamma: the bound (``norm``), or the doubling start (``largest_kept``), > 0, units.
        cap: upper end of the search, > lo (>= gamma for ``largest_kept``), units.
        lo: lower end of the ``adaptive`` scan (0 < lo < cap, units).
        unit: ``spread | pivot_norm | absolute``.
        budget: ``adaptive``: pipeline evaluations; ``largest_kept``: max keep-tests
            (evaluated in batches: the doubling grid at once, then the midpoints of 4
            bisection steps; each tested gamma is two candidates of a line query).
        search: ``scan | lpd`` (``adaptive`` only).
        rtol: relative bisection tolerance.
        keep_rate: response threshold as a fraction of the mean's rate f / n.

    Reference: El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed
    Learning in Byzantium", ICML 2018, sec. 3.2-3.3.
    """

    scale_param = "gamma"
    scale_overrides = {"mode": "norm"}  # what Tuned sets so that gamma is used
    scale_range = (0.01, 10.0)

    def __init__(
        self,
        direction: str = "max_var",
        coordinate: int = 0,
        vector: Sequence[float] | None = None,
        mode: str = "adaptive",
        gamma: float = 1.0,
        cap: float = 4.0,
        lo: float = 0.01,
        unit: str = "spread",
        budget: int = 16,
        search: str = "scan",
        rtol: float = 1e-3,
        keep_rate: float = 0.5,
    ):
        require(direction in DIRECTIONS, "attack.direction", direction, f"one of {DIRECTIONS}")
        require(mode in MODES, "attack.mode", mode, f"one of {MODES}")
        require(int(coordinate) >= 0, "attack.coordinate", coordinate, "an index >= 0")
        require(gamma > 0, "attack.gamma", gamma, "> 0")
        require(mode != "largest_kept" or cap >= gamma, "attack.cap", cap,
                f">= gamma ({gamma}), the doubling start")
        check_search(search, lo, cap, budget, hi_key="cap")
        check_unit(unit)
        require(0 < rtol < 1, "attack.rtol", rtol, "in (0, 1)")
        require(0 < keep_rate <= 1, "attack.keep_rate", keep_rate, "in (0, 1]")
        if direction == "vector":
            require(vector is not None and len(vector) > 0, "attack.vector", vector,
                    "a list of d floats when direction=vector")
            require(any(float(v) != 0 for v in vector), "attack.vector", vector, "non-zero")
        self.direction = direction
        self.coordinate = int(coordinate)
        self.vector = None if vector is None else [float(v) for v in vector]
        self.mode = mode
        self.gamma = float(gamma)
        self.cap = float(cap)
        self.lo = float(lo)
        self.unit = unit
        self.search = search
        self.budget = int(budget)
        self.rtol = float(rtol)
        self.keep_rate = float(keep_rate)
        self.last_gamma: float | None = None  # for logging/tests (units)
        self.last_evals: int = 0  # pipeline evaluations of the last call

    def unit_direction(self, honest: Tensor) -> Tensor:
        """``e [d]`` of unit norm for this round."""
        d = honest.shape[-1]
        if self.direction == "linf":
            return honest.new_full((d,), d**-0.5)
        if self.direction == "vector":
            if len(self.vector) != d:
                raise ConfigError(f"attack.vector has {len(self.vector)} entries is invalid: "
                                  f"the model has d={d}")
            v = torch.tensor(self.vector, dtype=honest.dtype, device=honest.device)
            return v / v.norm()
        if self.direction == "coordinate":
            require(self.coordinate < d, "attack.coordinate", self.coordinate, f"< d={d}")
            j = self.coordinate
        else:
            j = int(honest.var(dim=0, correction=0).argmax())
        e = honest.new_zeros(d)
        e[j] = 1.0
        return e

    def scale_line(self, honest: Tensor, ctx: RoundContext
                   ) -> tuple[Tensor, Tensor, None] | None:
        """``(base, direction, None)``: with ``mode: norm`` the rows are
        ``mu + gamma L e`` (None in the other modes, which ignore gamma)."""
        if self.mode != "norm":
            return None
        mu = honest.mean(dim=0)
        return mu, self.unit_direction(honest) * length_unit(honest, self.unit, mu), None

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        self.last_evals = 0
        if ctx.f == 0:
            return empty_rows(honest)
        mu = honest.mean(dim=0)
        e = self.unit_direction(honest) * length_unit(honest, self.unit, mu)
        if self.mode == "norm":
            gamma = self.gamma
        elif self.mode == "adaptive":
            res = maximize_line(ctx, honest, mu, e, lambda aggs: (aggs - mu) @ e, self.lo,
                                self.cap, self.budget, self.search)
            gamma, self.last_evals = res.x, res.evals
        else:
            gamma = self.adaptive_gamma(honest, mu, e, ctx)
        self.last_gamma = gamma
        return repeat_rows(mu + gamma * e, ctx.f)

    def keeps(self, honest: Tensor, mu: Tensor, e: Tensor, gammas: list[float],
              ctx: RoundContext) -> list[bool]:
        """Whether the pipeline keeps each ``b = mu + gamma e`` (see the class
        docstring), in one weighted line query of the gammas and their response points
        ``gamma (1 - 1e-3)`` (used where the rule exposes no weights)."""
        h, f, k = honest.shape[0], ctx.f, len(gammas)
        delta = 1e-3
        aggs, w = query_line_weighted(ctx, honest, mu, e,
                                      [*gammas, *(g * (1 - delta) for g in gammas)])
        self.last_evals += 2 * k
        out = []
        for i, gamma in enumerate(gammas):
            kept = byz_kept(w, i, h)
            if kept is None:
                rate = float((aggs[i] - aggs[k + i]) @ e) / (delta * gamma * float(e @ e))
                kept = rate >= self.keep_rate * f / (h + f)
            out.append(kept)
        return out

    def adaptive_gamma(self, honest: Tensor, mu: Tensor, e: Tensor, ctx: RoundContext) -> float:
        """Largest gamma in [0, cap] the pipeline keeps (doubling + bisection: the
        doubling grid in one line query, then 4 bisection steps per query)."""
        return largest_true_batched(
            lambda gs: self.keeps(honest, mu, e, gs, ctx),
            start=self.gamma, hi=self.cap, budget=self.budget, rtol=self.rtol,
        )
