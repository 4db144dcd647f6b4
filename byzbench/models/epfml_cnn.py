"""The MNIST CNN of epfml/byzantine-robust-noniid-optimizer (``codes/tasks/mnist.py``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from byzbench import require
from byzbench.models._common import check_classes, image_shape


class EpfmlCNN(nn.Module):
    """conv3x3(32) -> relu -> conv3x3(64) -> maxpool2 -> channel dropout(p1) -> flatten
    -> fc 128 -> relu -> dropout(p2) -> fc C (logits).

    As published: no activation between the second convolution and the pooling;
    ``nn.Dropout2d(0.25)`` on the pooled ``[B, 64, 12, 12]`` maps (whole channels
    dropped) and ``nn.Dropout2d(0.5)`` on the ``[B, 128]`` features, which torch
    treats as element-wise dropout on 2-D inputs. The published forward ends in
    ``log_softmax`` with ``nll_loss``; returning logits with cross-entropy gives the
    same loss, gradients and predictions.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, dropout: bool):
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(64 * ((h - 4) // 2) * ((w - 4) // 2), 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.p1, self.p2 = (0.25, 0.5) if dropout else (0.0, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        x = F.dropout2d(x, self.p1, self.training).flatten(1)
        x = F.dropout(F.relu(self.fc1(x)), self.p2, self.training)
        return self.fc2(x)


def build(input_shape: tuple[int, ...], num_classes: int, dropout: bool = True) -> nn.Module:
    """The CNN of the bucketing paper's MNIST experiments (1.2M parameters on 28x28).

    Args:
        input_shape: ``(C, H, W)`` with H, W >= 6 (injected; 1x28x28 for MNIST gives
            the published 9216 = 64 x 12 x 12 features).
        num_classes: output width C (injected).
        dropout: the published dropout layers (p = 0.25 channel-wise, 0.5); false
            removes them. Dropout draws from the run's seeded ``dropout`` stream and
            each worker draws its own masks.

    Reference: Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous
    Datasets via Bucketing", ICLR 2022; code: epfml/byzantine-robust-noniid-optimizer,
    ``codes/tasks/mnist.py`` (``Net``), itself the PyTorch MNIST example's network.
    """
    require(isinstance(dropout, bool), "model.dropout", dropout, "true or false")
    check_classes(num_classes)
    return EpfmlCNN(image_shape(input_shape, "epfml_cnn", 6), int(num_classes), dropout)
