"""Label flipping: Byzantine workers train honestly on labels y -> C - 1 - y."""

from __future__ import annotations

from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import own_grads
from byzbench.attacks.base import DataPoisoning, RoundContext


class LabelFlip(DataPoisoning):
    """Each Byzantine worker sends its honest-protocol gradient computed on its own shard
    with every label replaced by ``C - 1 - y`` (C classes). The loop applies
    ``transform_batch`` (labels through ``transform_labels``, inputs unchanged) to the
    Byzantine workers' batches inside the same vectorized gradient pass as the honest
    workers, and the attack returns those gradients
    (``ctx.byz_grads``) unchanged.

    Under worker momentum, ``byz_momentum: false`` (default) sends the raw gradient on
    flipped labels (epfml: Byzantine workers are plain workers without momentum);
    ``true`` sends their momentum of those gradients (FL-Byzantine-Library).

    Args:
        byz_momentum: send the momentum (FLB) instead of the raw gradient (epfml).
        num_classes: injected by build; C >= 2.

    Reference: Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous
    Datasets via Bucketing", ICLR 2022 (label-flipping attack, ``9 - y`` on MNIST).
    """

    local = True

    def __init__(self, byz_momentum: bool = False, num_classes: int | None = None):
        require(num_classes is None or num_classes >= 2, "attack.num_classes", num_classes,
                "a classification task with >= 2 classes")
        self.num_classes = num_classes
        self.byz_momentum = bool(byz_momentum)

    @staticmethod
    def transform_labels(y: Tensor, num_classes: int) -> Tensor:
        """``y -> num_classes - 1 - y`` (new tensor; integer labels in [0, C))."""
        return (num_classes - 1) - y

    def transform_batch(self, x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """``(x, C - 1 - y)``."""
        return x, self.transform_labels(y, num_classes)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return own_grads(honest, ctx, "label_flip")
