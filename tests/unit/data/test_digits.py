"""The digits dataset: default split shapes, standardization, image layout, determinism,
stratified split; a bad test_frac is one line."""

from __future__ import annotations

import pytest
import torch

from byzbench import ConfigError
from byzbench.build import instantiate_component

from .helpers import build_yaml, gen


def test_digits_default_split_shapes_and_standardization():
    d = build_yaml("digits")
    # 1797 samples; per class round(0.2 * N_c) held out. Class sizes are
    # 178,182,177,183,181,182,181,179,174,180 -> 36,36,35,37,36,36,36,36,35,36 = 359 test.
    assert d.x_train.shape == (1797 - 359, 64) and d.x_test.shape == (359, 64)
    assert d.input_shape == (64,) and d.num_classes == 10 and d.task == "classification"
    per_class = torch.tensor([36, 36, 35, 37, 36, 36, 36, 36, 35, 36])
    assert torch.equal(torch.bincount(d.y_test), per_class)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.long
    # Standardized with training statistics: per-pixel mean 0, std 1 (or 0 for blank pixels).
    assert d.x_train.mean(0).abs().max() < 1e-5
    std = d.x_train.std(0)
    assert torch.all(((std - 1).abs() < 1e-4) | (std < 1e-6))


def test_digits_image_layout_and_determinism():
    a = build_yaml("digits", flatten=False)
    b = build_yaml("digits")
    assert a.input_shape == (1, 8, 8)
    assert torch.equal(a.x_train.reshape(-1, 64), b.x_train)
    c = instantiate_component({"_target_": "byzbench.data.digits.build"}, "dataset",
                              generator=gen(1))
    assert not torch.equal(c.y_train, b.y_train)  # another seed, another split


def test_stratified_split_disjoint_complete_per_class():
    from byzbench.data._common import stratified_split

    # Class sizes 10, 5, 1: round(0.2 * 10) = 2, round(0.2 * 5) = 1, round(0.2 * 1) = 0 test.
    y = torch.tensor([0] * 10 + [1] * 5 + [2])[torch.randperm(16, generator=gen(3))]
    tr, te = stratified_split(y, 0.2, gen())
    assert torch.equal(torch.cat([tr, te]).sort().values, torch.arange(16))
    assert torch.equal(torch.bincount(y[te], minlength=3), torch.tensor([2, 1, 0]))


def test_digits_bad_test_frac():
    from byzbench.data.digits import build

    with pytest.raises(ConfigError, match="dataset.test_frac") as e:
        build(gen(), test_frac=1.5)
    assert "\n" not in str(e.value)
