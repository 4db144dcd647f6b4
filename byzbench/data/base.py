"""Dataset contract: a whole train/test (and optional validation) split held as tensors.

A dataset builder (``conf/dataset/*.yaml`` ``_target_``) takes plain keyword arguments
plus ``generator`` (a seeded CPU ``torch.Generator`` for any randomness, e.g.
synthetic data) and returns a :class:`Dataset`. The run moves it to the device once;
per-round batches are index gathers followed by ``dataset.prepare(x)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


def _identity(x: Tensor) -> Tensor:
    return x


@dataclass
class Dataset:
    """Train/test tensors and the metadata models and losses need.

    Attributes:
        x_train, x_test: inputs ``[N, *input_shape]`` (float, or uint8 to be
            normalized on the fly by ``prepare``).
        y_train, y_test: ``[N]`` int64 class labels (classification) or float targets
            (regression).
        num_classes: classes (1 for regression).
        task: ``"classification"`` (cross-entropy, accuracy) or ``"regression"`` (MSE).
        prepare: applied to gathered inputs on the device (dtype conversion,
            normalization); must be vmap-safe and elementwise.
        name: label for logs.
        x_val, y_val: the validation split held out of the training set
            (``dataset.val_frac``, see ``byzbench.data._common.hold_out_validation``);
            None when there is none.
        f_star: minimum of the full-batch training loss, when the builder knows it in
            closed form (synthetic least squares: over ``model=logreg`` with bias); the
            run then reports the optimality gap ``loss - f_star``. None: unknown.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    task: str = "classification"
    prepare: Callable[[Tensor], Tensor] = field(default=_identity)
    name: str = "dataset"
    f_star: float | None = None
    x_val: Tensor | None = None
    y_val: Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            x_val=None if self.x_val is None else self.x_val.to(device),
            y_val=None if self.y_val is None else self.y_val.to(device),
        )
