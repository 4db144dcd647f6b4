"""Adaptive attacks against the library's real rules (byzbench.aggregators): the same
hand-computed thresholds as with the inline rules."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench.aggregators.base import Pipeline
from byzbench.attacks.alie import ALIE
from byzbench.attacks.base import RoundContext
from byzbench.attacks.fang_krum import FangKrum
from byzbench.attacks.finite_norm import FiniteNorm
from byzbench.attacks.seesaw import Seesaw
from byzbench.attacks.tuning import Tuned

krum_mod = pytest.importorskip("byzbench.aggregators.krum")
median_mod = pytest.importorskip("byzbench.aggregators.median")
f64 = torch.float64


def ctx(rule, f, n_h, t=0):
    return RoundContext(t=t, n=n_h + f, f=f, f_declared=f, pipeline=Pipeline([], rule),
                        generator=torch.Generator().manual_seed(0))


def test_finite_norm_adaptive_real_krum():
    # 3 x (1, 0), 3 x (-1, 0), f = 1: b = (0, g) is selected iff g < 1/sqrt3 (see
    # test_attacks_seesaw_finite_norm.py for the arithmetic); the rule's one-hot weights.
    honest = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3, dtype=f64)
    a = FiniteNorm(unit="absolute",
                   mode="largest_kept", direction="coordinate", coordinate=1, rtol=1e-4, budget=40)
    a(honest, ctx(krum_mod.Krum(n=7, f=1), 1, 6))
    assert 1 / math.sqrt(3) * (1 - 2e-4) <= a.last_gamma < 1 / math.sqrt(3)


def test_finite_norm_adaptive_real_median():
    # coordinate 0 values -2..2, f = 2: the median follows b_0 = g up to g = 1.
    honest = torch.tensor([[-2.0, 0.1], [-1.0, -0.1], [0.0, 0.0], [1.0, 0.1], [2.0, -0.1]],
                          dtype=f64)
    a = FiniteNorm(unit="absolute", mode="largest_kept", gamma=0.1, rtol=1e-4, budget=40)
    a(honest, ctx(median_mod.Median(n=7, f=2), 2, 5))
    assert abs(a.last_gamma - 1.0) < 2e-3


def test_seesaw_adaptive_real_krum():
    honest = torch.tensor([[1.0, 1.0]] * 3 + [[-1.0, 1.0]] * 3, dtype=f64)
    a = Seesaw(unit="absolute", cap=10.0, budget=30, period=1)
    a(honest, ctx(krum_mod.Krum(n=7, f=1), 1, 6, t=1))
    assert 0.95 / math.sqrt(3) < a.last_lambda < 1 / math.sqrt(3)


def test_fang_krum_real_krum_is_selected():
    honest = torch.tensor([[1.0, 0.1], [-1.0, 0.1], [0.1, 1.0], [0.1, -1.0], [0.9, 0.9]],
                          dtype=f64)
    krum = krum_mod.Krum(n=7, f=2)
    a = FangKrum()
    b = a(honest, ctx(krum, 2, 5))
    krum(torch.cat([honest, b]))
    assert krum.last_weights[5:].sum() > 0


def test_tuned_alie_on_real_median_beats_dense_grid():
    honest = torch.randn(12, 50, dtype=f64, generator=torch.Generator().manual_seed(2)) + 0.5
    med = median_mod.Median(n=16, f=4)
    c = ctx(med, 4, 12)
    t = Tuned(ALIE(), budget=16)
    b = t(honest, c)
    mu = honest.mean(0)

    def damage(z):
        return float((med(torch.cat([honest, ALIE(z=z)(honest, c)])) - mu).norm())

    best_grid = max(damage(10 * k / 400) for k in range(401))
    assert float((med(torch.cat([honest, b])) - mu).norm()) >= 0.97 * best_grid
