"""Gaussian attack: every Byzantine worker sends an independent Gaussian vector."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import check_unit, length_unit
from byzbench.attacks.base import Attack, RoundContext


class Gaussian(Attack):
    """``b_k ~ N(mean L * 1, (std L)^2 I)`` independently for each Byzantine worker k
    (rows differ), drawn from ``ctx.generator``. L = 1 with ``unit: absolute`` (default:
    the paper's attack ignores the honest gradients, so it is absolute by definition);
    ``unit: spread`` / ``pivot_norm`` make it scale-free (L = mean distance of the honest
    gradients to their mean / ||honest mean||).

    Args:
        mean: mean of every coordinate (mu_G).
        std: standard deviation of every coordinate (sigma_G, >= 0). Default 200, the
            value of Blanchard et al.'s Gaussian Byzantine workers.
        unit: ``absolute | spread | pivot_norm``.

    Reference: Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with
    Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017 (sec. 5).
    """

    scale_param = "std"
    scale_range = (0.01, 1000.0)

    def __init__(self, mean: float = 0.0, std: float = 200.0, unit: str = "absolute"):
        require(std >= 0, "attack.std", std, "a standard deviation >= 0")
        check_unit(unit)
        self.unit = unit
        self.mean = float(mean)
        self.std = float(std)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        z = torch.randn(
            (ctx.f, honest.shape[-1]), generator=ctx.generator,
            dtype=honest.dtype, device=honest.device,
        )
        L = length_unit(honest, self.unit) if self.unit != "absolute" else 1.0
        return (self.mean + self.std * z) * L
