"""Neurotoxin: a backdoor hidden in the coordinates benign updates use least."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks.base import RoundContext
from byzbench.backdoor.poison import Backdoor, check_bound, clip_rows


def least_used_mask(prev: Tensor | None, keep: float, d: int) -> Tensor | None:
    """``{0, 1}`` mask ``[d]`` of the ``int(keep d)`` coordinates of smallest ``|prev|``
    (ties: the lower index), or None (no estimate: every coordinate)."""
    if prev is None:
        return None
    k = int(keep * d)
    order = torch.sort(prev.abs(), stable=True).indices[:k]
    return torch.zeros(d, dtype=prev.dtype, device=prev.device).index_fill_(0, order, 1.0)


class Neurotoxin(Backdoor):
    r"""The Byzantine clients train on poisoned batches (any trigger, as
    :class:`~byzbench.backdoor.poison.Backdoor`) and send their update projected onto
    the coordinates that benign clients update least: those of the ``int(mask_ratio
    d)`` smallest magnitudes of the previous round's aggregate ``ctx.prev_aggregate``
    (the paper's estimate of the benign update; none at round 0: the update is sent
    unprojected), boosted by ``gamma`` and scaled to norm at most ``norm_bound``
    (the paper's norm-bounded PGD).

    Variant: the paper masks the gradient at every local step; here the mask is applied
    to the update the local steps produce (identical for DSGD and one local step; for K
    > 1 the later local gradients are taken along the unmasked trajectory).

    Args:
        mask_ratio: fraction of coordinates kept, in (0, 1] (BackFed 0.99: drop the
            top 1%; FLPoison topk_ratio 0.1: keep the bottom 10%).
        gamma: boost > 0 (1: none; BackFed's optional ``scale_factor``).
        norm_bound: null, a number > 0 or median (FLPoison: 0.2 on the weight change).
        trigger, target, poison_frac, byz_momentum: as ``Backdoor``.

    Reference: Z. Zhang, A. Panda, L. Song, Y. Yang, M. W. Mahoney, J. E. Gonzalez,
    K. Ramchandran, P. Mittal, "Neurotoxin: Durable Backdoors in Federated Learning",
    ICML 2022.
    """

    def __init__(self, mask_ratio: float = 0.99, gamma: float = 1.0,
                 norm_bound: float | str | None = None,
                 trigger: dict[str, Any] | None = None, target: int = 6,
                 poison_frac: float = 0.32, byz_momentum: bool = False,
                 num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                 input_range: Callable[[], tuple[Tensor, Tensor]] | None = None):
        require(isinstance(mask_ratio, (int, float)) and 0 < mask_ratio <= 1,
                "attack.mask_ratio", mask_ratio, "a fraction of coordinates in (0, 1]")
        require(isinstance(gamma, (int, float)) and gamma > 0, "attack.gamma", gamma, "> 0")
        check_bound(norm_bound)
        super().__init__(trigger, target, poison_frac, byz_momentum, num_classes, input_shape,
                         input_range)
        self.mask_ratio, self.gamma, self.norm_bound = float(mask_ratio), float(gamma), norm_bound

    def craft(self, own: Tensor, honest: Tensor, ctx: RoundContext) -> Tensor:
        prev = None if ctx.prev_aggregate is None else ctx.prev_aggregate.to(own)
        mask = least_used_mask(prev, self.mask_ratio, own.shape[1])
        rows = own * self.gamma if mask is None else own * (mask * self.gamma)
        return clip_rows(rows, self.norm_bound, honest)
