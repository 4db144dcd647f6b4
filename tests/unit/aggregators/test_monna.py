"""byzbench.aggregators.monna: MoNNA and its pivots; values by hand, the arithmetic next to each
expectation."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import T

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.monna import MoNNA
from byzbench.preaggregators.bucketing import Bucketing
from byzbench.stages import SideInputs


def test_monna_hand_values():
    x = T([[0.0], [1.0], [3.0], [10.0]])
    # pivot row 0 (value 0), f = 1: 3 nearest {0, 1, 3} -> 4/3
    assert MoNNA(4, 1)(x).item() == pytest.approx(4 / 3)
    # pivot row 3 (value 10): nearest {10, 3, 1} -> 14/3
    assert MoNNA(4, 1, pivot=3)(x).item() == pytest.approx(14 / 3)
    # pivot "previous": 0 first (same as value 0), then 4/3: nearest {1, 0, 3} again
    rule = MoNNA(4, 1, pivot="previous")
    assert rule(x).item() == pytest.approx(4 / 3)
    assert rule(x).item() == pytest.approx(4 / 3)


def test_monna_default_is_previous_and_honest_pivot():
    assert MoNNA(4, 1).pivot == "previous"
    x = T([[10.0], [0.0], [1.0], [3.0]])
    rule = MoNNA(4, 1, pivot="honest")
    assert rule(x).item() == pytest.approx(14 / 3)  # not told yet: row 0 (value 10)
    pipe = Pipeline([], rule)
    pipe.observe(SideInputs(honest_row=1))  # row 1 (value 0): nearest {0, 1, 3} -> 4/3
    assert pipe(x).item() == pytest.approx(4 / 3)
    pipe.observe(SideInputs(honest_row=0))  # row 0 (value 10): nearest {10, 3, 1} -> 14/3
    assert pipe(x).item() == pytest.approx(14 / 3)


def test_monna_honest_refused_after_bucketing():
    from omegaconf import OmegaConf

    from byzbench.build import build_pipeline

    pre = OmegaConf.create({"bucketing": {"_target_": "byzbench.preaggregators.bucketing."
                                          "Bucketing", "s": 2}})
    agg = OmegaConf.create({"_target_": "byzbench.aggregators.monna.MoNNA", "pivot": "honest"})
    with pytest.raises(ConfigError, match="honest_row"):
        build_pipeline(pre, agg, 10, 1, torch.Generator().manual_seed(0))
    assert build_pipeline({}, agg, 10, 1, None).needs == {"honest_row"}
    assert isinstance(Bucketing(4), Bucketing)
