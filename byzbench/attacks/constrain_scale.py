"""Constrain-and-scale: model replacement bounded to pass a norm defense."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from byzbench.attacks.model_replacement import ModelReplacement


class ConstrainScale(ModelReplacement):
    """:class:`~byzbench.attacks.model_replacement.ModelReplacement` with
    ``norm_bound`` on by default (``median``: every boosted row is scaled to the median
    norm of the round's honest rows, what a median-adaptive norm bound admits).

    Reference: E. Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS
    2020, Sec. 4 (constrain-and-scale; the anomaly-loss term is not applied, see
    ``ModelReplacement``).
    """

    def __init__(self, gamma: float | None = None, server_lr: float = 1.0,
                 norm_bound: float | str | None = "median",
                 trigger: dict[str, Any] | None = None, target: int = 6,
                 poison_frac: float = 0.32, byz_momentum: bool = False,
                 num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                 input_range: Callable[[], tuple[Tensor, Tensor]] | None = None):
        super().__init__(gamma, server_lr, norm_bound, trigger, target, poison_frac,
                         byz_momentum, num_classes, input_shape, input_range)
