"""byzbench.attacks.fang_trmean: values computed by hand, knowledge and errors."""

from __future__ import annotations

import torch
from unit_helpers import f64

from byzbench.attacks.fang_trmean import FangTrmean

from .helpers import ctx


def test_fang_trmean_hand_computed_ranges():
    honest = torch.tensor([[1.0, -1.0, 2.0], [3.0, -3.0, -4.0]], dtype=f64)
    # mean (2, -2, -1). coord 0: mean >= 0, gmin = 1 > 0 -> [1/2, 1]; coord 1: mean < 0,
    # gmax = -1 <= 0 -> [-1, -1/2]; coord 2: mean < 0, gmax = 2 > 0 -> [2, 4].
    lo = torch.tensor([0.5, -1.0, 2.0], dtype=f64)
    hi = torch.tensor([1.0, -0.5, 4.0], dtype=f64)
    b = FangTrmean(b=2.0)(honest, ctx(3, n_h=2, seed=4))
    u = torch.rand((3, 3), generator=torch.Generator().manual_seed(4), dtype=f64)
    torch.testing.assert_close(b, lo + u * (hi - lo))
    assert not torch.equal(b[0], b[1])
