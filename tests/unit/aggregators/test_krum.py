"""byzbench.aggregators.krum: Krum; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import T

from byzbench import ConfigError
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean


def test_krum_hand_values():
    # 1-D points 0, 1, 3, 10, 11 with n = 5, f = 1: n - f - 2 = 2 nearest.
    # scores: 0: 1 + 9 = 10; 1: 1 + 4 = 5; 3: 4 + 9 = 13; 10: 1 + 49 = 50; 11: 1 + 64 = 65
    x = T([[3.0], [10.0], [1.0], [0.0], [11.0]])
    rule = Krum(5, 1)
    assert rule(x).tolist() == [1.0]
    assert rule.last_weights.tolist() == [0, 0, 1, 0, 0]


def test_krum_blanchard_breaks_mean_not_krum():
    # Blanchard et al. (Lemma 1): one Byzantine row moves the mean anywhere; Krum picks
    # an honest row as long as n >= 2f + 3.
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(9, 20, generator=g, dtype=torch.float64) * 0.1
    byz = torch.full((2, 20), 1e3, dtype=torch.float64)
    x = torch.cat([honest, byz])
    out = Krum(11, 2)(x)
    assert any(torch.equal(out, h) for h in honest)
    assert Mean()(x).abs().max() > 100


def test_krum_ignores_nan_rows():
    x = T([[0.0], [1.0], [2.0], [math.nan], [math.inf]])
    # n = 5, f = 1: neighbours = 2; bad rows are infinitely far -> 1: 1 + 1 = 2 is best
    rule = Krum(5, 1)
    assert rule(x).tolist() == [1.0]


def test_krum_k_offset_changes_the_neighbour_count():
    # 1-D points 0, 1, 3, 10, 11, n = 5, f = 1.
    # k_offset 2 (paper): 2 nearest -> scores 0: 1+9, 1: 1+4, 3: 4+9 -> row "1".
    # k_offset 1 (ByzFL): 3 nearest -> 0: 1+9+100=110, 1: 1+4+81=86, 3: 4+9+49=62,
    #   10: 1+49+81=131, 11: 1+64+100=165 -> row "3".
    x = T([[0.0], [1.0], [3.0], [10.0], [11.0]])
    assert Krum(5, 1)(x).item() == 1.0
    assert Krum(5, 1, k_offset=1)(x).item() == 3.0
    with pytest.raises(ConfigError, match="agg.k_offset"):
        Krum(5, 1, k_offset=0)
