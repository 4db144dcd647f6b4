"""No attack: the f Byzantine workers behave honestly."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks._ops import own_grads
from byzbench.attacks.base import Attack, RoundContext


class NoAttack(Attack):
    """The f "Byzantine" workers follow the protocol: ``b_k = g_k`` (their own gradient
    on their own shard, computed by the loop in the honest workers' vectorized pass).

    Threat model ``local`` so the loop computes ``ctx.byz_grads [f, d]``; f = 0 (or no
    ``byz_grads``, f = 0) gives ``[0, d]``. Use it with ``cluster.byz_frac=0`` for a clean
    baseline, or with f > 0 to measure what a rule costs when nobody attacks.

    Reference: baseline (no attack).
    """

    local = True
    byz_momentum = True  # honest behaviour includes worker momentum

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return own_grads(honest, ctx, "attack=none")
