"""A Little Is Enough, non-omniscient: statistics from the Byzantine workers' own
gradients."""

from __future__ import annotations

from torch import Tensor

from byzbench.attacks._ops import own_grads
from byzbench.attacks.alie import ALIE
from byzbench.attacks.base import RoundContext


class ALIELocal(ALIE):
    """``b = mu_B - z * sigma_B`` (all f rows equal), with mu_B / sigma_B the
    coordinate-wise mean / std (unbiased) of the f Byzantine workers' *own* honest-protocol
    gradients (``ctx.byz_grads``, local threat model): the attacker sees no honest
    worker's gradient, as in Baruch et al.'s threat model, where the corrupted workers
    estimate the statistics from their own data. With f = 1 the std is 0 and b is the
    worker's own gradient.

    ``z`` and ``z_formula`` as in :class:`byzbench.attacks.alie.ALIE` (z_max from the
    round's n and f). Knowledge: ``ctx.byz_grads`` only (tested: changing the honest
    rows does not change the output).

    Reference: Baruch, Baruch, Goldberg, "A Little Is Enough: Circumventing Defenses For
    Distributed Learning", NeurIPS 2019 (the attack "uses only the corrupted workers'
    data"); the omniscient variant is ``attack=alie``.
    """

    local = True

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        own = own_grads(honest, ctx, "alie_local")
        return super().__call__(own, ctx) if ctx.f else own
