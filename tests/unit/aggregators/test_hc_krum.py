"""byzbench.aggregators.hc_krum: HC-Krum; values by hand, the arithmetic next to each
expectation."""

from __future__ import annotations

import pytest
from unit_helpers import T

from byzbench import ConfigError
from byzbench.aggregators.hc_krum import HCKrum


def test_hc_krum_hand_values():
    # 1-D 0, 0.1, 1, 1.1, 2, 50, 60; n = 7, f = 1: k = 2f + 3 = 5 clusters. Average
    # linkage merges {0, 0.1} and {1, 1.1} (distance 0.1) first -> 5 clusters with means
    # 0.05, 1.05, 2, 50, 60. Krum (f_c = 1, 2 neighbours) on the means:
    # 0.05: 1 + 1.95^2 = 4.8025; 1.05: 1 + 0.95^2 = 1.9025; 2: 0.9025 + 3.8025 = 4.705
    x = T([[60.0], [0.0], [1.1], [50.0], [0.1], [2.0], [1.0]])
    rule = HCKrum(7, 1)
    assert rule(x).item() == pytest.approx(1.05)
    assert rule.last_weights.tolist() == pytest.approx([0, 0, 0.5, 0, 0, 0, 0.5])
    with pytest.raises(ConfigError, match=r"hc_krum needs n >= 2f_c \+ 3 = 9"):
        HCKrum(8, 3)
    with pytest.raises(ConfigError, match="n_clusters"):
        HCKrum(20, 3, n_clusters=5)
