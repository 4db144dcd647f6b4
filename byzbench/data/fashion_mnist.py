"""Fashion-MNIST clothing images through torchvision (28x28 grayscale, 10 classes)."""

from __future__ import annotations

import torch

from byzbench.data._torchvision import load_images
from byzbench.data.base import Dataset

# Training-set pixel mean and std on [0, 1] (72.94 / 255 and 90.02 / 255).
MEAN = (0.2860,)
STD = (0.3530,)


def build(generator: torch.Generator, root: str = "data", download: bool = True,
          max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """Fashion-MNIST as uint8 ``[60000, 1, 28, 28]`` / ``[10000, 1, 28, 28]``;
    ``prepare`` maps a gathered batch to ``(x / 255 - 0.2860) / 0.3530``.

    Args:
        generator: CPU generator for the optional subsets.
        root: folder holding ``FashionMNIST/raw/*-ubyte`` (torchvision's layout).
        download: fetch the files when missing (otherwise a one-line ConfigError).
        max_train, max_test: seeded random subset sizes (null: the whole split).

    Reference: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
    Benchmarking Machine Learning Algorithms", arXiv 1708.07747 (2017).
    """
    from torchvision.datasets import FashionMNIST

    return load_images(FashionMNIST, "fashion_mnist", "FashionMNIST/raw", root, download,
                       generator, max_train, max_test, MEAN, STD, 10)
