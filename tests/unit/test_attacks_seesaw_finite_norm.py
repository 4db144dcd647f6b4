"""finite_norm and seesaw: hand-computed outputs, the adaptive searches on Krum / median
cases with thresholds computed by hand, seesaw phases, groups and stealth."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import RoundContext
from byzbench.attacks.finite_norm import FiniteNorm
from byzbench.attacks.seesaw import Seesaw

f64 = torch.float64


class TinyKrum:
    """Krum written in the test (Blanchard et al.): score_i = sum of the n - f - 2
    smallest squared distances to other rows; ties -> lowest index; one-hot weights."""

    def __init__(self, f: int):
        self.f = f
        self.last_weights = None

    def __call__(self, x):
        n = x.shape[0]
        d2 = ((x.unsqueeze(1) - x.unsqueeze(0)) ** 2).sum(-1)
        scores = d2.sort(dim=1).values[:, 1 : n - self.f - 1].sum(1)
        i = int(scores.argmin())
        w = torch.zeros(n, dtype=x.dtype)
        w[i] = 1.0
        self.last_weights = w
        return x[i]


def median_rule(x):
    return x.median(dim=0).values


def mean_rule(x):
    return x.mean(dim=0)


def ctx_for(rule, f, t=0, n_h=None, seed=0):
    return RoundContext(t=t, n=(n_h or 0) + f, f=f, f_declared=f,
                        pipeline=Pipeline([], rule), generator=torch.Generator().manual_seed(seed))


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


# ---------------------------------------------------------------- seesaw

SEESAW_HONEST = torch.tensor([[3.0, 1.0], [1.0, 2.0], [2.0, 6.0]], dtype=f64)
# coordinate-wise median r = (2, 2), |r| = 2 sqrt(2), u = (1, 1)/sqrt(2); mean = (2, 3)


def test_seesaw_phase_flips_every_period():
    a = Seesaw(unit="absolute", magnitude="fixed", lam=math.sqrt(2), period=3)
    signs = []
    for t in range(9):
        b = a(SEESAW_HONEST, ctx_for(mean_rule, 2, t=t, n_h=3))
        # s_t = +1 -> b = r - sqrt(2) u = (2, 2) - (1, 1) = (1, 1); s_t = -1 -> (3, 3)
        assert torch.equal(b[0], b[1])
        signs.append(1 if torch.allclose(b[0], torch.tensor([1.0, 1.0], dtype=f64)) else -1)
        if signs[-1] == -1:
            torch.testing.assert_close(b[0], torch.tensor([3.0, 3.0], dtype=f64))
    assert signs == [1, 1, 1, -1, -1, -1, 1, 1, 1]
    assert [Seesaw(unit="absolute", period=1).phase(t) for t in range(4)] == [1, -1, 1, -1]


def test_seesaw_period_null_never_flips():
    a = Seesaw(unit="absolute", magnitude="fixed", lam=math.sqrt(2), period=None)
    for t in (0, 1, 7, 100):
        b = a(SEESAW_HONEST, ctx_for(mean_rule, 1, t=t, n_h=3))
        torch.testing.assert_close(b[0], torch.tensor([1.0, 1.0], dtype=f64))


def test_seesaw_groups_two_halves_opposite_sides():
    a = Seesaw(unit="absolute", magnitude="fixed", lam=math.sqrt(2), period=1, groups=2)
    r = torch.tensor([2.0, 2.0], dtype=f64)
    for t in (0, 1):
        b = a(SEESAW_HONEST, ctx_for(mean_rule, 5, t=t, n_h=3))
        side = ((b - r) @ torch.tensor([1.0, 1.0], dtype=f64)).sign()
        s = 1 if t == 0 else -1
        # first ceil(5/2) = 3 rows in phase s_t (side -s_t), the other 2 opposite
        assert side.tolist() == [-s, -s, -s, s, s]
        torch.testing.assert_close(b[:3].mean(0) + b[3:].mean(0), 2 * r)


def test_seesaw_pivots_and_directions_by_hand():
    c = ctx_for(mean_rule, 1, n_h=3)
    # mean pivot (2, 3), |.| = sqrt(13); lam = sqrt(13) -> b = (2, 3) - (2, 3) = 0
    b = Seesaw(unit="absolute",
               pivot="mean", magnitude="fixed", lam=math.sqrt(13))(SEESAW_HONEST, c)
    torch.testing.assert_close(b[0], torch.zeros(2, dtype=f64))
    # medoid: distance sums: row0 sqrt(5)+sqrt(26), row1 sqrt(5)+sqrt(17), row2 sqrt(26)+sqrt(17)
    # -> row1 = (1, 2); sign direction (1, 1) / sqrt2, lam = 0.5 sqrt2 -> (0.5, 1.5)
    b = Seesaw(unit="absolute", pivot="medoid", direction="sign", magnitude="fixed",
               lam=0.5 * math.sqrt(2))(SEESAW_HONEST, c)
    torch.testing.assert_close(b[0], torch.tensor([0.5, 1.5], dtype=f64))
    # std (unbiased): coord 0: values 3,1,2 -> var 1 -> std 1; coord 1: 1,2,6 mean 3,
    # var (4+1+9)/2 = 7 -> std sqrt(7), normalized (1, sqrt7) / sqrt8; lam = 2 sqrt8
    # -> (2, 2) - 2 (1, sqrt 7)
    b = Seesaw(unit="absolute", direction="std", magnitude="fixed",
               lam=2.0 * math.sqrt(8))(SEESAW_HONEST, c)
    torch.testing.assert_close(b[0], torch.tensor([0.0, 2 - 2 * math.sqrt(7)], dtype=f64))
    # growing: lambda_0 rho^t = 0.5 * 2^2 = 2 at t = 2 (phase +1 with period 10) -> r - 2u
    b = Seesaw(unit="absolute", magnitude="growing", lambda_0=0.5, rho=2.0)(SEESAW_HONEST,
                                                           ctx_for(mean_rule, 1, t=2, n_h=3))
    torch.testing.assert_close(b[0], torch.tensor([2 - math.sqrt(2), 2 - math.sqrt(2)], dtype=f64))


@pytest.mark.parametrize("groups,t", [(1, 0), (1, 1), (2, 0)])
def test_seesaw_stealth_min_max_constraint_with_equality(groups, t):
    honest = torch.randn(7, 5, dtype=f64, generator=torch.Generator().manual_seed(3)) + 1.0
    a = Seesaw(unit="absolute", magnitude="stealth", cap=1e6, groups=groups, period=1)
    b = a(honest, ctx_for(mean_rule, 4, t=t, n_h=7))
    bound = torch.cdist(honest, honest).max()
    worst = torch.cdist(b, honest).max()
    assert a.last_lambda > 0
    assert worst <= bound * (1 + 1e-9)
    torch.testing.assert_close(worst, bound, rtol=1e-9, atol=0)


@pytest.mark.parametrize("t", [0, 1])
def test_seesaw_adaptive_maximizes_signed_displacement_krum(t):
    # honest: 3 x (1, 1), 3 x (-1, 1): median r = (0, 1), u = (0, 1). Phase s_t = +1 (t = 0)
    # -> b = (0, 1 - lam); s_t = -1 (t = 1) -> (0, 1 + lam). Distances^2 to honest 1 + lam^2,
    # so as in the finite_norm Krum case b is selected iff lam < 1/sqrt(3), and then the
    # signed displacement along -s_t u is lam; otherwise Krum returns an honest row (0).
    honest = torch.tensor([[1.0, 1.0]] * 3 + [[-1.0, 1.0]] * 3, dtype=f64)
    a = Seesaw(unit="absolute", magnitude="adaptive", cap=10.0, budget=30, period=1)
    b = a(honest, ctx_for(TinyKrum(1), 1, t=t, n_h=6))
    lam = a.last_lambda
    assert 0.95 / math.sqrt(3) < lam < 1 / math.sqrt(3)
    s = 1 if t == 0 else -1
    torch.testing.assert_close(b[0], torch.tensor([0.0, 1 - s * lam], dtype=f64))


@pytest.mark.parametrize("cap", [0.5, 2.0, 8.0])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_fair_protocol_same_bounded_deviation_against_mean(cap, scale):
    # The fair protocol (docs/STUDY.md): seesaw, directional_deviation and finite_norm
    # (mode maximize) search [lo, cap] spread units with the same maximizer and budget.
    # Against the plain mean the displacement grows linearly, so all three take the cap
    # and each Byzantine row sits at exactly cap * spread from its pivot, whatever the
    # gradients' scale: bounded, and the same bound for every attack.
    honest = scale * (torch.randn(6, 4, dtype=f64, generator=torch.Generator().manual_seed(1))
                      + 2)
    spread = float((honest - honest.mean(0)).norm(dim=1).mean())
    c = ctx_for(mean_rule, 3, n_h=6)
    attacks = [Seesaw(cap=cap, budget=16, period=1), Seesaw(cap=cap, budget=16, period=None),
               FiniteNorm(cap=cap, budget=16)]
    for a in attacks:
        b = a(honest, c)
        pivot = honest.median(0).values if isinstance(a, Seesaw) else honest.mean(0)
        if isinstance(a, Seesaw):
            pivot = torch.quantile(honest, 0.5, dim=0)
        dist = (b - pivot).norm(dim=1)
        torch.testing.assert_close(dist, torch.full_like(dist, cap * spread), rtol=1e-9, atol=0)
        assert a.last_evals <= 16


def test_seesaw_jitter_seeded_rows_differ():
    honest = torch.randn(6, 4, dtype=f64, generator=torch.Generator().manual_seed(1)) + 2
    a = Seesaw(unit="absolute", magnitude="fixed", lam=1.0, jitter=0.01)
    b1 = a(honest, ctx_for(mean_rule, 3, n_h=6, seed=5))
    b2 = a(honest, ctx_for(mean_rule, 3, n_h=6, seed=5))
    assert torch.equal(b1, b2) and not torch.equal(b1[0], b1[1])
    base = Seesaw(unit="absolute", magnitude="fixed", lam=1.0)(honest, ctx_for(mean_rule, 3, n_h=6))
    assert ((b1 - base).norm(dim=1) / base.norm(dim=1)).max() < 0.05


def test_seesaw_errors():
    for kw, name in [({"period": 0}, "attack.period"), ({"groups": 3}, "attack.groups"),
                     ({"pivot": "mode"}, "attack.pivot"),
                     ({"magnitude": "huge"}, "attack.magnitude")]:
        with pytest.raises(ConfigError, match=name):
            Seesaw(unit="absolute", **kw)
