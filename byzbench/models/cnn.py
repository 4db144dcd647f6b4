"""Small CIFAR-style CNN with GroupNorm."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from byzbench import require
from byzbench.models._common import activation, check_classes, group_norm, image_shape


class CNN(nn.Module):
    """For each width c_l: conv3x3(c_l, pad 1) -> GroupNorm -> act -> maxpool2; then
    flatten -> fc ``hidden`` -> act -> fc C. No running statistics (vmap-safe)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int,
                 channels: list[int], hidden: int, gn_groups: int, act: str):
        super().__init__()
        c, h, w = input_shape
        self.act = activation(act)
        widths = [c, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1)
                                   for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(group_norm(b, gn_groups) for b in channels)
        k = 2 ** len(channels)
        self.fc1 = nn.Linear(channels[-1] * (h // k) * (w // k), hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.max_pool2d(self.act(norm(conv(x))), 2)
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def build(input_shape: tuple[int, ...], num_classes: int, channels: list[int] | None = None,
          hidden: int = 128, gn_groups: int = 8, activation: str = "relu") -> nn.Module:
    """Small CNN (about 0.36M parameters on 32x32x3 with the defaults).

    Args:
        input_shape: ``(C, H, W)`` with H, W >= 2^len(channels) (injected).
        num_classes: output width C (injected).
        channels: widths of the conv stages (each halves H and W), default [32, 64, 128].
        hidden: width of the fully connected layer.
        gn_groups: GroupNorm groups per conv stage (0: no normalization); must divide
            every width.
        activation: relu, tanh, gelu, sigmoid, elu or silu.

    Reference: the conv-GN-ReLU-pool pattern of the CIFAR CNNs in Byzantine-robust
    studies; GroupNorm from Wu & He, "Group Normalization", ECCV 2018 (replaces
    BatchNorm, whose running statistics are not vmap-safe).
    """
    channels = [32, 64, 128] if channels is None else list(channels)
    require(len(channels) >= 1 and all(isinstance(c, int) and c >= 1 for c in channels),
            "model.channels", channels, "a non-empty list of positive integers")
    require(isinstance(hidden, int) and hidden >= 1, "model.hidden", hidden,
            "a positive integer")
    check_classes(num_classes)
    shape = image_shape(input_shape, "cnn", 2 ** len(channels))
    return CNN(shape, int(num_classes), channels, hidden, gn_groups, activation)
