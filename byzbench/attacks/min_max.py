"""Min-Max (AGR-agnostic) attack of Shejwalkar & Houmansadr."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks._ops import (
    check_deviation,
    deviation_line,
    empty_rows,
    largest_scale_in_balls,
    max_pairwise_distance,
    mean_deviation,
)
from byzbench.attacks.base import Attack, RoundContext, repeat_rows


class MinMax(Attack):
    """``b = mu - gamma * p`` (all f rows equal), with gamma the largest value such that
    b is no further from any honest gradient than the two furthest honest gradients:

    ``max_i ||b - g_i|| <= max_ij ||g_i - g_j||``   (paper, Min-Max)

    p: ``unit_vec`` = mu/||mu||, ``sign`` = sign(mu), ``std`` = honest coordinate-wise
    std (the paper's three perturbation vectors). The feasible set of gamma is an
    interval [0, gamma*] (each constraint is a ball), so byzbench computes gamma*
    exactly (``kernels.largest_scale_in_balls``); the paper's Algorithm 1 and public code
    approach it by a halving search from gamma_init = 10 (reach < 2 gamma_init) with
    tolerance 1e-5 - set ``gamma_max: 20`` to mimic that cap.

    Args:
        perturbation: ``unit_vec | sign | std`` (default std).
        gamma: fixed scale instead of the constraint (None = solve the constraint).
        gamma_max: optional cap on the solved gamma.
        unit: length unit of ``gamma`` / ``gamma_max`` for the ``unit_vec`` and ``sign``
            perturbations (``spread`` default, ``pivot_norm`` = ||mu||, ``absolute``
            for NDSS21's absolute gamma); ``std`` needs none.

    Reference: Shejwalkar, Houmansadr, "Manipulating the Byzantine: Optimizing Model
    Poisoning Attacks and Defenses for Federated Learning", NDSS 2021, sec. IV (Min-Max).
    """

    scale_param = "gamma"
    scale_range = (0.01, 100.0)

    def __init__(self, perturbation: str = "std", gamma: float | None = None,
                 gamma_max: float | None = None, unit: str = "spread"):
        check_deviation(perturbation, gamma, gamma_max, unit)
        self.unit = unit
        self.perturbation = perturbation
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
        radius = max_pairwise_distance(honest)
        b, self.last_gamma = mean_deviation(
            honest, self.perturbation, self.gamma, self.gamma_max,
            lambda mu, p: largest_scale_in_balls(mu, -p, honest, radius), self.unit)
        return repeat_rows(b, ctx.f)
