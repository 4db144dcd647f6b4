"""ResNet-20 for CIFAR-10: GroupNorm (default, vmap-safe) or BatchNorm (published code)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from byzbench import require
from byzbench.models._common import check_classes, group_norm, image_shape

NORMS = ("group", "batch")
SHORTCUTS = ("zero_pad", "projection")


def make_norm(channels: int, norm: str, groups: int) -> nn.Module:
    """GroupNorm(groups) (identity when groups = 0) or BatchNorm2d with torch's
    defaults (eps 1e-5, running-statistics momentum 0.1), as the published code."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return group_norm(channels, groups)


class BasicBlock(nn.Module):
    """``relu(N(conv3x3(relu(N(conv3x3_s(x))))) + shortcut(x))`` with N the norm layer.
    When the shape changes the shortcut is He et al.'s option A (``zero_pad``:
    subsample by 2 and zero-pad the new channels, parameter-free, as in the paper's
    CIFAR ResNets) or option B (``projection``: conv1x1 with stride 2 then N, as in
    the centered-clipping code's ResNet)."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int, norm: str = "group",
                 shortcut: str = "zero_pad"):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(c_out, norm, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = make_norm(c_out, norm, groups)
        self.stride = stride
        self.pad = c_out - c_in
        self.proj = None
        if shortcut == "projection" and (stride != 1 or self.pad):
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                      make_norm(c_out, norm, groups))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        short = x
        if self.proj is not None:
            short = self.proj(x)
        elif self.stride != 1 or self.pad:
            short = x[..., :: self.stride, :: self.stride]
            # (W, W, H, H, C, C) padding: the new channels split evenly before and after.
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class ResNet20(nn.Module):
    """conv3x3(w) -> norm -> relu -> 3 stages of 3 BasicBlocks (widths w, 2w, 4w; stride 2
    entering stages 2 and 3) -> global average pool -> fc C. 6*3 + 2 = 20 layers."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                 groups: int, norm: str = "group", shortcut: str = "zero_pad"):
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False)
        self.norm = make_norm(width, norm, groups)
        blocks, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(3):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, groups, norm, shortcut))
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
          gn_groups: int = 8, norm: str = "group", shortcut: str = "zero_pad") -> nn.Module:
    """ResNet-20 (0.27M parameters at width 16 with 10 classes).

    Args:
        input_shape: ``(C, H, W)`` with H, W >= 4 (injected; 32x32 for CIFAR-10).
        num_classes: output width C (injected).
        width: channels of the first stage (16 in the paper).
        gn_groups: GroupNorm groups (0: none); must divide width. GN accuracy is
            insensitive to the group count over a wide range (Wu & He 2018, Table 3).
        norm: ``group`` (default: no running statistics, vectorized gradients) or
            ``batch``: BatchNorm2d as in the centered-clipping code. Then each
            worker's forward normalizes with its own minibatch's statistics, the
            gradients come from the per-worker loop (``grad_path`` auto picks it), and
            every computing worker's forward updates the one shared model's running
            mean and variance in place, worker after worker, with momentum 0.1
            (``r <- 0.9 r + 0.1 batch statistic``, unbiased variance), as all workers
            of the published code share one ``nn.Module``; evaluation uses the
            running statistics (``model.eval()``). The running statistics are module
            buffers, never aggregated or attacked.
        shortcut: ``zero_pad`` (He et al.'s option A) or ``projection`` (option B,
            conv1x1 + norm, as in the centered-clipping code's ``ResNetCIFAR``).

    Reference: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition",
    CVPR 2016 (Sec. 4.2, CIFAR-10 ResNet-20, option A shortcuts); Wu & He, "Group
    Normalization", ECCV 2018 (GroupNorm: no running statistics, vmap-safe);
    BatchNorm variant: Karimireddy, He & Jaggi, ICML 2021, code
    epfml/byzantine-robust-optimizer (``get_resnet20``: mlbench's ``ResNetCIFAR``,
    version 1, projection shortcuts).
    """
    require(isinstance(width, int) and width >= 1 and width % 2 == 0, "model.width", width,
            "a positive even integer")
    require(norm in NORMS, "model.norm", norm, ", ".join(NORMS))
    require(shortcut in SHORTCUTS, "model.shortcut", shortcut, ", ".join(SHORTCUTS))
    check_classes(num_classes)
    shape = image_shape(input_shape, "resnet20", 4)
    return ResNet20(shape, int(num_classes), width, gn_groups, norm, shortcut)
