"""byzbench.attacks.seesaw: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.seesaw import Seesaw

from .helpers import TinyKrum, ctx_for, krum_mod, mean_rule, rule_ctx

SEESAW_HONEST = torch.tensor([[3.0, 1.0], [1.0, 2.0], [2.0, 6.0]], dtype=f64)


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


def test_seesaw_adaptive_real_krum():
    honest = torch.tensor([[1.0, 1.0]] * 3 + [[-1.0, 1.0]] * 3, dtype=f64)
    a = Seesaw(unit="absolute", cap=10.0, budget=30, period=1)
    a(honest, rule_ctx(krum_mod.Krum(n=7, f=1), 1, 6, t=1))
    assert 0.95 / math.sqrt(3) < a.last_lambda < 1 / math.sqrt(3)
