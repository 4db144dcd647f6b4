"""byzbench.aggregators.dnc: DnC; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unit_helpers import T

from byzbench import kernels
from byzbench.aggregators.dnc import DnC


def test_dnc_hand_values_and_seed():
    # b >= d: no subsampling. 1-D 0, 1, 2, 10: centered y = x - 13/4, the top singular
    # direction is the axis, scores y^2 -> drop the largest (10); mean {0, 1, 2} = 1
    x = T([[0.0], [1.0], [2.0], [10.0]])
    rule = DnC(4, 1, b=10)
    assert rule(x).item() == pytest.approx(1.0)
    assert rule.last_weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    # subsampled: same seed, same output; an outlier is removed whatever the subsample
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(10, 200, generator=g, dtype=torch.float64)
    xs[3] += 50.0
    a = DnC(10, 2, b=20, generator=torch.Generator().manual_seed(7))(xs)
    r = DnC(10, 2, b=20, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(r(xs), a)
    assert r.last_weights[3] == 0


def test_dnc_empty_intersection_first_or_union(monkeypatch):
    # Force two iterations that keep disjoint sets: first -> set 1, union -> both.
    sets = iter([np.array([0, 1]), np.array([2, 3])])
    monkeypatch.setattr(kernels, "stable_smallest", lambda scores, m: next(sets))
    x = T([[0.0], [1.0], [2.0], [3.0]])
    r = DnC(4, 2, niters=2, b=1, c=1.0)
    assert r(torch.cat([x, x], 1))[0].item() == pytest.approx(0.5)
    sets = iter([np.array([0, 1]), np.array([2, 3])])
    monkeypatch.setattr(kernels, "stable_smallest", lambda scores, m: next(sets))
    r = DnC(4, 2, niters=2, b=1, c=1.0, on_empty="union")
    assert r(torch.cat([x, x], 1))[0].item() == pytest.approx(1.5)
