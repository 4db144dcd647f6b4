"""Scale-free defaults of smea, cge, fltrust, foolsgold, flame, clipped_clustering and gas:
rows scaled by c give the aggregate scaled by c (two rounds for the stateful ones)."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import rows

from byzbench.aggregators.cge import CGE
from byzbench.aggregators.clipped_clustering import ClippedClustering
from byzbench.aggregators.flame import FLAME
from byzbench.aggregators.fltrust import FLTrust
from byzbench.aggregators.foolsgold import FoolsGold
from byzbench.aggregators.gas import GAS
from byzbench.aggregators.smea import SMEA

RULES = {
    "smea": lambda: SMEA(9, 2), "cge": lambda: CGE(9, 2),
    "clipped_clustering": lambda: ClippedClustering(9, 2), "flame": lambda: FLAME(9, 2),
    "foolsgold": lambda: FoolsGold(9, 2), "fltrust": lambda: FLTrust(9, 2),
    "gas": lambda: GAS(9, 2, p=3),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_is_scale_free(name):
    x = rows(9, 12, 7, offset=0.5)
    x[:2] = -3 * x[:2]
    for c in (1e-4, 1e4):
        a, b = RULES[name](), RULES[name]()
        for _ in range(2):  # stateful rules: two rounds
            out, out_c = a(x), b(c * x)
        torch.testing.assert_close(out_c, c * out, rtol=1e-9, atol=0.0)
