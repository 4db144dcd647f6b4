"""byzbench.aggregators.mda: MDA (brute-force diameter, the f limit); values by hand, the
arithmetic next to each expectation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from unit_helpers import T

from byzbench import ConfigError
from byzbench.aggregators.mda import MDA


def test_mda_hand_values():
    # 1-D 0, 1, 3, 10 with f = 1: diameters {0,1,3}: 3, {0,1,10}: 10, {0,3,10}: 10,
    # {1,3,10}: 9 -> {0, 1, 3}, mean 4/3
    rule = MDA(4, 1)
    assert rule(T([[10.0], [0.0], [3.0], [1.0]])).item() == pytest.approx(4 / 3)
    assert rule.last_weights.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])


@pytest.mark.parametrize("seed", range(6))
def test_mda_matches_brute_force_diameter(seed):
    g = torch.Generator().manual_seed(seed)
    n, f = 11, 4
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    x[: seed % 3] *= 20  # a few far rows in some cases
    dist = torch.cdist(x, x)
    dn = dist.numpy()
    best = min(dn[np.ix_(s, s)].max() for s in itertools.combinations(range(n), n - f))
    rule = MDA(n, f)
    out = rule(x)
    sel = torch.nonzero(rule.last_weights).flatten()
    assert dist[sel][:, sel].max().item() == pytest.approx(best)
    torch.testing.assert_close(out, x[sel].mean(0))
    assert rule.last_nodes < 2 ** (f + 1)


def test_mda_refuses_large_f_naming_the_limit():
    with pytest.raises(ConfigError, match=r"max_nodes=65536"):
        MDA(100, 30)
    MDA(100, 30, max_nodes=2**31)  # allowed when the user raises the limit


def test_mda_n30_f10_fast():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 50, generator=g), 5 + torch.randn(10, 50, generator=g)])
    rule = MDA(30, 10, max_nodes=2**11)
    rule(x)
    assert rule.last_weights[20:].sum() == 0  # the far cluster is removed
