"""NaN attack: every coordinate NaN (tests that the rules and the loop survive)."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks.base import Attack, RoundContext


class NaN(Attack):
    """``b = (nan, ..., nan)`` on every Byzantine row.

    Reference: robustness check (no paper).
    """

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return honest.new_full((ctx.f, honest.shape[-1]), float("nan"))
