"""byzbench.preaggregators.nnm: values computed by hand."""

from __future__ import annotations

import math

import pytest
from unit_helpers import T

from byzbench.preaggregators.nnm import NNM


def test_nnm_hand_values():
    # 1-D rows 0, 1, 3, 10 with n = 4, f = 1: each row -> mean of its 3 nearest.
    # 0: {0, 1, 3} -> 4/3; 1: {1, 0, 3} -> 4/3; 3: {3, 1, 0} -> 4/3; 10: {10, 3, 1} -> 14/3
    p = NNM(4, 1)
    y = p(T([[0.0], [1.0], [3.0], [10.0]]))
    assert y.flatten().tolist() == pytest.approx([4 / 3, 4 / 3, 4 / 3, 14 / 3])
    assert p.last_mixing[3].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])


def test_nnm_passes_nan_rows_through_and_ignores_them():
    p = NNM(4, 1)
    y = p(T([[0.0], [1.0], [math.nan], [3.0]]))
    # finite rows mix over {0, 1, 3} only: 4/3 each; the nan row stays nan
    assert y[[0, 1, 3]].flatten().tolist() == pytest.approx([4 / 3] * 3)
    assert math.isnan(y[2, 0].item())
