"""byzbench.aggregators.median: the coordinate-wise median; values by hand, the arithmetic next
to each expectation."""

from __future__ import annotations

import math

from unit_helpers import T

from byzbench.aggregators.median import Median


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
