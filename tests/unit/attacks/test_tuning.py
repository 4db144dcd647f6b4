"""byzbench.attacks.tuning: the tuned wrapper finds known maxima and edges, wraps real attacks
and delegates their declarations; tuned ALIE against the real median."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.alie import ALIE
from byzbench.attacks.ipm import IPM
from byzbench.attacks.label_flip import LabelFlip
from byzbench.attacks.seesaw import Seesaw
from byzbench.attacks.tuning import Tuned

from .helpers import Shift, ctx, median_mod, rule_ctx, soft_rule


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


def test_tuned_alie_on_real_median_beats_dense_grid():
    honest = torch.randn(12, 50, dtype=f64, generator=torch.Generator().manual_seed(2)) + 0.5
    med = median_mod.Median(n=16, f=4)
    c = rule_ctx(med, 4, 12)
    t = Tuned(ALIE(), budget=16)
    b = t(honest, c)
    mu = honest.mean(0)

    def damage(z):
        return float((med(torch.cat([honest, ALIE(z=z)(honest, c)])) - mu).norm())

    best_grid = max(damage(10 * k / 400) for k in range(401))
    assert float((med(torch.cat([honest, b])) - mu).norm()) >= 0.97 * best_grid
