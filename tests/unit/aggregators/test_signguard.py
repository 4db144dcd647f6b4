"""byzbench.aggregators.signguard: SignGuard (paper and authors' variants); values by hand, the
arithmetic next to each expectation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byzbench.aggregators.signguard import SignGuard


def test_signguard_hand_values():
    u = torch.ones(20, dtype=torch.float64) / math.sqrt(20)
    x = torch.stack([1.0 * u, 1.2 * u, 0.8 * u, 1.1 * u, -u, 100 * u])
    rule = SignGuard(6, 1, frac=1.0)
    # norms 1, 1.2, 0.8, 1.1, 1, 100 -> median M = (1 + 1.1) / 2 = 1.05; 100/1.05 > 3 drops
    # the last row; sign features (1,0,0) x5 and (0,0,1) for -u -> largest cluster drops
    # -u; S = first four; clipped to M: coefficients (1, 1.05, 0.8, 1.05) / 4 = 0.975 total
    out = rule(x)
    torch.testing.assert_close(out, 0.975 * u)
    assert rule.last_weights.tolist() == pytest.approx(
        [1 / 4, 1.05 / 1.2 / 4, 1 / 4, 1.05 / 1.1 / 4, 0, 0])


def test_signguard_mean_shift_matches_sklearn():
    from sklearn.cluster import MeanShift
    from sklearn.cluster import estimate_bandwidth as sk_bandwidth

    from byzbench.aggregators.signguard import estimate_bandwidth, mean_shift

    rng = np.random.default_rng(0)
    for _ in range(6):
        m, k = int(rng.integers(5, 60)), int(rng.integers(1, 4))
        feat = rng.random((k, 3))[rng.integers(0, k, m)] + rng.normal(0, 0.02, (m, 3))
        bw = sk_bandwidth(feat, quantile=0.5)
        assert estimate_bandwidth(feat) == pytest.approx(bw, rel=1e-4)
        expected = MeanShift(bandwidth=bw, bin_seeding=True, cluster_all=False).fit(feat)
        assert np.array_equal(mean_shift(feat, bw), expected.labels_)


def test_signguard_authors_variant_block_and_normalized_features(monkeypatch):
    seen = {}

    def spy(feat):
        seen["feat"] = feat.copy()
        return np.ones(len(feat), dtype=bool)

    monkeypatch.setattr(SignGuard, "_largest_cluster", staticmethod(spy))
    # 4 rows, d = 10, frac 0.5 -> a block of 5 contiguous columns
    x = torch.tensor([[1.0] * 10, [-1.0] * 10, [1.0] * 5 + [-1.0] * 5, [0.0] * 10],
                     dtype=torch.float64) + 0.0
    x[3, 0] = 1e-3  # not all zero: passes nothing but keeps a norm
    rule = SignGuard(4, 0, frac=0.5, sampling="block", normalize=True)
    rule(x)
    feat = seen["feat"]
    assert np.allclose(feat.max(axis=0), 1.0)  # each feature divided by its max
    # block sampling: row 2's positive fraction is 1, 0 or in between depending on start,
    # but row 0's positive feature is the maximum 1 and row 1's is 0.
    assert feat[0, 0] == 1.0 and feat[1, 0] == 0.0
