"""byzbench.attacks.min_sum: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench.attacks.min_sum import MinSum

from .helpers import TRI, ctx


def test_min_sum_hand_computed_paper_and_code_bounds():
    # sum_j |g_i - g_j|^2: (0,0): 0+4+4 = 8; (2,0): 4+0+8 = 12; (0,2): 12 -> max 12, min 8.
    # b = (c, c): sum_i |b - g_i|^2 = 2c^2 + 2((c-2)^2 + c^2) = 6c^2 - 8c + 8.
    # paper (max): 6c^2 - 8c + 8 = 12 <=> 3c^2 - 4c - 2 = 0, c = (2 - sqrt10)/3,
    #   gamma = sqrt2 (2/3 - c) = sqrt2 sqrt10 / 3 = sqrt20 / 3
    # code (min): 6c^2 - 8c = 0 -> c = 0, gamma = sqrt2 * 2/3
    a = MinSum(perturbation="unit_vec", unit="absolute")
    b = a(TRI, ctx(2, n_h=3))
    assert a.last_gamma == pytest.approx(math.sqrt(20) / 3, rel=1e-9)
    c = (2 - math.sqrt(10)) / 3
    torch.testing.assert_close(b, torch.full((2, 2), c, dtype=f64))
    assert float(((b[0] - TRI) ** 2).sum()) == pytest.approx(12.0, rel=1e-9)
    a = MinSum(perturbation="unit_vec", bound="min", unit="absolute")
    a(TRI, ctx(2, n_h=3))
    assert a.last_gamma == pytest.approx(math.sqrt(2) * 2 / 3, rel=1e-9)
