"""byzbench.aggregators.trmean: the trimmed mean; values by hand, the arithmetic next to each
expectation."""

from __future__ import annotations

import math

import pytest
from unit_helpers import T

from byzbench.aggregators.trmean import TrMean


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
