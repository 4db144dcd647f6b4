"""byzbench.preaggregators.clipping: values computed by hand."""

from __future__ import annotations

import pytest
from unit_helpers import T

from byzbench.preaggregators.clipping import Clipping


def test_clipping_hand_values():
    # norms 5 and 0.5 with C = 1: (3, 4) -> (0.6, 0.8); (0.3, 0.4) unchanged
    y = Clipping(2, 0, threshold=1.0)(T([[3.0, 4.0], [0.3, 0.4]]))
    assert y.tolist() == [pytest.approx([0.6, 0.8]), pytest.approx([0.3, 0.4])]
