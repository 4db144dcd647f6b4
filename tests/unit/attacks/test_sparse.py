"""byzbench.attacks.sparse: values computed by hand, knowledge and errors."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.sparse import Sparse

from .helpers import ctx_h


def test_sparse_by_hand_and_scale_free():
    honest = torch.tensor([[1.0, 2.0, 0.0, 4.0], [3.0, 6.0, 2.0, 0.0]], dtype=f64)
    a = Sparse(density=0.5, scale=5.0, z=1.0)
    b = a(honest, ctx_h(2, 2))
    mask = a.mask
    assert mask.sum() == 2 and set(mask.tolist()) == {0.0, 1.0}
    mu, sd = honest.mean(0), honest.std(0)
    want = mu - sd * (mask * 5.0 + (1 - mask) * 1.0)
    torch.testing.assert_close(b, want.expand(2, 4))
    b2 = Sparse(density=0.5, scale=5.0, z=1.0)(1e3 * honest, ctx_h(2, 2))
    torch.testing.assert_close(b2, 1e3 * b)
    # the mask is fixed across rounds
    a(honest * 2, ctx_h(2, 2, seed=5))
    assert torch.equal(a.mask, mask)
    with pytest.raises(ConfigError, match="attack.density"):
        Sparse(density=0.0)
