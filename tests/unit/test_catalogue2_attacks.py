"""Catalogue II attacks: hand-computed values, what each attack may see (knowledge),
scale-freeness, and effect on the rule each one targets."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.cge import CGE
from byzbench.aggregators.krum import Krum
from byzbench.attacks.alie_local import ALIELocal
from byzbench.attacks.anticge import AntiCGE
from byzbench.attacks.base import RoundContext
from byzbench.attacks.fang_krum import FangKrum
from byzbench.attacks.fang_partial import FangPartial
from byzbench.attacks.signguard_evasion import SignguardEvasion, match_sign_fractions
from byzbench.attacks.sparse import Sparse

f64 = torch.float64


def ctx(f, n_h, rule=lambda x: x.mean(0), byz=None, seed=0, f_declared=None):
    return RoundContext(t=0, n=n_h + f, f=f, f_declared=f if f_declared is None else f_declared,
                        pipeline=Pipeline([], rule), byz_grads=byz,
                        generator=torch.Generator().manual_seed(seed))


def grads(h, d, seed, offset=0.3):
    return torch.randn(h, d, generator=torch.Generator().manual_seed(seed), dtype=f64) + offset


def test_alie_local_by_hand_and_knowledge():
    own = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=f64)
    # mu = (2, 4), unbiased std = (sqrt2, 2 sqrt2); z = 1
    b = ALIELocal(z=1.0)(grads(5, 2, 0), ctx(2, 5, byz=own))
    want = torch.tensor([2 - math.sqrt(2), 4 - 2 * math.sqrt(2)], dtype=f64)
    torch.testing.assert_close(b, want.expand(2, 2))
    assert ALIELocal.local
    other = ALIELocal(z=1.0)(grads(5, 2, 9) * 100, ctx(2, 5, byz=own))
    assert torch.equal(b, other)  # the honest rows are not used


def test_sparse_by_hand_and_scale_free():
    honest = torch.tensor([[1.0, 2.0, 0.0, 4.0], [3.0, 6.0, 2.0, 0.0]], dtype=f64)
    a = Sparse(density=0.5, scale=5.0, z=1.0)
    b = a(honest, ctx(2, 2))
    mask = a.mask
    assert mask.sum() == 2 and set(mask.tolist()) == {0.0, 1.0}
    mu, sd = honest.mean(0), honest.std(0)
    want = mu - sd * (mask * 5.0 + (1 - mask) * 1.0)
    torch.testing.assert_close(b, want.expand(2, 4))
    b2 = Sparse(density=0.5, scale=5.0, z=1.0)(1e3 * honest, ctx(2, 2))
    torch.testing.assert_close(b2, 1e3 * b)
    # the mask is fixed across rounds
    a(honest * 2, ctx(2, 2, seed=5))
    assert torch.equal(a.mask, mask)
    with pytest.raises(ConfigError, match="attack.density"):
        Sparse(density=0.0)


def test_fang_partial_trmean_ranges_and_knowledge():
    own = grads(3, 50, 1)
    a = FangPartial()
    b = a(grads(6, 50, 2), ctx(3, 6, byz=own))
    mu, sd = own.mean(0), own.std(0)
    dev = (b - mu) / sd
    down = mu >= 0
    assert ((dev[:, down] >= -4 - 1e-9) & (dev[:, down] <= -3 + 1e-9)).all()
    assert ((dev[:, ~down] >= 3 - 1e-9) & (dev[:, ~down] <= 4 + 1e-9)).all()
    assert not torch.equal(b[0], b[1])  # independent draws per worker
    b_other = FangPartial()(grads(6, 50, 3) * 10, ctx(3, 6, byz=own))
    assert torch.equal(b, b_other)


def test_fang_partial_krum_is_selected_in_its_view_and_bounded():
    own = grads(3, 20, 4)
    a = FangPartial(target="krum", n=12, f=3)
    b = a(grads(9, 20, 5), ctx(3, 9, byz=own))
    lam0 = FangKrum.lambda_upper_bound(own, 12, 3)
    assert 0 < a.last_lambda <= lam0
    s = torch.where(own.mean(0) >= 0, 1.0, -1.0).to(f64)
    torch.testing.assert_close(b, (-a.last_lambda * s).expand(3, 20))
    view = torch.cat([b, own])
    d2 = torch.cdist(view, view) ** 2
    k = min(12 - 3 - 2, 2 * 3 - 1)
    score = d2.sort(dim=1).values[:, 1:k + 1].sum(1)
    assert int(score.argmin()) < 3  # a crafted row wins the attacker's simulated Krum
    with pytest.raises(ConfigError, match="attack.f"):
        FangPartial(target="krum", n=7, f=3)


def test_anticge_by_hand_and_against_cge():
    honest = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [6.0, 8.0]], dtype=f64)
    # f_decl = 1: CGE keeps n - 1 = 4 of 5 rows; kept-norm bound = 4th honest norm, 10;
    # S = (1, 0) + (0, 2) + (3, 4) = (4, 6)
    b = AntiCGE()(honest, ctx(1, 4))
    want = -torch.tensor([4.0, 6.0], dtype=f64) / math.sqrt(52) * 10 * (1 - 1e-6)
    torch.testing.assert_close(b, want[None])
    b2 = AntiCGE(first_twice=True)(honest, ctx(1, 4))  # BM's code: (1, 0) counted twice
    torch.testing.assert_close(b2[0].norm(), torch.tensor(10 * (1 - 1e-6), dtype=f64))
    torch.testing.assert_close(b2[0] / b2[0].norm(), -torch.tensor([5.0, 6.0], dtype=f64)
                               / math.sqrt(61))
    assert torch.isnan(AntiCGE()(honest, ctx(2, 4, f_declared=1))).all()
    # against the real rule: every Byzantine row is kept
    h = grads(8, 30, 6)
    rule = CGE(11, 3)
    att = AntiCGE()(h, ctx(3, 8, rule=rule))
    rule(torch.cat([h, att]))
    assert (rule.last_weights[8:] > 0).all()


def test_signguard_evasion_matches_sign_fractions():
    b = torch.tensor([3.0, -1.0, 2.0, -0.5, 1.0], dtype=f64)
    mixed = torch.tensor([[1.0, 1, 1, -1, -1], [1.0, 1, -1, -1, 1]], dtype=f64)  # 60 % positive
    assert torch.equal(match_sign_fractions(b, mixed), b)
    allpos = torch.ones(2, 5, dtype=f64)
    torch.testing.assert_close(match_sign_fractions(b, allpos),
                               torch.tensor([3.0, 1.0, 2.0, 0.5, 1.0], dtype=f64))
    few = torch.tensor([[1.0, -1, -1, -1, -1]] * 2, dtype=f64)  # 20 %: flip the 2 smallest +
    torch.testing.assert_close(match_sign_fractions(b, few),
                               torch.tensor([3.0, -1.0, -2.0, -0.5, -1.0], dtype=f64))
    honest = grads(7, 200, 8, offset=0.05)
    for base in ("alie", "min_max"):
        out = SignguardEvasion(base=base)(honest, ctx(3, 7))
        frac_h = ((honest > 0).sum(1) / (honest != 0).sum(1)).double().mean()
        frac_b = (out[0] > 0).sum() / (out[0] != 0).sum()
        assert abs(float(frac_b - frac_h)) <= 0.5 / 200 + 1e-12
    with pytest.raises(ConfigError, match="attack.base"):
        SignguardEvasion(base="ipm")


def test_fang_partial_krum_runs_against_real_krum():
    # Partial knowledge: selection is checked only in the attacker's view; the real
    # Krum may or may not pick b. The attack must still run against it.
    h, own = grads(9, 20, 10), grads(3, 20, 11)
    b = FangPartial(target="krum", n=12, f=3)(h, ctx(3, 9, rule=Krum(12, 3), byz=own))
    assert b.shape == (3, 20) and torch.isfinite(b).all()
