"""A Little Is Enough (ALIE): a small, coordinated shift of z standard deviations."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import alie_z_max, empty_rows, honest_std
from byzbench.attacks.base import Attack, RoundContext, repeat_node_rows, repeat_rows

SIDES = ("minus", "plus")


class ALIE(Attack):
    """``b = mu - z * sigma`` (all f rows equal; ``side: minus``, the paper's Algorithm 3
    and the default) or ``b = mu + z * sigma`` (``side: plus``: ByzFL 0.0.11's
    ``ALittleIsEnough`` / ``Optimal_ALittleIsEnough``), mu / sigma the honest
    coordinate-wise mean / std (unbiased, as the public code's ``torch.std``). A tuned
    ALIE searches z >= 0 on its side, so ``side`` decides which half-line it explores.

    ``z`` is given, or (``z: null``) ``z_max`` from the paper: with n workers and f
    Byzantine, ``s = floor(n/2 + 1) - f`` honest "supporters" are needed and
    ``z_max = Phi^-1((n - s) / n)`` (``z_formula: paper``, Algorithm 3 as we read it), or
    ``Phi^-1((n - f - s) / (n - f))`` (``z_formula: honest``, the fraction of *honest*
    workers, as in the public code of Karimireddy et al. and ByzFL-style libraries; the
    two differ, e.g. n = 25, f = 5: s = 8, paper z = Phi^-1(17/25) = 0.468, honest
    z = Phi^-1(12/20) = 0.253). n and f are the round's actual values (``ctx``).

    Args:
        z: the scale, or None for z_max.
        z_formula: ``paper | honest``.
        side: ``minus`` (b = mu - z sigma) | ``plus`` (b = mu + z sigma, ByzFL).
        n, f: injected; used to validate that z_max exists.

    Reference: Baruch, Baruch, Goldberg, "A Little Is Enough: Circumventing Defenses For
    Distributed Learning", NeurIPS 2019, Algorithm 3.
    """

    scale_param = "z"
    scale_range = (0.01, 10.0)

    def __init__(self, z: float | None = None, z_formula: str = "paper",
                 side: str = "minus", n: int | None = None, f: int | None = None):
        require(z_formula in ("paper", "honest"), "attack.z_formula", z_formula, "paper or honest")
        require(side in SIDES, "attack.side", side, "minus or plus")
        self.side = side
        self.z = None if z is None else float(z)
        self.z_formula = z_formula
        if z is None and n is not None and f:
            alie_z_max(n, f, z_formula)  # fail at construction, not at round 0

    def scale_line(self, honest: Tensor, ctx: RoundContext) -> tuple[Tensor, Tensor, None]:
        """``(base, direction, None)``: the rows are ``mu - z sigma``."""
        return honest.mean(dim=0), -honest_std(honest), None

    batch_nodes = True

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        z = self.z if self.z is not None else alie_z_max(ctx.n, ctx.f, self.z_formula)
        sign = -1.0 if self.side == "minus" else 1.0
        return repeat_rows(honest.mean(dim=0) + sign * z * honest_std(honest), ctx.f)

    def nodes(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        """The rows for k recipients ``[k, h, d] -> [k, f, d]`` (gossip)."""
        z = self.z if self.z is not None else alie_z_max(ctx.n, ctx.f, self.z_formula)
        sign = -1.0 if self.side == "minus" else 1.0
        sd = honest.std(dim=1, correction=1) if honest.shape[1] > 1 else \
            torch.zeros_like(honest[:, 0])
        return repeat_node_rows(honest.mean(dim=1) + sign * z * sd, ctx.f)
