"""Hand-computed outputs for the rest of the catalogue (bit_flip ... rop), the tuning
wrapper and the line searches."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.attacks._ops import largest_true
from byzbench.attacks.alie import ALIE
from byzbench.attacks.base import Attack, RoundContext
from byzbench.attacks.bit_flip import BitFlip
from byzbench.attacks.fang_krum import FangKrum
from byzbench.attacks.fang_trmean import FangTrmean
from byzbench.attacks.inf_grad import Inf
from byzbench.attacks.ipm import IPM
from byzbench.attacks.label_flip import LabelFlip
from byzbench.attacks.mimic import Mimic
from byzbench.attacks.min_max import MinMax
from byzbench.attacks.min_sum import MinSum
from byzbench.attacks.nan_grad import NaN
from byzbench.attacks.rop import ROP
from byzbench.attacks.search import maximize, pointwise
from byzbench.attacks.seesaw import Seesaw
from byzbench.attacks.tuning import Tuned

f64 = torch.float64


def mean_rule(x):
    return x.mean(dim=0)


class TinyKrum:
    """Krum written in the test: n - f - 2 nearest squared distances, one-hot weights."""

    def __init__(self, f: int):
        self.f = f
        self.last_weights = None

    def __call__(self, x):
        n = x.shape[0]
        d2 = ((x.unsqueeze(1) - x.unsqueeze(0)) ** 2).sum(-1)
        i = int(d2.sort(dim=1).values[:, 1 : n - self.f - 1].sum(1).argmin())
        self.last_weights = torch.zeros(n, dtype=x.dtype).index_fill_(0, torch.tensor([i]), 1.0)
        return x[i]


def ctx(f, t=0, n_h=0, rule=mean_rule, seed=0, prev=None, byz=None, n=None):
    return RoundContext(t=t, n=n if n is not None else n_h + f, f=f, f_declared=f,
                        pipeline=Pipeline([], rule), prev_aggregate=prev, byz_grads=byz,
                        generator=torch.Generator().manual_seed(seed))


TRI = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]], dtype=f64)  # mean (2/3, 2/3)


def test_bit_flip_and_label_flip():
    own = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    assert BitFlip.local and LabelFlip.local
    assert torch.equal(BitFlip()(TRI.float(), ctx(2, byz=own)), -own)
    assert torch.equal(LabelFlip(num_classes=10)(TRI.float(), ctx(2, byz=own)), own)
    y = torch.tensor([0, 1, 9, 4])
    # C - 1 - y with C = 10: 9, 8, 0, 5
    assert torch.equal(LabelFlip.transform_labels(y, 10), torch.tensor([9, 8, 0, 5]))
    assert torch.equal(y, torch.tensor([0, 1, 9, 4]))
    with pytest.raises(ConfigError, match="attack.num_classes"):
        LabelFlip(num_classes=1)


def test_inf_nan():
    assert torch.isposinf(Inf()(TRI, ctx(2))).all() and Inf()(TRI, ctx(2)).shape == (2, 2)
    assert torch.isnan(NaN()(TRI, ctx(3))).all() and NaN()(TRI, ctx(3)).shape == (3, 2)


def test_alie_hand_computed():
    honest = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=f64)
    # mean (2, 4); unbiased std: coord 0: ((1-2)^2 + (3-2)^2)/1 = 2 -> sqrt 2;
    # coord 1: ((2-4)^2 + (6-4)^2)/1 = 8 -> 2 sqrt 2. z = 1 -> (2 - sqrt2, 4 - 2 sqrt2)
    b = ALIE(z=1.0)(honest, ctx(2, n_h=2))
    expected = torch.tensor([2 - math.sqrt(2), 4 - 2 * math.sqrt(2)], dtype=f64)
    torch.testing.assert_close(b, torch.stack([expected, expected]))
    # z_max, n = 25, f = 5: s = floor(13.5) - 5 = 8;
    # paper: Phi^-1((25 - 8)/25) = Phi^-1(0.68) = 0.467699; honest: Phi^-1(12/20) = 0.253347
    h = torch.randn(20, 3, dtype=f64, generator=torch.Generator().manual_seed(0))
    mu, sd = h.mean(0), h.std(0)
    b = ALIE(z_formula="paper", n=25, f=5)(h, ctx(5, n_h=20))
    torch.testing.assert_close(b[0], mu - 0.4676988 * sd, rtol=1e-6, atol=1e-6)
    b = ALIE(z_formula="honest", n=25, f=5)(h, ctx(5, n_h=20))
    torch.testing.assert_close(b[0], mu - 0.2533471 * sd, rtol=1e-6, atol=1e-6)
    # n = 10, f = 6: s = 6 - 6 = 0 -> p = 1: no finite z_max
    with pytest.raises(ConfigError, match="attack.z"):
        ALIE(n=10, f=6)


def test_ipm_hand_computed():
    # mean (2/3, 2/3), eps = 3 -> (-2, -2)
    b = IPM(eps=3.0)(TRI, ctx(2, n_h=3))
    torch.testing.assert_close(b, torch.full((2, 2), -2.0, dtype=f64))


def test_mimic_fixed_and_errors():
    b = Mimic(worker=2)(TRI, ctx(2, n_h=3))
    assert torch.equal(b, TRI[[2, 2]])
    with pytest.raises(ConfigError, match="attack.worker"):
        Mimic(worker=3, n=5, f=2)
    with pytest.raises(ConfigError, match="attack.worker"):
        Mimic(worker=3)(TRI, ctx(1, n_h=3))


def test_mimic_max_var_heuristic_picks_extreme_worker_and_freezes():
    # spread +-5 along coordinate 0, +-0.1 along 1: max-variance direction = +-e0, so the
    # copied worker is row 0 (+5) or row 1 (-5) depending on the random start's sign.
    honest = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 0.1], [0.0, -0.1]], dtype=f64)
    a = Mimic(mode="max_var", warmup=3)
    targets = []
    for t in range(6):
        x = honest if t < 3 else honest.flip(0)  # after warm-up the index stays frozen
        b = a(x, ctx(2, t=t, n_h=4, seed=1))
        targets.append(a.target)
        assert torch.equal(b[0], x[a.target])
    assert targets[0] in (0, 1) and len(set(targets)) == 1
    assert abs(float(a._z[0])) > 0.999
    again = Mimic(mode="max_var", warmup=3)(honest, ctx(2, n_h=4, seed=1))
    assert again.equal(Mimic(mode="max_var")(honest, ctx(2, n_h=4, seed=1)))  # seeded


def test_min_max_hand_computed():
    # p = mu/|mu| = (1, 1)/sqrt2, b = (c, c) with c = 2/3 - gamma/sqrt2. Bound max_ij = 2 sqrt2
    # (between (2,0) and (0,2)); for c < 0 the binding distance is to (2, 0):
    # (c-2)^2 + c^2 = 8 <=> c^2 - 2c - 2 = 0 <=> c = 1 - sqrt3, gamma = sqrt2 (2/3 - c).
    a = MinMax(perturbation="unit_vec", unit="absolute")
    b = a(TRI, ctx(2, n_h=3))
    c = 1 - math.sqrt(3)
    assert a.last_gamma == pytest.approx(math.sqrt(2) * (2 / 3 - c), rel=1e-9)
    torch.testing.assert_close(b, torch.full((2, 2), c, dtype=f64))
    assert torch.cdist(b, TRI).max() == pytest.approx(2 * math.sqrt(2), rel=1e-9)
    # sign: p = (1, 1), c = 2/3 - gamma -> gamma = 2/3 - (1 - sqrt3) = sqrt3 - 1/3
    a = MinMax(perturbation="sign", unit="absolute")
    a(TRI, ctx(1, n_h=3))
    assert a.last_gamma == pytest.approx(math.sqrt(3) - 1 / 3, rel=1e-9)
    # fixed gamma and cap
    assert torch.equal(MinMax(gamma=0.0)(TRI, ctx(1, n_h=3))[0], TRI.mean(0))
    a = MinMax(perturbation="sign", gamma_max=1.0, unit="absolute")
    a(TRI, ctx(1, n_h=3))
    assert a.last_gamma == 1.0


def test_min_sum_hand_computed_paper_and_code_bounds():
    # sum_j |g_i - g_j|^2: (0,0): 0+4+4 = 8; (2,0): 4+0+8 = 12; (0,2): 12 -> max 12, min 8.
    # b = (c, c): sum_i |b - g_i|^2 = 2c^2 + 2((c-2)^2 + c^2) = 6c^2 - 8c + 8.
    # paper (max): 6c^2 - 8c + 8 = 12 <=> 3c^2 - 4c - 2 = 0, c = (2 - sqrt10)/3,
    #   gamma = sqrt2 (2/3 - c) = sqrt2 sqrt10 / 3 = sqrt20 / 3
    # code (min): 6c^2 - 8c = 0 -> c = 0, gamma = sqrt2 * 2/3
    a = MinSum(perturbation="unit_vec", unit="absolute")
    b = a(TRI, ctx(2, n_h=3))
    assert a.last_gamma == pytest.approx(math.sqrt(20) / 3, rel=1e-9)
    c = (2 - math.sqrt(10)) / 3
    torch.testing.assert_close(b, torch.full((2, 2), c, dtype=f64))
    assert float(((b[0] - TRI) ** 2).sum()) == pytest.approx(12.0, rel=1e-9)
    a = MinSum(perturbation="unit_vec", bound="min", unit="absolute")
    a(TRI, ctx(2, n_h=3))
    assert a.last_gamma == pytest.approx(math.sqrt(2) * 2 / 3, rel=1e-9)


def test_fang_krum_upper_bound_by_hand():
    # honest square (1,1), (3,1), (1,3), (3,3), f = 1, n = 5, d = 2. term2 = max |g_i| /
    # sqrt2 = 3 sqrt2 / sqrt2 = 3. paper: each corner's n - f - 2 = 2 nearest honest are
    # at distance 2 -> min sum 4, term1 = 4 / ((5 - 2 - 1) sqrt2) = sqrt2 -> 3 + sqrt2.
    # all: sums 2 + 2 + 2 sqrt2 -> term1 = (4 + 2 sqrt2) / (2 sqrt2) = sqrt2 + 1 -> 4 + sqrt2.
    sq = torch.tensor([[1.0, 1.0], [3.0, 1.0], [1.0, 3.0], [3.0, 3.0]], dtype=f64)
    assert FangKrum.lambda_upper_bound(sq, 5, 1) == pytest.approx(3 + math.sqrt(2), rel=1e-12)
    assert FangKrum.lambda_upper_bound(sq, 5, 1, "all") == pytest.approx(4 + math.sqrt(2),
                                                                         rel=1e-12)
    # Krum never selects b = -lambda (1, 1) here: b's score 3(1+l)^2 + (l+3)^2 >= 12 > 8
    # (an honest corner's score), so lambda is halved down to the threshold.
    a = FangKrum(threshold=1e-3, unit="absolute")
    b = a(sq, ctx(1, n_h=4, rule=TinyKrum(1)))
    assert 1e-3 <= a.last_lambda < 2e-3
    torch.testing.assert_close(b[0], -a.last_lambda * torch.ones(2, dtype=f64))


def test_fang_krum_returns_largest_selected_halving():
    honest = torch.tensor([[1.0, 0.1], [-1.0, 0.1], [0.1, 1.0], [0.1, -1.0], [0.9, 0.9]], dtype=f64)
    f, krum = 2, TinyKrum(2)
    a = FangKrum()
    b = a(honest, ctx(f, n_h=5, rule=krum))
    lam0 = FangKrum.lambda_upper_bound(honest, 7, 2)
    k = round(math.log2(lam0 / a.last_lambda))
    assert a.last_lambda == pytest.approx(lam0 / 2**k)

    def selected(lam):
        krum(torch.cat([honest, (-lam * torch.ones(2, dtype=f64)).expand(f, 2)]))
        return bool(krum.last_weights[5:].sum() > 0)

    assert selected(a.last_lambda) and (k == 0 or not selected(2 * a.last_lambda))
    assert torch.equal(b[0], b[1])


def test_fang_trmean_hand_computed_ranges():
    honest = torch.tensor([[1.0, -1.0, 2.0], [3.0, -3.0, -4.0]], dtype=f64)
    # mean (2, -2, -1). coord 0: mean >= 0, gmin = 1 > 0 -> [1/2, 1]; coord 1: mean < 0,
    # gmax = -1 <= 0 -> [-1, -1/2]; coord 2: mean < 0, gmax = 2 > 0 -> [2, 4].
    lo = torch.tensor([0.5, -1.0, 2.0], dtype=f64)
    hi = torch.tensor([1.0, -0.5, 4.0], dtype=f64)
    b = FangTrmean(b=2.0)(honest, ctx(3, n_h=2, seed=4))
    u = torch.rand((3, 3), generator=torch.Generator().manual_seed(4), dtype=f64)
    torch.testing.assert_close(b, lo + u * (hi - lo))
    assert not torch.equal(b[0], b[1])


def test_rop_hand_computed():
    honest = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=f64)  # mean (1, 0)
    # t = 0 (no previous aggregate): reference = mean = (1, 0); v = (1,1) - 1 (1, 0) = (0, 1);
    # angle 90 -> p = (0, 1); location = pi * 0 + (1 - pi) mean = 0 -> b = z (0, 1) = (0, 2)
    b = ROP(z=2.0, unit="absolute")(honest, ctx(1, n_h=2))
    torch.testing.assert_close(b, torch.tensor([[0.0, 2.0]], dtype=f64))
    # prev = (2, 0), lam = pi = 0.5: ref = (1.5, 0), loc = (1.5, 0), v = (0, 1);
    # angle 60: p = sin60 (0, 1) + cos60 (1, 0) = (0.5, 0.866) (unit) -> b = (1.5 + 1, 1.732)
    prev = torch.tensor([2.0, 0.0], dtype=f64)
    b = ROP(z=2.0, lam=0.5, pi=0.5, angle=60.0, unit="absolute")(honest, ctx(2, n_h=2, prev=prev))
    torch.testing.assert_close(b[1], torch.tensor([2.5, math.sqrt(3)], dtype=f64))
    # angle 270 (FLB's current config): p = -v -> b = (0, -2); 360 is out of [0, 360)
    b = ROP(z=2.0, angle=270.0, unit="absolute")(honest, ctx(1, n_h=2))
    torch.testing.assert_close(b, torch.tensor([[0.0, -2.0]], dtype=f64))
    with pytest.raises(ConfigError, match="attack.angle"):
        ROP(angle=360.0)
    # unit spread: |g_i - mean| = 1 for both rows -> the same b as absolute here
    torch.testing.assert_close(ROP(z=2.0)(honest, ctx(1, n_h=2)),
                               torch.tensor([[0.0, 2.0]], dtype=f64))
    # z = None: ALIE z_max, honest formula, n = 4, f = 2: s = 3 - 2 = 1, Phi^-1(1/2) = 0
    b = ROP()(honest, ctx(2, n_h=2))
    torch.testing.assert_close(b, torch.zeros(2, 2, dtype=f64))


# ---------------------------------------------------------------- searches and Tuned


class Shift(Attack):
    """Test attack: every row is c * e_0."""

    scale_param = "c"
    scale_range = (0.01, 10.0)

    def __init__(self, c: float = 0.0):
        self.c = c

    def __call__(self, honest, ctx):
        e = torch.zeros(honest.shape[1], dtype=honest.dtype)
        e[0] = 1.0
        return (self.c * e).expand(ctx.f, -1).clone()


def soft_rule(x):
    # sum_i x_i exp(-|x_i|^2 / 2) / n: with honest rows at 0 and f rows at c e_0 the
    # aggregate is (f/n) c exp(-c^2/2) e_0, maximal at c = 1 (derivative (1 - c^2) e^..).
    return (x * torch.exp(-(x * x).sum(1, keepdim=True) / 2)).mean(0)


def test_tuned_finds_known_maximum_smooth():
    honest = torch.zeros(4, 3, dtype=f64)
    t = Tuned(Shift(), budget=20)
    b = t(honest, ctx(2, n_h=4, rule=soft_rule))
    assert t.last_scale == pytest.approx(1.0, abs=0.03) and t.last_evals <= 20
    torch.testing.assert_close(b[0, 0], torch.tensor(t.last_scale, dtype=f64))


def test_tuned_finds_rise_then_drop_edge():
    # norm filter: rows with |x| <= 3 are averaged, others dropped. Damage = (f/n) c for
    # c <= 3, then 0: the maximum is at the edge c = 3 (a cliff).
    def filt(x):
        keep = (x.norm(dim=1) <= 3.0).to(x.dtype)
        return (x * keep[:, None]).sum(0) / keep.sum()

    t = Tuned(Shift(), budget=24)
    t(torch.zeros(4, 3, dtype=f64), ctx(2, n_h=4, rule=filt))
    assert 2.97 < t.last_scale <= 3.0 and t.last_evals <= 24


def test_tuned_wraps_real_attacks_and_delegates():
    honest = torch.randn(6, 4, dtype=f64, generator=torch.Generator().manual_seed(0)) + 1
    s = Seesaw()
    t = Tuned(s, budget=6)
    assert t.attack.magnitude == "fixed" and s.magnitude == "adaptive"  # private copy
    t(honest, ctx(2, n_h=6))
    assert t.last_scale == pytest.approx(10.0)  # the mean is moved most by the largest lambda
    with pytest.raises(ConfigError, match="attack.tune.param"):
        Tuned(LabelFlip())
    tl = Tuned(LabelFlip(), param="num_classes", lo=2, hi=3)
    y = torch.tensor([0, 3])
    assert tl.local and tl.poisons_data
    assert torch.equal(tl.transform_batch(y, y, 10)[1], torch.tensor([9, 6]))
    with pytest.raises(ConfigError, match="attack.tune.hi"):
        Tuned(IPM(), lo=2.0, hi=1.0)
    with pytest.raises(ConfigError, match="attack.tune.lo"):
        Tuned(IPM(), lo=0.0)
    with pytest.raises(ConfigError, match="attack.tune.search"):
        Tuned(IPM(), search="golden")


def test_maximize_budget_plateau_and_nan():
    calls = []

    def obj(x):  # smooth single peak at x = 2.7, value 2.7 / e
        calls.append(x)
        return x * math.exp(-x / 2.7)

    r = maximize(pointwise(obj), 0.01, 8.0, 16)
    assert len(calls) == r.evals <= 16
    assert r.value >= 0.99 * 2.7 / math.e and abs(r.x - 2.7) < 0.5
    # plateau from 1 on: the smallest scale reaching it (up to the scan's resolution)
    r = maximize(pointwise(lambda x: min(x, 1.0)), 0.01, 100.0, 16)
    assert r.value == 1.0 and 1.0 <= r.x < 1.5
    # nan counts as -inf: nan above 5, rising below
    r = maximize(pointwise(lambda x: x if x <= 5 else float("nan")), 0.01, 100.0, 16)
    assert 4.6 < r.x <= 5.0 and r.value == r.x


def test_lpd_reproduces_line_maximize_by_hand():
    # ByzantineMomentum's line_maximize on J(x) = -(x - 2.5)^2, 8 evaluations, delta 1:
    # x = 0 (-6.25), 1 (-2.25, better, delta 2), 3 (-0.25, better, delta 4), 7 (worse:
    # delta 3.2, contraction from prop 7 > best 3): 7 - 3.2 = 3.8 (-1.69; delta 2.56),
    # prop 3.8 > 3: 3.8 - 2.56 = 1.24 (-1.5876; delta 2.048), prop 1.24 < 3: 1.24 + 2.048
    # = 3.288 (-0.620944; delta 1.6384), prop 3.288 > 3: 3.288 - 1.6384 = 1.6496.
    seen = []

    def obj(x):
        seen.append(x)
        return -(x - 2.5) ** 2

    r = maximize(pointwise(obj), 0.01, 10.0, 8, method="lpd")
    assert seen == pytest.approx([0, 1, 3, 7, 3.8, 1.24, 3.288, 1.6496])
    assert r.x == 3 and r.evals == 8
    seen.clear()
    t = Tuned(Shift(), budget=8, search="lpd", delta=10.0)  # ByzFL's delta
    t(torch.zeros(4, 3, dtype=f64), ctx(2, n_h=4, rule=soft_rule))
    assert t.last_evals == 8 and t.last_scale in (0.0, 1.0) or t.last_scale < 10


def test_largest_true_budgets():
    calls = []
    x = largest_true(lambda g: calls.append(g) or g <= 5.3, 1.0, 100.0, 30, rtol=1e-4)
    assert 5.3 * (1 - 2e-4) <= x <= 5.3 and len(calls) <= 30
    assert largest_true(lambda g: True, 1.0, 64.0, 30) == 64.0
    assert largest_true(lambda g: False, 1.0, 64.0, 30) == 0.0
