"""ByzFL's ``cnn_mnist`` (byzfl 0.0.11, ``byzfl/fed_framework/models.py``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from byzbench.models._common import check_classes, image_shape


class ByzflCNN(nn.Module):
    """conv5x5(20) -> relu -> maxpool2 -> conv5x5(50) -> relu -> maxpool2 -> flatten ->
    fc 500 -> relu -> fc C (logits; ByzFL's ``log_softmax`` + NLL is the same loss)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        side = lambda s: ((s - 4) // 2 - 4) // 2  # noqa: E731 - conv5 -> pool -> conv5 -> pool
        self.fc1 = nn.Linear(50 * side(h) * side(w), 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ByzFL's MNIST CNN (431k parameters on 28x28: 800 = 50 x 4 x 4 features).

    Args:
        input_shape: ``(C, H, W)`` with H, W >= 16 (injected).
        num_classes: output width C (injected).

    Reference: Gonzalez, Guerraoui et al., "ByzFL: Research Framework for Robust
    Federated Learning", 2025; code: LPD-EPFL/byzfl (PyPI byzfl 0.0.11), ``cnn_mnist``.
    """
    check_classes(num_classes)
    return ByzflCNN(image_shape(input_shape, "byzfl_cnn_mnist", 16), int(num_classes))
