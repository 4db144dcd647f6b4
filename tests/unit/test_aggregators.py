"""Hand-computed values for mean, median, trmean, krum and the shared kernels in
byzbench.byzbench.kernels (arithmetic written next to each expectation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byzbench import ConfigError, kernels
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean
from byzbench.aggregators.median import Median
from byzbench.aggregators.trmean import TrMean

T = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731


# ----------------------------------------------------------------------------- _ops


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


# ------------------------------------------------------------------------------ rules


def test_mean_hand_values():
    rule = Mean(n=3, f=0)
    # (1 + 2 + 6) / 3 = 3, (0 + 0 + 3) / 3 = 1
    assert rule(T([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]])).tolist() == [3.0, 1.0]
    assert rule.last_weights.tolist() == pytest.approx([1 / 3] * 3)


def test_median_hand_values_odd_and_even():
    x = T([[1.0, 9.0], [5.0, -1.0], [2.0, 4.0]])
    # sorted columns: [1, 2, 5] -> 2 and [-1, 4, 9] -> 4
    assert Median(3)(x).tolist() == [2.0, 4.0]
    x4 = T([[1.0], [7.0], [3.0], [100.0]])
    # sorted [1, 3, 7, 100]: mean of the middle two = (3 + 7) / 2 = 5
    assert Median(4)(x4).tolist() == [5.0]


def test_median_non_finite_sorts_as_extreme():
    x = T([[1.0], [math.nan], [3.0], [2.0], [math.inf]])
    # nan sorts after +inf: [1, 2, 3, inf, nan] -> median 3
    assert Median(5)(x).tolist() == [3.0]


def test_trmean_hand_values():
    x = T([[1.0, 10.0], [2.0, -50.0], [3.0, 20.0], [4.0, 30.0], [100.0, 0.0]])
    # f = 1: column 0 sorted [1, 2, 3, 4, 100] -> (2 + 3 + 4) / 3 = 3
    #        column 1 sorted [-50, 0, 10, 20, 30] -> (0 + 10 + 20) / 3 = 10
    assert TrMean(5, 1)(x).tolist() == pytest.approx([3.0, 10.0])
    # f = 0 is the mean: (1 + 2 + 3 + 4 + 100) / 5 = 22
    assert TrMean(5, 0)(x)[0].item() == pytest.approx(22.0)
    # a nan row is trimmed like the largest value: [1, 2, 3, 4, nan] -> (2 + 3 + 4) / 3
    x[4, 0] = math.nan
    assert TrMean(5, 1)(x)[0].item() == pytest.approx(3.0)


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


@pytest.mark.parametrize(
    ("cls", "n", "f", "needle"),
    [(Krum, 6, 2, "krum needs n >= 2f + 3 (n=6)"), (TrMean, 4, 2, "trmean needs 2f < n (n=4)"),
     (Median, 0, 0, "median needs n >= 1"), (Mean, 3, -1, "f >= 0")],
)
def test_construction_errors_are_one_line(cls, n, f, needle):
    with pytest.raises(ConfigError) as e:
        cls(n, f)
    assert needle in str(e.value) and "\n" not in str(e.value)


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
