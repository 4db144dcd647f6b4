"""CIFAR-10 through torchvision (32x32 RGB, 10 classes), kept as uint8."""

from __future__ import annotations

import torch

from byzbench import require
from byzbench.data._torchvision import load_images
from byzbench.data.base import Dataset

# Per-channel training-set pixel mean and std on [0, 1]. The often-copied std
# (0.2023, 0.1994, 0.2010) is not the per-channel pixel std; these are.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def build(generator: torch.Generator, root: str = "data", download: bool = True,
          max_train: int | None = None, max_test: int | None = None,
          mean: list[float] | None = None, std: list[float] | None = None) -> Dataset:
    """CIFAR-10 as uint8 ``[50000, 3, 32, 32]`` / ``[10000, 3, 32, 32]`` (150 MB instead
    of 600 MB as float); ``prepare`` maps a gathered batch to
    ``(x / 255 - mean_c) / std_c`` per channel c. No augmentation.

    Args:
        generator: CPU generator for the optional subsets.
        root: folder holding ``cifar-10-batches-py/`` (torchvision's layout).
        download: fetch the archive when missing (otherwise a one-line ConfigError).
        max_train, max_test: seeded random subset sizes (null: the whole split).
        mean, std: per-channel constants (null: MEAN, STD above); the code of Karimireddy
            et al. (ICML 2021) and ByzFL use std (0.2023, 0.1994, 0.2010).

    Reference: Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
    tech. report, University of Toronto, 2009.
    """
    from torchvision.datasets import CIFAR10

    for name, v in (("dataset.mean", mean), ("dataset.std", std)):
        require(v is None or (len(v) == 3 and all(float(c) > 0 for c in v)), name, v,
                "null or 3 positive numbers (one per channel)")
    return load_images(CIFAR10, "cifar10", "cifar-10-batches-py", root, download, generator,
                       max_train, max_test, tuple(mean or MEAN), tuple(std or STD), 10)
