"""byzbench.attacks.min_max: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench.attacks.min_max import MinMax

from .helpers import TRI, ctx


def test_min_max_hand_computed():
    # p = mu/|mu| = (1, 1)/sqrt2, b = (c, c) with c = 2/3 - gamma/sqrt2. Bound max_ij = 2 sqrt2
    # (between (2,0) and (0,2)); for c < 0 the binding distance is to (2, 0):
    # (c-2)^2 + c^2 = 8 <=> c^2 - 2c - 2 = 0 <=> c = 1 - sqrt3, gamma = sqrt2 (2/3 - c).
    a = MinMax(perturbation="unit_vec", unit="absolute")
    b = a(TRI, ctx(2, n_h=3))
    c = 1 - math.sqrt(3)
    assert a.last_gamma == pytest.approx(math.sqrt(2) * (2 / 3 - c), rel=1e-9)
    torch.testing.assert_close(b, torch.full((2, 2), c, dtype=f64))
    assert torch.cdist(b, TRI).max() == pytest.approx(2 * math.sqrt(2), rel=1e-9)
    # sign: p = (1, 1), c = 2/3 - gamma -> gamma = 2/3 - (1 - sqrt3) = sqrt3 - 1/3
    a = MinMax(perturbation="sign", unit="absolute")
    a(TRI, ctx(1, n_h=3))
    assert a.last_gamma == pytest.approx(math.sqrt(3) - 1 / 3, rel=1e-9)
    # fixed gamma and cap
    assert torch.equal(MinMax(gamma=0.0)(TRI, ctx(1, n_h=3))[0], TRI.mean(0))
    a = MinMax(perturbation="sign", gamma_max=1.0, unit="absolute")
    a(TRI, ctx(1, n_h=3))
    assert a.last_gamma == 1.0
