"""byzbench.aggregators.meamed: MeaMed and Phocas; values by hand, the arithmetic next to each
expectation."""

from __future__ import annotations

import pytest
from unit_helpers import T

from byzbench.aggregators.meamed import MeaMed
from byzbench.aggregators.phocas import Phocas


def test_meamed_and_phocas_hand_values():
    col = T([[0.0], [2.0], [5.0], [6.0], [9.0]])
    # meamed f = 1: median 5; |x - 5| = 5, 3, 0, 1, 4 -> 4 nearest {5, 6, 2, 9} -> 22 / 4
    assert MeaMed(5, 1)(col).item() == pytest.approx(5.5)
    # phocas f = 1: trmean (2 + 5 + 6) / 3 = 13/3; distances 13/3, 7/3, 2/3, 5/3, 14/3
    # -> 4 nearest {5, 6, 2, 0} -> 13 / 4
    assert Phocas(5, 1)(col).item() == pytest.approx(3.25)
