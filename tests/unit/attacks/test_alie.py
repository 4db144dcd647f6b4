"""byzbench.attacks.alie: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.alie import ALIE

from .helpers import ctx


def test_alie_hand_computed():
    honest = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=f64)
    # mean (2, 4); unbiased std: coord 0: ((1-2)^2 + (3-2)^2)/1 = 2 -> sqrt 2;
    # coord 1: ((2-4)^2 + (6-4)^2)/1 = 8 -> 2 sqrt 2. z = 1 -> (2 - sqrt2, 4 - 2 sqrt2)
    b = ALIE(z=1.0)(honest, ctx(2, n_h=2))
    expected = torch.tensor([2 - math.sqrt(2), 4 - 2 * math.sqrt(2)], dtype=f64)
    torch.testing.assert_close(b, torch.stack([expected, expected]))
    # z_max, n = 25, f = 5: s = floor(13.5) - 5 = 8;
    # paper: Phi^-1((25 - 8)/25) = Phi^-1(0.68) = 0.467699; honest: Phi^-1(12/20) = 0.253347
    h = torch.randn(20, 3, dtype=f64, generator=torch.Generator().manual_seed(0))
    mu, sd = h.mean(0), h.std(0)
    b = ALIE(z_formula="paper", n=25, f=5)(h, ctx(5, n_h=20))
    torch.testing.assert_close(b[0], mu - 0.4676988 * sd, rtol=1e-6, atol=1e-6)
    b = ALIE(z_formula="honest", n=25, f=5)(h, ctx(5, n_h=20))
    torch.testing.assert_close(b[0], mu - 0.2533471 * sd, rtol=1e-6, atol=1e-6)
    # n = 10, f = 6: s = 6 - 6 = 0 -> p = 1: no finite z_max
    with pytest.raises(ConfigError, match="attack.z"):
        ALIE(n=10, f=6)
