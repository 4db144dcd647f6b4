"""byzbench.aggregators.mean: the mean; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import pytest
from unit_helpers import T

from byzbench.aggregators.mean import Mean


def test_mean_hand_values():
    rule = Mean(n=3, f=0)
    # (1 + 2 + 6) / 3 = 3, (0 + 0 + 3) / 3 = 1
    assert rule(T([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]])).tolist() == [3.0, 1.0]
    assert rule.last_weights.tolist() == pytest.approx([1 / 3] * 3)
