"""Infinite attack: every coordinate +inf (tests that the rules and the loop survive)."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks.base import Attack, RoundContext


class Inf(Attack):
    """``b = (+inf, ..., +inf)`` on every Byzantine row.

    Reference: robustness check (no paper); cf. the "infinity" attack of ByzFL.
    """

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return honest.new_full((ctx.f, honest.shape[-1]), float("inf"))
