"""Comparator networks of the coordinate-wise kernels (byzbench.kernels.networks): exact
sorted order / exact segments against numpy's sort, for every row count they serve."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from byzbench import kernels


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _data(n: int, c: int, seed: int = 0) -> np.ndarray:
    """Columns with ties, +-inf and signed zeros (what rules meet under attack)."""
    r = _rng(seed)
    a = r.integers(-3, 4, size=(n, c)).astype(np.float32)  # many ties
    a[:, : c // 2] = r.standard_normal((n, c // 2))
    a[r.random((n, c)) < 0.05] = np.inf
    a[r.random((n, c)) < 0.05] = -np.inf
    a[r.random((n, c)) < 0.05] = -0.0
    return a


@pytest.mark.parametrize("n", range(1, kernels.SORT_NETWORK_MAX_ROWS + 1))
def test_network_sorts_exactly(n):
    a = _data(n, 64, seed=n)
    out = kernels.sort0(a)
    assert np.array_equal(out, np.sort(a, axis=0))
    assert out.dtype == a.dtype


def test_network_sorts_every_01_input_small_n():
    # 0-1 principle (Knuth, TAOCP 5.3.4): a network sorts everything iff it sorts 0/1.
    for n in range(2, 11):
        cols = np.array(list(itertools.product([0.0, 1.0], repeat=n)), dtype=np.float64).T
        assert np.array_equal(np.stack(kernels.network_rows(cols)), np.sort(cols, axis=0)), n


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 20, 25, 31, 32, 33, kernels.NETWORK_MAX_ROWS])
def test_selection_network_segments(n):
    a = _data(n, 200, seed=100 + n)
    s = np.sort(a, axis=0)
    r = _rng(n)
    for _ in range(5):
        cuts = tuple(sorted(set(r.integers(0, n + 1, size=r.integers(1, 4)).tolist())))
        rows = np.stack(kernels.network_rows(a, cuts))
        bounds = [0, *cuts, n]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            assert np.array_equal(np.sort(rows[lo:hi], axis=0), s[lo:hi]), (cuts, lo, hi)


@pytest.mark.parametrize("n, f", [(7, 2), (20, 4), (25, 6), (40, 11), (60, 10)])
def test_order_mean_and_median_match_sort(n, f):
    a = _rng(n).standard_normal((n, 300)).astype(np.float32)
    ref = np.sort(a.astype(np.float64), axis=0)
    np.testing.assert_allclose(kernels.order_mean(a, f, n - f), ref[f:n - f].mean(0),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(kernels.median_block(a), np.median(ref, axis=0), rtol=0, atol=1e-7)
    t = torch.from_numpy(a)  # torch path (other devices) agrees
    np.testing.assert_allclose(kernels.order_mean(t, f, n - f).numpy(), ref[f:n - f].mean(0),
                               rtol=0, atol=1e-6)


def test_nan_falls_back_to_sort_semantics():
    a = _data(9, 50)
    a[2, :10] = np.nan
    a[5, :3] = np.nan
    assert kernels.network_rows(a) is None
    s = kernels.sort0(a)
    assert np.array_equal(np.isnan(s), np.isnan(np.sort(a, axis=0)))
