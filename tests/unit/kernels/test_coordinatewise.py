"""byzbench.kernels coordinate-wise kernels: mean around a center by hand, the chunked
column-wise path, numpy and torch block kernels agreeing (non-finite values included)."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import T

from byzbench import kernels
from byzbench.aggregators.median import Median
from byzbench.aggregators.trmean import TrMean


def test_mean_around_hand_values():
    # column [0, 1, 2, 10, 11], center 2, k = 3 -> nearest {1, 2, 0} (10 is 8 away) -> 1
    s = T([[0.0], [1.0], [2.0], [10.0], [11.0]])
    assert kernels.mean_around(s, T([2.0]), 3).item() == pytest.approx(1.0)
    # center 9: distances 9, 8, 7, 1, 2 -> nearest {10, 11, 2} -> 23 / 3
    assert kernels.mean_around(s, T([9.0]), 3).item() == pytest.approx(23 / 3)


def test_columnwise_chunked_path_matches_torch():
    # n * d > 2^21 triggers the threaded chunked path.
    x = torch.randn(7, 400_003)
    torch.testing.assert_close(Median(7, 0)(x), x.median(0).values)
    torch.testing.assert_close(TrMean(7, 2)(x), x.sort(0).values[2:5].mean(0))
    xe = torch.randn(8, 300_001)
    s = xe.sort(0).values
    torch.testing.assert_close(Median(8, 0)(xe), (s[3] + s[4]) / 2)


def test_numpy_and_torch_block_kernels_agree():
    # CPU float32/64 blocks run in numpy, other devices/dtypes in torch: same answers,
    # non-finite values included.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 200, generator=g, dtype=torch.float64)
    x[1, :50] = math.inf
    x[4, 30:90] = math.nan
    x[7, ::3] = -math.inf
    for n_rows in (9, 8):
        t = x[:n_rows]
        a = t.numpy()
        torch.testing.assert_close(torch.from_numpy(kernels.median_block(a)),
                                   kernels.median_block(t),
                                   equal_nan=True)
        s_np, s_t = kernels.sort0(a), kernels.sort0(t)
        for k in (n_rows - 2, n_rows - 4):
            c_np, c_t = kernels.median_sorted(s_np), kernels.median_sorted(s_t)
            torch.testing.assert_close(torch.from_numpy(kernels.mean_around(s_np, c_np, k)),
                                       kernels.mean_around(s_t, c_t, k), equal_nan=True)


def test_torch_path_matches_numpy_path(monkeypatch):
    # The torch kernels run on CUDA; exercise them on the CPU by disabling numpy.
    from byzbench.aggregators.bulyan import Bulyan
    from byzbench.aggregators.meamed import MeaMed
    from byzbench.aggregators.phocas import Phocas

    g = torch.Generator().manual_seed(3)
    x = torch.randn(11, 3000, generator=g)
    x[0, :100] = math.nan
    rules = [Median(11), TrMean(11, 2), MeaMed(11, 2), Phocas(11, 2), Bulyan(11, 2)]
    want = [r(x) for r in rules]
    monkeypatch.setattr(kernels.coordinatewise, "numpy_ok", lambda t: False)
    for r, w in zip(rules, want):
        torch.testing.assert_close(r(x), w, equal_nan=True)
