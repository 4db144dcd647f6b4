"""Fang et al.'s full-knowledge attack on trimmed mean and median."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import empty_rows
from byzbench.attacks.base import Attack, RoundContext


class FangTrmean(Attack):
    """Per coordinate j, push the aggregate against the honest direction
    ``s_j = sign(mu_j)`` with values just beyond the honest extremes:

    * ``s_j >= 0`` (the honest step decreases theta_j): send values below
      ``g_min,j = min_i g_ij``: uniform in ``[g_min,j / b, g_min,j]`` if g_min,j > 0,
      else in ``[b g_min,j, g_min,j]``;
    * ``s_j < 0``: values above ``g_max,j``: uniform in ``[g_max,j, b g_max,j]`` if
      g_max,j > 0, else ``[g_max,j, g_max,j / b]``.

    Each Byzantine worker and coordinate draws independently from ``ctx.generator``
    (rows differ). This is the paper's model-space rule (local models beyond
    w_max,j / w_min,j against the change direction s_j, b = 2) mirrored into gradient
    space (a model moving by -eta g); it targets trimmed mean and median alike.

    Args:
        b: range factor (> 1; the paper's 2).

    Reference: Fang, Cao, Jia, Gong, "Local Model Poisoning Attacks to Byzantine-Robust
    Federated Learning", USENIX Security 2020, sec. 3 (trimmed mean attack, full
    knowledge; also used against median).
    """

    def __init__(self, b: float = 2.0):
        require(b > 1, "attack.b", b, "> 1")
        self.b = float(b)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        b = self.b
        gmax, gmin = honest.max(dim=0).values, honest.min(dim=0).values
        # below g_min: [lo, gmin]; above g_max: [gmax, hi]
        lo_low = torch.where(gmin > 0, gmin / b, gmin * b)
        hi_up = torch.where(gmax > 0, gmax * b, gmax / b)
        down = honest.mean(dim=0) >= 0
        lo = torch.where(down, lo_low, gmax)
        hi = torch.where(down, gmin, hi_up)
        u = torch.rand((ctx.f, honest.shape[1]), generator=ctx.generator, dtype=honest.dtype,
                       device=honest.device)
        return lo + u * (hi - lo)
