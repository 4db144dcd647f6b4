"""Sign flipping: every Byzantine worker sends minus the honest mean."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks.base import Attack, RoundContext, repeat_node_rows, repeat_rows


class SignFlip(Attack):
    """``b = -mu``, ``mu = (1/h) sum_i g_i`` the honest mean (omniscient; all f rows equal).

    Args (call): honest ``[h, d]``; returns ``[f, d]``.

    Reference: Allen-Zhu, Ebrahimian, Li, Alistarh, "Byzantine-Resilient Non-Convex
    Stochastic Gradient Descent", ICLR 2021 (sign-flipping attack).
    """

    batch_nodes = True

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return repeat_rows(-honest.mean(dim=0), ctx.f)

    def nodes(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        """The rows for k recipients ``[k, h, d] -> [k, f, d]`` (gossip)."""
        return repeat_node_rows(-honest.mean(dim=1), ctx.f)
