"""Inner product manipulation (IPM, a.k.a. "fall of empires")."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench.attacks.base import Attack, RoundContext, repeat_node_rows, repeat_rows


class IPM(Attack):
    """``b = -eps * mu`` (all f rows equal), mu the honest mean: with small eps the
    Byzantine vectors hide near the honest ones (vs Krum) and still drag the inner
    product <aggregate, mu> down; large eps vs median / trimmed mean.

    Args:
        eps: the scale (default 0.1, Karimireddy et al.'s setting; Xie et al. use small
            eps against Krum and large against median).

    Reference: Xie, Koyejo, Gupta, "Fall of Empires: Breaking Byzantine-tolerant SGD by
    Inner Product Manipulation", UAI 2019.
    """

    scale_param = "eps"
    scale_range = (0.01, 100.0)

    def __init__(self, eps: float = 0.1):
        self.eps = float(eps)

    def scale_line(self, honest: Tensor, ctx: RoundContext) -> tuple[Tensor, Tensor, None]:
        """``(base, direction, None)``: the rows are ``0 - eps mu``."""
        mu = honest.mean(dim=0)
        return torch.zeros_like(mu), -mu, None

    batch_nodes = True

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return repeat_rows(-self.eps * honest.mean(dim=0), ctx.f)

    def nodes(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        """The rows for k recipients ``[k, h, d] -> [k, f, d]`` (gossip)."""
        return repeat_node_rows(-self.eps * honest.mean(dim=1), ctx.f)
