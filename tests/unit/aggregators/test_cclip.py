"""byzbench.aggregators.cclip: centered clipping (CClip): hand values, state across rounds and
queries, tau=auto (scale-free) and its clipped-fraction stat, bad tau; values by hand, the
arithmetic next to each expectation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from unit_helpers import T

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.cclip import CClip


def test_cclip_hand_values_state_and_query():
    x = T([[3.0, 4.0], [0.0, 0.5]])
    rule = CClip(2, 0, tau=1.0, iterations=1)
    # center 0: (3, 4) has norm 5 -> clipped to (0.6, 0.8); (0, 0.5) is within tau.
    # v1 = 0 + ((0.6, 0.8) + (0, 0.5)) / 2 = (0.3, 0.65)
    pipe = Pipeline([], rule)
    assert pipe.query(x).tolist() == pytest.approx([0.3, 0.65])
    assert rule.center is None  # query restored the state
    assert pipe(x).tolist() == pytest.approx([0.3, 0.65])
    assert rule.center.tolist() == pytest.approx([0.3, 0.65])
    # second call starts from (0.3, 0.65): (3, 4) - v = (2.7, 3.35), norm 4.3028 -> scale
    # 1/4.3028; (0, 0.5) - v = (-0.3, -0.15) within tau.
    dv = np.array([2.7, 3.35]) / math.hypot(2.7, 3.35) + np.array([-0.3, -0.15])
    assert rule(x).tolist() == pytest.approx((np.array([0.3, 0.65]) + dv / 2).tolist())
    # with a huge radius one iteration from 0 is the mean
    assert CClip(2, 0, tau=1e9)(x).tolist() == pytest.approx([1.5, 2.25])


def test_cclip_tau_auto_hand_values_and_stats():
    # center 0; norms 5, 1, 2 -> tau = median = 2; (3, 4) scaled by 2/5 -> (1.2, 1.6),
    # (1, 0) and (0, 2) kept: v = ((1.2, 1.6) + (1, 0) + (0, 2)) / 3 = (2.2/3, 3.6/3)
    x = T([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    rule = CClip(3, 0)
    assert rule(x).tolist() == pytest.approx([2.2 / 3, 3.6 / 3])
    assert rule.last_stats == pytest.approx({"cclip_clipped": 1 / 3, "cclip_tau": 2.0})
    # absolute tau larger than every distance: nothing clipped, the mean
    big = CClip(3, 0, tau=100.0)
    assert big(x).tolist() == pytest.approx(x.mean(0).tolist())
    assert big.last_stats["cclip_clipped"] == 0.0
    assert Pipeline([], big).stats() == big.last_stats


def test_cclip_auto_is_scale_free_and_absolute_tau_is_not():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(9, 30, generator=g, dtype=torch.float64)
    for c in (1e-8, 1e3):
        torch.testing.assert_close(CClip(9, 0)(c * x), c * CClip(9, 0)(x))
    assert not torch.allclose(CClip(9, 0, tau=1.0)(1e-8 * x) / 1e-8, CClip(9, 0, tau=1.0)(x))


@pytest.mark.parametrize("tau", ["huge", 0, -1.0])
def test_cclip_rejects_bad_tau(tau):
    with pytest.raises(ConfigError, match="agg.tau"):
        CClip(3, 0, tau=tau)
