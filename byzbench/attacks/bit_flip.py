"""Bit flipping: each Byzantine worker sends minus its own gradient."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks._ops import own_grads
from byzbench.attacks.base import Attack, RoundContext


class BitFlip(Attack):
    """``b_k = -g_k`` where g_k is Byzantine worker k's honest-protocol gradient on its
    own shard (``ctx.byz_grads``; local threat model, rows differ).

    Under worker momentum, ``byz_momentum`` says what is flipped: ``false`` (default)
    the raw stochastic gradient, as epfml's code behind the attack's papers (its
    Byzantine workers are plain workers without momentum); ``true`` the worker's
    momentum buffer, as FL-Byzantine-Library (FLB) flips then applies momentum.

    Args:
        byz_momentum: flip the momentum (FLB) instead of the raw gradient (epfml).

    Reference: Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
    Optimization", ICML 2021, and "Byzantine-Robust Learning on Heterogeneous Datasets
    via Bucketing", ICLR 2022 (bit-flipping attack).
    """

    local = True

    def __init__(self, byz_momentum: bool = False):
        self.byz_momentum = bool(byz_momentum)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return -own_grads(honest, ctx, "bit_flip")
