"""byzbench.aggregators.gas: GAS; values by hand, the arithmetic next to each expectation."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import rows

from byzbench import ConfigError
from byzbench.aggregators.gas import GAS
from byzbench.aggregators.median import Median


def test_gas_matches_loop_reference_and_errors():
    n, f, d, p = 7, 2, 10, 3
    x = rows(n, d, 5)
    x[:f] += 4.0
    rule = GAS(n, f, p=p, base="median")
    out = rule(x)
    med = Median(n, f)
    bounds = [(q * d) // p for q in range(p + 1)]
    score = [0.0] * n
    for q in range(p):
        sub = x[:, bounds[q]:bounds[q + 1]]
        a = med(sub)
        for i in range(n):
            score[i] += float((sub[i] - a).norm())
    keep = sorted(range(n), key=lambda i: (score[i], i))[: n - f]
    torch.testing.assert_close(out, x[sorted(keep)].mean(0))
    assert rule.last_scores.tolist() == pytest.approx(score)
    with pytest.raises(ConfigError, match="agg.base='nope'"):
        GAS(n, f, base="nope")
    with pytest.raises(ConfigError, match="agg.p"):
        GAS(n, f, p=0)
    r = GAS(n, f, p=4, split="random", generator=torch.Generator().manual_seed(1))
    cols = torch.cat(r.groups(d, x.device))
    assert sorted(cols.tolist()) == list(range(d))
