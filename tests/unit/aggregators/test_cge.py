"""byzbench.aggregators.cge: CGE; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.aggregators.cge import CGE


def test_cge_by_hand():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [10.0, 0.0]], dtype=f64)
    # norms 5, 1, 2, 10; f = 1 keeps rows 1, 2, 0: mean ((3+1+0)/3, (4+0+2)/3)
    rule = CGE(4, 1)
    torch.testing.assert_close(rule(x), torch.tensor([4 / 3, 2.0], dtype=f64))
    assert rule.last_weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    torch.testing.assert_close(CGE(4, 1, reduce="sum")(x), torch.tensor([4.0, 6.0], dtype=f64))
    x[1, 0] = float("nan")  # a non-finite row is the "largest": rows 2, 0, 3 kept
    torch.testing.assert_close(CGE(4, 1)(x), torch.tensor([13 / 3, 2.0], dtype=f64))
    with pytest.raises(ConfigError, match="agg.reduce"):
        CGE(4, 1, reduce="median")
