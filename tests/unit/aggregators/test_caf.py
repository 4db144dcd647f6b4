"""byzbench.aggregators.caf: CAF; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unit_helpers import T

from byzbench.aggregators.caf import CAF


def test_caf_hand_values():
    # 1-D 0, 1, 2, 10, n = 4, f = 1: filter while sum(c) > 2.
    x = T([[0.0], [1.0], [2.0], [10.0]])
    # round 1: mu = 13/4, y = x - mu, lambda_1 = mean(y^2) = 62.75 / 4,
    # tau = y^2, c = 1 - tau / max tau
    y = np.array([0, 1, 2, 10]) - 3.25
    c = 1 - y**2 / (y**2).max()
    assert c.sum() > 2
    # round 2: mu_c = sum(c x) / sum(c); lambda_2 = sum(c (x - mu_c)^2) / sum(c) < lambda_1
    mu2 = (c * np.array([0, 1, 2, 10])).sum() / c.sum()
    y2 = np.array([0, 1, 2, 10]) - mu2
    lam2 = (c * y2**2).sum() / c.sum()
    assert lam2 < 62.75 / 4
    # update: tau2 = y2^2 over rows in play (c > 0), c2 = c (1 - tau2 / max tau2)
    t2 = y2**2 * (c > 0)
    c2 = c * (1 - t2 / t2[c > 0].max())
    assert c2.sum() <= 2  # loop stops; output = mu_c of round 2 (smallest lambda)
    rule = CAF(4, 1)
    assert rule(x).item() == pytest.approx(mu2)
    assert rule.last_weights.tolist() == pytest.approx((c / c.sum()).tolist())


def test_caf_filters_at_tiny_scales():
    # The old floor 1e-12 * max(1, trace) returned the mean for inputs ~1e-8.
    x = T([[0.0], [1.0], [2.0], [10.0]])
    ref = CAF(4, 1)(x)
    assert ref.item() < 2.5  # the far row is filtered
    torch.testing.assert_close(CAF(4, 1)(1e-8 * x), 1e-8 * ref)
