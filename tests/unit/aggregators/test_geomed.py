"""byzbench.aggregators.geomed: the geometric median (GeoMed): known answers, first iterate,
RFA's zero init / fixed iterations, relative nu; values by hand, the arithmetic next to each
expectation."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import T

from byzbench.aggregators.geomed import GeoMed


def test_geomed_known_answers():
    # The geometric median of the corners of a square is its center.
    sq = T([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    assert GeoMed(4)(sq).tolist() == pytest.approx([1.0, 1.0])
    # In 1-D the geometric median is the median: 0, 1, 10 -> 1 (Weiszfeld converges
    # linearly near a data point, smoothing nu bounds the step: loose tolerance).
    rule = GeoMed(3, nu=1e-8, tol=0.0, max_iter=2000)
    assert rule(T([[0.0], [1.0], [10.0]])).item() == pytest.approx(1.0, abs=1e-3)
    # Add a far outlier on the diagonal: the median moves to p = (1 + t, 1 + t) where the
    # unit vectors balance. Along (1, 1)/sqrt2: (0,0) gives -1, (2,2) +1, (2,0) and (0,2)
    # give -2t / sqrt(1 + t^2) together, the outlier +1 -> 2t / sqrt(1 + t^2) = 1,
    # t = 1/sqrt(3). (The mean would move by 2e5.)
    x = torch.cat([sq, T([[1e6, 1e6]])])
    t = 1 / math.sqrt(3)
    # (abs 1e-4: distances from a Gram matrix with 1e12 entries carry ~1e-4 error)
    assert GeoMed(5)(x).tolist() == pytest.approx([1 + t, 1 + t], abs=1e-4)


def test_geomed_first_iterate_hand_value():
    # One smoothed-Weiszfeld step from the mean of 0, 1, 4: v0 = 5/3; distances 5/3, 2/3,
    # 7/3; beta = (3/5, 3/2, 3/7) (alpha cancels); v1 = (0*3/5 + 1*3/2 + 4*3/7) /
    # (3/5 + 3/2 + 3/7)
    v1 = (1.5 + 12 / 7) / (0.6 + 1.5 + 3 / 7)
    assert GeoMed(3, max_iter=1)(T([[0.0], [1.0], [4.0]])).item() == pytest.approx(v1)


def test_geomed_zero_init_fixed_iterations_matches_rfa_loop():
    # epfml's RFA: z = 0, T times: beta_k = 1/n / max(nu, ||z - x_k||), z = sum beta x / sum beta
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 12, generator=g, dtype=torch.float64) + 2.0
    z = torch.zeros(12, dtype=torch.float64)
    for _ in range(8):
        beta = (1 / 7) / torch.clamp((x - z).norm(dim=1), min=0.1)
        z = (beta[:, None] * x).sum(0) / beta.sum()
    rule = GeoMed(7, 0, nu=0.1, absolute_nu=True, init="zero", max_iter=8, tol=0.0)
    torch.testing.assert_close(rule(x), z)
    assert rule.last_stats == {"geomed_iterations": 8.0}


def test_geomed_relative_nu_is_scale_free():
    # rows at a row: with absolute nu the smoothing dominates at scale 1e-8
    x = T([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    ref = GeoMed(4, 0)(x)
    torch.testing.assert_close(GeoMed(4, 0)(1e-8 * x), 1e-8 * ref)
    big_nu = GeoMed(4, 0, nu=0.5, absolute_nu=True)  # all rows within nu at 1e-8: mean
    assert not torch.allclose(big_nu(1e-8 * x) / 1e-8, big_nu(x))
