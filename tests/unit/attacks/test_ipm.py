"""byzbench.attacks.ipm: values computed by hand, knowledge and errors."""

from __future__ import annotations

import torch
from unit_helpers import f64

from byzbench.attacks.ipm import IPM

from .helpers import TRI, ctx


def test_ipm_hand_computed():
    # mean (2/3, 2/3), eps = 3 -> (-2, -2)
    b = IPM(eps=3.0)(TRI, ctx(2, n_h=3))
    torch.testing.assert_close(b, torch.full((2, 2), -2.0, dtype=f64))
