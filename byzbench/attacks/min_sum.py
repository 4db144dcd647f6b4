"""Min-Sum (AGR-agnostic) attack of Shejwalkar & Houmansadr."""

from __future__ import annotations

from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import (
    check_deviation,
    deviation_line,
    empty_rows,
    largest_scale_sum_sq,
    mean_deviation,
)
from byzbench.attacks.base import Attack, RoundContext, repeat_rows


class MinSum(Attack):
    """``b = mu - gamma * p`` (all f rows equal), gamma the largest value such that the
    sum of squared distances from b to the honest gradients is at most the largest such
    sum of an honest gradient:

    ``sum_i ||b - g_i||^2 <= max_i sum_j ||g_i - g_j||^2``   (paper, Min-Sum)

    The authors' public code uses ``min_i`` on the right-hand side instead of the
    paper's ``max_i`` (a much tighter constraint); byzbench follows the paper by default
    and offers ``bound: min`` for the code's variant. The left side is a convex
    quadratic in gamma, so gamma* is its larger root, computed exactly
    (``kernels.largest_scale_sum_sq``) where the paper runs a halving search.

    Args:
        perturbation: ``unit_vec | sign | std`` (default std).
        bound: ``max`` (paper) | ``min`` (public code).
        gamma: fixed scale instead of the constraint (None = solve the constraint).
        gamma_max: optional cap on the solved gamma.
        unit: length unit of ``gamma`` / ``gamma_max`` for the ``unit_vec`` and ``sign``
            perturbations (``spread`` default, ``pivot_norm`` = ||mu||, ``absolute``
            for NDSS21's absolute gamma); ``std`` needs none.

    Reference: Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model
    Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, sec. IV (Min-Sum).
    """

    scale_param = "gamma"
    scale_range = (0.01, 100.0)

    def __init__(self, perturbation: str = "std", bound: str = "max",
                 gamma: float | None = None, gamma_max: float | None = None, unit: str = "spread"):
        check_deviation(perturbation, gamma, gamma_max, unit)
        self.unit = unit
        require(bound in ("max", "min"), "attack.bound", bound, "max (paper) or min (code)")
        self.perturbation = perturbation
        self.bound = bound
        self.gamma = None if gamma is None else float(gamma)
        self.gamma_max = None if gamma_max is None else float(gamma_max)
        self.last_gamma: float | None = None

    def scale_line(self, honest: Tensor, ctx: RoundContext) -> tuple[Tensor, Tensor, None]:
        """``(base, direction, None)``: with gamma fixed the rows are ``mu - gamma p``."""
        mu, p = deviation_line(honest, self.perturbation, self.unit)
        return mu, -p, None

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)

        def solve(mu: Tensor, p: Tensor) -> Tensor:
            # sum_j |g_i - g_j|^2 = h |g_i - mu|^2 + sum_j |g_j - mu|^2 (O(h d), no h x h x d)
            c2 = ((honest - mu) ** 2).sum(dim=1)
            d2 = honest.shape[0] * c2 + c2.sum()
            bound = d2.max() if self.bound == "max" else d2.min()
            return largest_scale_sum_sq(mu, -p, honest, bound)

        b, self.last_gamma = mean_deviation(honest, self.perturbation, self.gamma,
                                            self.gamma_max, solve, self.unit)
        return repeat_rows(b, ctx.f)
