"""byzbench.attacks.alie_local: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import torch
from unit_helpers import f64

from byzbench.attacks.alie_local import ALIELocal

from .helpers import ctx_h, grads


def test_alie_local_by_hand_and_knowledge():
    own = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=f64)
    # mu = (2, 4), unbiased std = (sqrt2, 2 sqrt2); z = 1
    b = ALIELocal(z=1.0)(grads(5, 2, 0), ctx_h(2, 5, byz=own))
    want = torch.tensor([2 - math.sqrt(2), 4 - 2 * math.sqrt(2)], dtype=f64)
    torch.testing.assert_close(b, want.expand(2, 2))
    assert ALIELocal.local
    other = ALIELocal(z=1.0)(grads(5, 2, 9) * 100, ctx_h(2, 5, byz=own))
    assert torch.equal(b, other)  # the honest rows are not used
