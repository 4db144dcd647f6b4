"""MNIST handwritten digits through torchvision (28x28 grayscale, 10 classes)."""

from __future__ import annotations

import torch

from byzbench.data._torchvision import load_images
from byzbench.data.base import Dataset

# Training-set pixel mean and std on [0, 1] (the constants of the PyTorch MNIST example).
MEAN = (0.1307,)
STD = (0.3081,)


def build(generator: torch.Generator, root: str = "data", download: bool = True,
          max_train: int | None = None, max_test: int | None = None,
          test_long_tail: float = 1.0) -> Dataset:
    """MNIST as uint8 ``[60000, 1, 28, 28]`` / ``[10000, 1, 28, 28]``; ``prepare`` maps
    a gathered batch to ``(x / 255 - 0.1307) / 0.3081``.

    Args:
        generator: CPU generator for the optional subsets.
        root: folder holding ``MNIST/raw/*-ubyte`` (torchvision's layout).
        download: fetch the files when missing (otherwise a one-line ConfigError).
        max_train, max_test: seeded random subset sizes (null: the whole split).
        test_long_tail: 1 (whole test split) or beta < 1: class c keeps its first
            floor(N_c beta^c) test samples, as the long-tailed test set of Karimireddy
            et al. (ICLR 2022) exp1.

    Reference: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to
    document recognition", Proc. IEEE 1998.
    """
    from torchvision.datasets import MNIST

    return load_images(MNIST, "mnist", "MNIST/raw", root, download, generator, max_train,
                       max_test, MEAN, STD, 10, test_long_tail=test_long_tail)
