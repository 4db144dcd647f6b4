"""byzbench.attacks.inf_grad and nan_grad: the rows they send."""

from __future__ import annotations

import torch

from byzbench.attacks.inf_grad import Inf
from byzbench.attacks.nan_grad import NaN

from .helpers import TRI, ctx


def test_inf_nan():
    assert torch.isposinf(Inf()(TRI, ctx(2))).all() and Inf()(TRI, ctx(2)).shape == (2, 2)
    assert torch.isnan(NaN()(TRI, ctx(3))).all() and NaN()(TRI, ctx(3)).shape == (3, 2)
