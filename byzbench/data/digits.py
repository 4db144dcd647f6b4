"""scikit-learn's bundled 8x8 handwritten digits: the default offline dataset."""

from __future__ import annotations

import torch

from byzbench import require
from byzbench.data._common import stratified_split
from byzbench.data.base import Dataset


def build(generator: torch.Generator, test_frac: float = 0.2, flatten: bool = True) -> Dataset:
    """The UCI optical-digits test set as shipped with scikit-learn (1797 samples of
    8x8 pixels in 0..16, 10 classes), split and standardized.

    A seeded stratified split holds out ``round(test_frac * N_c)`` samples of each
    class c. Pixels are standardized with the training split's per-pixel statistics,
    ``x' = (x - mean_train) / std_train`` (std 0 -> 1 for the always-blank border
    pixels), once at build time since the set is tiny; ``prepare`` is the identity.

    Args:
        generator: CPU generator for the split.
        test_frac: fraction of each class held out for test.
        flatten: inputs ``[N, 64]`` (MLP, logreg) if true, ``[N, 1, 8, 8]`` (CNNs) if false.

    Reference: Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI
    Machine Learning Repository (1998); ``sklearn.datasets.load_digits``.
    """
    from sklearn.datasets import load_digits

    require(isinstance(flatten, bool), "dataset.flatten", flatten, "true or false")
    raw = load_digits()
    x = torch.as_tensor(raw.data, dtype=torch.float32)  # [1797, 64]
    y = torch.as_tensor(raw.target, dtype=torch.long)
    tr, te = stratified_split(y, test_frac, generator)
    mean = x[tr].mean(0)
    std = x[tr].std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    x = (x - mean) / std
    shape = (-1, 64) if flatten else (-1, 1, 8, 8)
    return Dataset(
        x_train=x[tr].reshape(shape).contiguous(),
        y_train=y[tr],
        x_test=x[te].reshape(shape).contiguous(),
        y_test=y[te],
        num_classes=10,
        name="digits",
    )
