"""byzbench.preaggregators.arc: values computed by hand."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import T

from byzbench.preaggregators.arc import ARC


def test_arc_zero_rows_no_nan():
    # n = 5, f = 1: k = 1; four zero rows -> C = 0; the zero rows stay 0 (was 0/0 = nan)
    x = T([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    y = ARC(5, 1)(x)
    assert torch.equal(y, torch.zeros_like(x))


def test_arc_hand_values():
    # n = 5, f = 1: k = floor(2 * (1/5) * 4) = floor(1.6) = 1 row clipped to the 2nd norm.
    x = T([[10.0, 0.0], [0.0, 4.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    p = ARC(5, 1)
    y = p(x)
    assert p.last_threshold == pytest.approx(4.0)
    assert y[0].tolist() == pytest.approx([4.0, 0.0])  # 10 -> 4
    torch.testing.assert_close(y[1:], x[1:])
    # n = 10, f = 3: k = floor(2 * 0.3 * 7) = floor(4.2) = 4 rows clipped to the 5th norm
    x10 = torch.arange(1.0, 11.0, dtype=torch.float64).unsqueeze(1)
    y10 = ARC(10, 3)(x10)
    assert y10.flatten().tolist() == pytest.approx([1, 2, 3, 4, 5, 6, 6, 6, 6, 6])
    assert torch.equal(ARC(10, 0)(x10), x10)  # f = 0: unchanged
