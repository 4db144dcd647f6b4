"""byzbench.aggregators.bulyan: Bulyan; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import T

from byzbench.aggregators.bulyan import Bulyan


def test_bulyan_hand_values():
    # 1-D points 0, 1, 2, 3, 4, 50, -50; n = 7, f = 1: theta = 5, beta = 3.
    # step 1 (7 left, 4 neighbours): 2 scores 1 + 1 + 4 + 4 = 10 (best).
    # step 2 (6 left, 3 nb): 1: 1 + 4 + 9 = 14, 3: 1 + 4 + 9 = 14 -> tie, total squared
    #   distance 1: 1 + 4 + 9 + 49^2 + 51^2 = 5016 < 3: 9 + 4 + 1 + 47^2 + 53^2 = 5032 -> 1.
    # step 3 (5 left, 2 nb): 0: 9 + 16 = 25, 3: 1 + 9 = 10, 4: 1 + 16 = 17 -> 3.
    # step 4 (4 left, 1 nb): 0: 16, 4: 16 tie; totals 0: 16 + 2500 + 2500 = 5016,
    #   4: 16 + 46^2 + 54^2 = 5048 -> 0.
    # step 5 (3 left, 0 nb): all 0; totals 4: 2116 + 2916 < 50: 2116 + 10000 -> 4.
    # Selected {0, 1, 2, 3, 4}; median 2; the 3 values closest to it {1, 2, 3} -> 2.
    x = T([[50.0], [0.0], [1.0], [-50.0], [2.0], [3.0], [4.0]])
    rule = Bulyan(7, 1)
    assert rule(x).item() == pytest.approx(2.0)
    assert rule.last_weights.tolist() == pytest.approx([0, 0.2, 0.2, 0, 0.2, 0.2, 0.2])
    # second coordinate: the selected rows carry 0, 10, 1, 2, 7 -> median 2, the three
    # closest {1, 2, 0} (7 and 10 are 5 and 8 away) -> 1
    x2 = torch.cat([x, T([[99.0], [0.0], [10.0], [-99.0], [1.0], [2.0], [7.0]])], dim=1)
    assert rule(x2).tolist() == pytest.approx([2.0, 1.0])
