"""LeNet-5-style convolutional network for 28x28 / 32x32 images."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from byzbench.models._common import activation, check_classes, image_shape


class LeNet(nn.Module):
    """conv5x5(6, pad 2) -> act -> maxpool2 -> conv5x5(16) -> act -> maxpool2 ->
    fc 120 -> act -> fc 84 -> act -> fc C.

    On 28x28 inputs the padded first convolution keeps 28x28, as LeCun et al. padded
    MNIST to 32x32, so the flattened features are 16 x 5 x 5 = 400 as in LeNet-5; on
    32x32 they are 16 x 6 x 6. Modern choices (ReLU, max pooling) replace the scaled
    tanh and trainable subsampling of the original; no normalization layers.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, act: str):
        super().__init__()
        c, h, w = input_shape
        self.act = activation(act)
        self.conv1 = nn.Conv2d(c, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = lambda s: (s // 2 - 4) // 2  # noqa: E731 - conv(pad 2) -> pool -> conv5 -> pool
        self.fc1 = nn.Linear(16 * side(h) * side(w), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(self.act(self.conv1(x)), 2)
        x = F.max_pool2d(self.act(self.conv2(x)), 2)
        x = self.act(self.fc1(x.flatten(1)))
        return self.fc3(self.act(self.fc2(x)))


def build(input_shape: tuple[int, ...], num_classes: int, activation: str = "relu") -> nn.Module:
    """LeNet-5-style CNN (about 61k parameters on 28x28x1, 10 classes).

    Args:
        input_shape: ``(C, H, W)`` with H, W >= 12 (injected from the dataset).
        num_classes: output width C (injected).
        activation: relu, tanh, gelu, sigmoid, elu or silu.

    Reference: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to
    document recognition", Proc. IEEE 1998.
    """
    check_classes(num_classes)
    return LeNet(image_shape(input_shape, "lenet", 12), int(num_classes), activation)
