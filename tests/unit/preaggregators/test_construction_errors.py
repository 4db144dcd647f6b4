"""Every pre-aggregator's bad construction arguments give one line."""

from __future__ import annotations

import pytest

from byzbench import ConfigError
from byzbench.preaggregators.arc import ARC
from byzbench.preaggregators.bucketing import Bucketing
from byzbench.preaggregators.clipping import Clipping
from byzbench.preaggregators.nnm import NNM


def test_preagg_construction_errors():
    with pytest.raises(ConfigError, match="nnm needs f < n"):
        NNM(3, 3)
    with pytest.raises(ConfigError, match="arc needs 2f < n"):
        ARC(4, 2)
    with pytest.raises(ConfigError, match="s >= 1"):
        Bucketing(4, 0, s=0)
    with pytest.raises(ConfigError, match="threshold > 0"):
        Clipping(4, 0, threshold=0.0)
