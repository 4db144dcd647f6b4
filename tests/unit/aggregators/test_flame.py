"""byzbench.aggregators.flame: FLAME; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import torch
from unit_helpers import f64

from byzbench.aggregators.flame import FLAME


def test_flame_by_hand():
    e = torch.tensor([1.0, 0.0, 0.0], dtype=f64)
    honest = torch.stack([k * e for k in (1.0, 2.0, 3.0, 4.0, 5.0)])
    byz = torch.tensor([[-100.0, 1.0, 0.0], [-100.0, 0.0, 1.0]], dtype=f64)
    x = torch.cat([honest, byz])
    rule = FLAME(7, 2)
    # HDBSCAN keeps the 5 parallel rows; median norm over all 7 rows = 4;
    # clipped norms 1, 2, 3, 4, 4 -> mean 2.8
    torch.testing.assert_close(rule(x), 2.8 * e)
    assert rule.last_admitted.tolist() == [True] * 5 + [False] * 2
    noisy = FLAME(7, 2, noise=0.01, generator=torch.Generator().manual_seed(4))
    z = torch.randn(3, generator=torch.Generator().manual_seed(4), dtype=f64)
    torch.testing.assert_close(noisy(x), 2.8 * e + 0.01 * 4.0 * z)
