"""byzbench.kernels distances: squared distances and bad rows by hand, Krum scores,
the centring decision of the pairwise Gram and distances to a reference row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from unit_helpers import T

from byzbench import kernels


def test_sqdist_hand_values_and_bad_rows():
    x = T([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [math.nan, 1.0]])
    d2, _, bad, _ = kernels.pairwise(x)
    # |(0,0)-(3,4)|^2 = 9 + 16 = 25; |(0,0)-(1,0)|^2 = 1; |(3,4)-(1,0)|^2 = 4 + 16 = 20
    assert d2[0, 1] == pytest.approx(25) and d2[1, 0] == pytest.approx(25)
    assert d2[0, 2] == pytest.approx(1) and d2[1, 2] == pytest.approx(20)
    assert np.diagonal(d2)[:3].tolist() == [0, 0, 0]
    assert bad.tolist() == [False, False, False, True]
    assert np.isinf(d2[3]).all() and np.isinf(d2[:, 3]).all()  # nan row: infinitely far


def test_sqdist_overflowing_row_is_bad():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3e19, 0.0]], dtype=torch.float32)
    d2, _, bad, _ = kernels.pairwise(x)  # (3e19)^2 = 9e38 > float32 max 3.4e38
    assert bad.tolist() == [False, False, True] and d2[0, 1] == pytest.approx(2)


def test_krum_scores_hand_values():
    # 1-D points 0, 1, 3, 10; k = 1 nearest: 0->1 (1), 1->0 (1), 3->1 (4), 10->3 (49)
    d2 = kernels.pairwise(T([[0.0], [1.0], [3.0], [10.0]])).d2
    assert kernels.krum_scores(d2, 1).tolist() == pytest.approx([1, 1, 4, 49])
    # k = 2: 0: 1 + 9 = 10; 1: 1 + 4 = 5; 3: 4 + 9 = 13; 10: 49 + 81 = 130
    assert kernels.krum_scores(d2, 2).tolist() == pytest.approx([10, 5, 13, 130])


def test_pairwise_centers_only_when_the_raw_gram_would_lose_digits():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10, 500, generator=g)
    assert kernels.pairwise(z).ref == -1  # spread ~ norm: raw Gram, one BLAS call
    far = z * 1e-3 + 100.0  # norm 2236, spread 0.03: float32 raw Gram is rounding noise
    pw = kernels.pairwise(far)
    assert pw.ref >= 0
    exact = torch.cdist(far.double(), far.double(), compute_mode="donot_use_mm_for_euclid_dist")
    np.testing.assert_allclose(pw.d2, exact.numpy() ** 2, rtol=1e-5)
    # |x|^2 / D ~ 50: float32 centers, float64 (exact enough up to ~5e8) does not
    mid = z * 0.1 + 1.0
    assert kernels.pairwise(mid).ref >= 0 and kernels.pairwise(mid.double()).ref == -1
    assert kernels.pairwise(far.double()).ref >= 0  # |x|^2 / D ~ 5e9


def test_pairwise_recenters_when_the_probe_medoid_is_far_off_the_probe():
    # Row 0 equals row 1 on the probe's columns but is 1e4 away elsewhere: the probe
    # may take it as the reference; the check on the full distances must move away.
    g = torch.Generator().manual_seed(1)
    n, d = 9, 4096
    x = 50.0 + 1e-3 * torch.randn(n, d, generator=g, dtype=torch.float32)
    cols = torch.arange(kernels.distances._PROBE_COLS) * d // kernels.distances._PROBE_COLS
    off = torch.ones(d, dtype=torch.bool)
    off[cols] = False
    x[0] = x[4]
    x[0, off] += 1e4 / math.sqrt(int(off.sum()))
    pw = kernels.pairwise(x)
    assert pw.ref != 0
    exact = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    np.testing.assert_allclose(pw.d2[1:, 1:], exact[1:, 1:].numpy(), rtol=1e-4)


def test_pairwise_reference_row_non_finite_off_the_probe():
    # Row 0 is the probe's medoid (the mean of the rows on the probe's columns) but nan
    # elsewhere: centering on it would make every row nan; pairwise re-chooses.
    g = torch.Generator().manual_seed(2)
    n, d = 9, 4096
    x = 50.0 + 1e-3 * torch.randn(n, d, generator=g, dtype=torch.float32)
    x[0] = x[1:].mean(0)
    cols = torch.arange(kernels.distances._PROBE_COLS) * d // kernels.distances._PROBE_COLS
    off = torch.ones(d, dtype=torch.bool)
    off[cols] = False
    x[0, off] = math.nan
    pw = kernels.pairwise(x)
    assert pw.bad.tolist() == [True] + [False] * (n - 1) and pw.ref > 0
    exact = torch.cdist(x[1:].double(), x[1:].double(),
                        compute_mode="donot_use_mm_for_euclid_dist") ** 2
    np.testing.assert_allclose(pw.d2[1:, 1:], exact.numpy(), rtol=1e-4)


def test_sqdist_to_hand_values_and_bad_rows():
    x = T([[3.0, 4.0], [1.0, 1.0], [math.nan, 0.0]])
    d2, bad = kernels.sqdist_to(x, T([0.0, 1.0]))
    # (3, 3) -> 18; (1, 0) -> 1; nan row -> inf
    assert d2[:2].tolist() == pytest.approx([18.0, 1.0]) and math.isinf(d2[2])
    assert bad.tolist() == [False, False, True]
    sq, _ = kernels.sqdist_to(x)
    assert sq[:2].tolist() == pytest.approx([25.0, 2.0])
