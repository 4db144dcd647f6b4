"""ResNet-20 for CIFAR-10 with GroupNorm in place of BatchNorm."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from byzbench import require
from byzbench.models._common import check_classes, group_norm, image_shape


class BasicBlock(nn.Module):
    """``relu(GN(conv3x3(relu(GN(conv3x3_s(x))))) + shortcut(x))``; when the shape
    changes the shortcut is He et al.'s option A: subsample by 2 and zero-pad the new
    channels (parameter-free, as in the paper's CIFAR ResNets)."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = group_norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = group_norm(c_out, groups)
        self.stride = stride
        self.pad = c_out - c_in

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = x[..., :: self.stride, :: self.stride]
            # (W, W, H, H, C, C) padding: the new channels split evenly before and after.
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class ResNet20(nn.Module):
    """conv3x3(w) -> GN -> relu -> 3 stages of 3 BasicBlocks (widths w, 2w, 4w; stride 2
    entering stages 2 and 3) -> global average pool -> fc C. 6*3 + 2 = 20 layers."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                 groups: int):
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False)
        self.norm = group_norm(width, groups)
        blocks, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(3):
                blocks.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1, groups))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. initialization, as in the paper
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.norm(self.conv(x)))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(-2, -1)))


def build(input_shape: tuple[int, ...], num_classes: int, width: int = 16,
          gn_groups: int = 8) -> nn.Module:
    """ResNet-20 (0.27M parameters at width 16 with 10 classes).

    Args:
        input_shape: ``(C, H, W)`` with H, W >= 4 (injected; 32x32 for CIFAR-10).
        num_classes: output width C (injected).
        width: channels of the first stage (16 in the paper).
        gn_groups: GroupNorm groups (0: none); must divide width. GN accuracy is
            insensitive to the group count over a wide range (Wu & He 2018, Table 3).

    Reference: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition",
    CVPR 2016 (Sec. 4.2, CIFAR-10 ResNet-20, option A shortcuts); Wu & He, "Group
    Normalization", ECCV 2018 (BatchNorm replaced: its running statistics are not
    vmap-safe and its batch statistics would mix a worker's samples differently).
    """
    require(isinstance(width, int) and width >= 1 and width % 2 == 0, "model.width", width,
            "a positive even integer")
    check_classes(num_classes)
    shape = image_shape(input_shape, "resnet20", 4)
    return ResNet20(shape, int(num_classes), width, gn_groups)
