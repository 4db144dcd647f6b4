"""Backdoor defenses by hand: norm bounding (fixed, median), weak DP's noise from the
stage's generator, CRFL's clipped mean, RLR's per-coordinate sign threshold."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.crfl import CRFL
from byzbench.aggregators.norm_bound import NormBound
from byzbench.aggregators.rlr import RLR
from byzbench.aggregators.weak_dp import WeakDP

f64 = torch.float64


def test_norm_bound_fixed_and_median():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]], dtype=f64)  # norms 5, 0.5
    torch.testing.assert_close(NormBound(bound=1.0)(x), torch.tensor([0.3, 0.65], dtype=f64))
    rule = NormBound()  # median of 5 and 0.5 = 2.75: the first row scaled by 0.55
    torch.testing.assert_close(rule(x), torch.tensor([0.825, 1.35], dtype=f64))
    torch.testing.assert_close(rule.last_weights, torch.tensor([0.275, 0.5], dtype=f64))
    bad = torch.cat([x, torch.tensor([[math.nan, 1.0]], dtype=f64)])
    torch.testing.assert_close(NormBound(bound=1.0)(bad), torch.tensor([0.3, 0.65], dtype=f64))
    with pytest.raises(ConfigError, match="agg.bound"):
        NormBound(bound=0)


def test_weak_dp_adds_seeded_noise_scaled_by_the_bound():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5], [1.0, 0.0]], dtype=f64)  # median norm 1
    clean = NormBound()(x)
    out = WeakDP(sigma=0.5, generator=torch.Generator().manual_seed(4))(x)
    z = torch.randn(2, generator=torch.Generator().manual_seed(4), dtype=f64)
    torch.testing.assert_close(out, clean + 0.5 * 1.0 * z)
    absolute = WeakDP(bound=10.0, sigma=0.25, unit="absolute",
                      generator=torch.Generator().manual_seed(4))(x)
    torch.testing.assert_close(absolute, x.mean(0) + 0.25 * z)
    assert torch.equal(WeakDP(sigma=0.0)(x), clean)
    with pytest.raises(ConfigError, match="agg.unit"):
        WeakDP(unit="relative")


def test_crfl_clips_the_mean():
    x = torch.tensor([[3.0, 4.0], [3.0, 4.0], [math.inf, 0.0]], dtype=f64)
    torch.testing.assert_close(CRFL(bound=1.0, sigma=0.0)(x), torch.tensor([0.6, 0.8], dtype=f64))
    rule = CRFL(bound=10.0, sigma=0.0)
    torch.testing.assert_close(rule(x), torch.tensor([3.0, 4.0], dtype=f64))
    torch.testing.assert_close(rule.last_weights, torch.tensor([0.5, 0.5, 0.0], dtype=f64))
    z = torch.randn(2, generator=torch.Generator().manual_seed(1), dtype=f64)
    noisy = CRFL(bound=1.0, sigma=0.1, generator=torch.Generator().manual_seed(1))(x)
    torch.testing.assert_close(noisy, torch.tensor([0.6, 0.8], dtype=f64) + 0.1 * z)


def test_rlr_sign_threshold_by_hand():
    x = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -3.0], [1.0, -1.0, 1.0]], dtype=f64)
    # sign sums 3, -1, 0: only the first coordinate reaches theta = 2
    rule = RLR(threshold=2)
    torch.testing.assert_close(rule(x), torch.tensor([1.0, 1 / 3, 0.0], dtype=f64))
    assert rule.last_stats["rlr_flipped"] == pytest.approx(2 / 3)
    torch.testing.assert_close(RLR(threshold=2, below="zero")(x),
                               torch.tensor([1.0, 0.0, 0.0], dtype=f64))
    assert RLR(f=2).threshold == 3  # null: f + 1
    torch.testing.assert_close(RLR(threshold=1)(x), x.mean(0))
