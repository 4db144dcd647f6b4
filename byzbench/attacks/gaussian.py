"""Gaussian attack: every Byzantine worker sends an independent Gaussian vector."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks.base import RoundContext


class Gaussian:
    """``b_k ~ N(mean * 1, std^2 I)`` independently for each Byzantine worker k (rows
    differ), drawn from ``ctx.generator``. Ignores the honest gradients.

    Args:
        mean: mean of every coordinate (mu_G).
        std: standard deviation of every coordinate (sigma_G, >= 0). Default 200, the
            value of Blanchard et al.'s Gaussian Byzantine workers.

    Reference: Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with
    Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017 (sec. 5).
    """

    scale_param = "std"
    scale_range = (0.0, 1000.0)

    def __init__(self, mean: float = 0.0, std: float = 200.0):
        require(std >= 0, "attack.std", std, "a standard deviation >= 0")
        self.mean = float(mean)
        self.std = float(std)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        z = torch.randn(
            (ctx.f, honest.shape[-1]), generator=ctx.generator,
            dtype=honest.dtype, device=honest.device,
        )
        return self.mean + self.std * z
