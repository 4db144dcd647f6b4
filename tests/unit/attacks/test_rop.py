"""byzbench.attacks.rop: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.rop import ROP

from .helpers import ctx


def test_rop_hand_computed():
    honest = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=f64)  # mean (1, 0)
    # t = 0 (no previous aggregate): reference = mean = (1, 0); v = (1,1) - 1 (1, 0) = (0, 1);
    # angle 90 -> p = (0, 1); location = pi * 0 + (1 - pi) mean = 0 -> b = z (0, 1) = (0, 2)
    b = ROP(z=2.0, unit="absolute")(honest, ctx(1, n_h=2))
    torch.testing.assert_close(b, torch.tensor([[0.0, 2.0]], dtype=f64))
    # prev = (2, 0), lam = pi = 0.5: ref = (1.5, 0), loc = (1.5, 0), v = (0, 1);
    # angle 60: p = sin60 (0, 1) + cos60 (1, 0) = (0.5, 0.866) (unit) -> b = (1.5 + 1, 1.732)
    prev = torch.tensor([2.0, 0.0], dtype=f64)
    b = ROP(z=2.0, lam=0.5, pi=0.5, angle=60.0, unit="absolute")(honest, ctx(2, n_h=2, prev=prev))
    torch.testing.assert_close(b[1], torch.tensor([2.5, math.sqrt(3)], dtype=f64))
    # angle 270 (FLB's current config): p = -v -> b = (0, -2); 360 is out of [0, 360)
    b = ROP(z=2.0, angle=270.0, unit="absolute")(honest, ctx(1, n_h=2))
    torch.testing.assert_close(b, torch.tensor([[0.0, -2.0]], dtype=f64))
    with pytest.raises(ConfigError, match="attack.angle"):
        ROP(angle=360.0)
    # unit spread: |g_i - mean| = 1 for both rows -> the same b as absolute here
    torch.testing.assert_close(ROP(z=2.0)(honest, ctx(1, n_h=2)),
                               torch.tensor([[0.0, 2.0]], dtype=f64))
    # z = None: ALIE z_max, honest formula, n = 4, f = 2: s = 3 - 2 = 1, Phi^-1(1/2) = 0
    b = ROP()(honest, ctx(2, n_h=2))
    torch.testing.assert_close(b, torch.zeros(2, 2, dtype=f64))
