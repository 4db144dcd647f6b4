"""byzbench.attacks.finite_norm: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.finite_norm import FiniteNorm

from .helpers import TinyKrum, ctx_for, krum_mod, mean_rule, median_mod, rule_ctx


def median_rule(x):
    return x.median(dim=0).values


# Krum case: 3 honest rows at (1, 0), 3 at (-1, 0), f = 1, n = 7, Krum keeps n-f-2 = 4.
# b = (0, g): 4 nearest squared distances all 1 + g^2 -> score 4 + 4 g^2.
# honest (1, 0): 0, 0 (copies), 1 + g^2 (b), 4 -> score 5 + g^2 (while 1 + g^2 <= 4).
# b selected iff 4 + 4 g^2 < 5 + g^2 <=> g < 1/sqrt(3) = 0.57735 (tie -> honest row first).
KRUM_HONEST = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3, dtype=f64)


def test_krum_case_threshold_by_hand():
    k = TinyKrum(1)
    below = torch.cat([KRUM_HONEST, torch.tensor([[0.0, 0.57]], dtype=f64)])
    above = torch.cat([KRUM_HONEST, torch.tensor([[0.0, 0.58]], dtype=f64)])
    assert torch.equal(k(below), below[-1]) and not torch.equal(k(above), above[-1])


def test_finite_norm_adaptive_krum_is_largest_selected_gamma():
    a = FiniteNorm(unit="absolute",
                   direction="coordinate", coordinate=1, mode="largest_kept", gamma=1.0, rtol=1e-4,
                   budget=40)
    b = a(KRUM_HONEST, ctx_for(TinyKrum(1), 1, n_h=6))
    g = a.last_gamma
    assert 1 / math.sqrt(3) * (1 - 2e-4) <= g < 1 / math.sqrt(3)
    torch.testing.assert_close(b, torch.tensor([[0.0, g]], dtype=f64))  # mu = (0, 0)


def test_finite_norm_adaptive_median_saturation():
    # coordinate 0 of the honest rows: -2, -1, 0, 1, 2 (mean 0, variance 2 -> max_var picks it);
    # with f = 2 copies of b_0 = g the 7 sorted values are -2, -1, 0, g, g, 1, 2 for g <= 1
    # (median g: it responds at rate 1) and -2, -1, 0, 1, g, g, 2 ... for g > 1 (median 1:
    # rate 0). So the largest kept gamma is 1 (+ the 1e-3 finite-difference step).
    honest = torch.tensor([[-2.0, 0.1], [-1.0, -0.1], [0.0, 0.0], [1.0, 0.1], [2.0, -0.1]],
                          dtype=f64)
    a = FiniteNorm(unit="absolute",
                   direction="max_var", mode="largest_kept", gamma=0.1, rtol=1e-4, budget=40)
    b = a(honest, ctx_for(median_rule, 2, n_h=5))
    assert abs(a.last_gamma - 1.0) < 2e-3
    assert b.shape == (2, 2) and b[0, 1] == 0.0  # honest mean of coordinate 1 is 0


def test_finite_norm_adaptive_argmax_krum_and_median():
    # adaptive = argmax of <A - mu, e>: on the Krum case the displacement is g while b is
    # selected (g < 1/sqrt3) and 0 after: the maximizer's cliff bisection lands just below.
    a = FiniteNorm(unit="absolute", direction="coordinate", coordinate=1, cap=10.0, budget=16)
    a(KRUM_HONEST, ctx_for(TinyKrum(1), 1, n_h=6))
    assert 0.97 / math.sqrt(3) <= a.last_gamma < 1 / math.sqrt(3) and a.last_evals <= 16
    # median case: the displacement is min(g, 1): the plateau's left end, gamma ~ 1.
    honest = torch.tensor([[-2.0, 0.1], [-1.0, -0.1], [0.0, 0.0], [1.0, 0.1], [2.0, -0.1]],
                          dtype=f64)
    a = FiniteNorm(unit="absolute", cap=10.0, budget=16)
    a(honest, ctx_for(median_rule, 2, n_h=5))
    assert 1.0 <= a.last_gamma < 1.05


def test_finite_norm_adaptive_mean_always_kept():
    honest = torch.randn(5, 3, dtype=f64, generator=torch.Generator().manual_seed(0))
    a = FiniteNorm(unit="absolute", mode="largest_kept", gamma=1.0, cap=64.0)
    a(honest, ctx_for(mean_rule, 2, n_h=5))
    assert a.last_gamma == 64.0


def test_finite_norm_norm_mode_directions_by_hand():
    honest = torch.tensor([[0.0, 1.0, 4.0], [2.0, 1.0, 0.0]], dtype=f64)
    # mean = (1, 1, 2); variances (1, 0, 4) -> max_var = coordinate 2
    c = ctx_for(mean_rule, 2, n_h=2)
    b = FiniteNorm(unit="absolute", mode="norm", gamma=3.0)(honest, c)
    torch.testing.assert_close(b, torch.tensor([[1.0, 1.0, 5.0]] * 2, dtype=f64))
    b = FiniteNorm(unit="absolute",
                   direction="coordinate", coordinate=1, mode="norm", gamma=3.0)(honest, c)
    torch.testing.assert_close(b[0], torch.tensor([1.0, 4.0, 2.0], dtype=f64))
    # linf: e = (1, 1, 1)/sqrt(3); gamma = sqrt(3) -> + (1, 1, 1)
    b = FiniteNorm(unit="absolute", direction="linf", mode="norm", gamma=math.sqrt(3))(honest, c)
    torch.testing.assert_close(b[0], torch.tensor([2.0, 2.0, 3.0], dtype=f64))
    # vector (3, 0, 4) -> unit (0.6, 0, 0.8); gamma 5 -> + (3, 0, 4)
    b = FiniteNorm(unit="absolute",
                   direction="vector", vector=[3, 0, 4], mode="norm", gamma=5.0)(honest, c)
    torch.testing.assert_close(b[0], torch.tensor([4.0, 1.0, 6.0], dtype=f64))


def test_finite_norm_errors():
    honest = torch.zeros(3, 2)
    with pytest.raises(ConfigError, match="attack.direction"):
        FiniteNorm(unit="absolute", direction="diagonal")
    with pytest.raises(ConfigError, match="attack.vector"):
        FiniteNorm(unit="absolute", direction="vector")
    with pytest.raises(ConfigError, match="attack.coordinate"):
        FiniteNorm(unit="absolute",
                   direction="coordinate", coordinate=5, mode="norm")(honest, ctx_for(mean_rule, 1))
    with pytest.raises(ConfigError, match="attack.vector"):
        FiniteNorm(unit="absolute",
                   direction="vector", vector=[1, 0, 0], mode="norm")(honest, ctx_for(mean_rule, 1))


def test_finite_norm_adaptive_real_krum():
    # 3 x (1, 0), 3 x (-1, 0), f = 1: b = (0, g) is selected iff g < 1/sqrt3 (see
    # the Krum case above for the arithmetic); the rule's one-hot weights.
    honest = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3, dtype=f64)
    a = FiniteNorm(unit="absolute",
                   mode="largest_kept", direction="coordinate", coordinate=1, rtol=1e-4, budget=40)
    a(honest, rule_ctx(krum_mod.Krum(n=7, f=1), 1, 6))
    assert 1 / math.sqrt(3) * (1 - 2e-4) <= a.last_gamma < 1 / math.sqrt(3)


def test_finite_norm_adaptive_real_median():
    # coordinate 0 values -2..2, f = 2: the median follows b_0 = g up to g = 1.
    honest = torch.tensor([[-2.0, 0.1], [-1.0, -0.1], [0.0, 0.0], [1.0, 0.1], [2.0, -0.1]],
                          dtype=f64)
    a = FiniteNorm(unit="absolute", mode="largest_kept", gamma=0.1, rtol=1e-4, budget=40)
    a(honest, rule_ctx(median_mod.Median(n=7, f=2), 2, 5))
    assert abs(a.last_gamma - 1.0) < 2e-3
