"""byzbench.aggregators.multikrum: Multi-Krum; values by hand, the arithmetic next to each
expectation."""

from __future__ import annotations

import pytest
from unit_helpers import T

from byzbench.aggregators.multikrum import MultiKrum

LINE = T([[3.0], [10.0], [1.0], [0.0], [11.0]])  # 1-D points 0, 1, 3, 10, 11 (shuffled)


def test_multikrum_hand_values():
    # n = 5, f = 1, 2 neighbours. scores: 0: 1 + 9 = 10; 1: 1 + 4 = 5; 3: 4 + 9 = 13;
    # 10: 1 + 49 = 50; 11: 1 + 64 = 65. m = n - f = 4 best: {1, 0, 3, 10} -> 14 / 4
    rule = MultiKrum(5, 1)
    assert rule(LINE).item() == pytest.approx(3.5)
    assert rule.last_weights.tolist() == [0.25, 0.25, 0.25, 0.25, 0]
    assert MultiKrum(5, 1, m=2)(LINE).item() == pytest.approx(0.5)  # {1, 0}
    assert MultiKrum(5, 1, m=1)(LINE).item() == pytest.approx(1.0)  # Krum
