"""Every line-search attack queries the pipeline through ``ctx.query_line`` (issue 19):
the adaptive magnitudes of seesaw / directional_deviation / finite_norm and the tuned
scale (``tune: true``) of every attack whose rows lie on a line in its scale."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.median import Median
from byzbench.attacks.base import RoundContext
from byzbench.build import build_attack
from byzbench.config import cluster_spec

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf" / "attack"
ADAPTIVE = ["seesaw", "directional_deviation", "finite_norm"]
TUNED_ON_A_LINE = ["alie", "ipm", "min_max", "min_sum", "seesaw", "directional_deviation",
                   "finite_norm"]


class Counting(Pipeline):
    """A pipeline that counts line queries and refuses materialized batches."""

    lines = 0

    def query_line(self, *args, **kw):
        self.lines += 1
        return super().query_line(*args, **kw)

    def query_batch(self, xs, seed=None):
        raise AssertionError("a line-search attack materialized its candidates")


def _run(cfg: dict, rule) -> int:
    spec = cluster_spec(20, 0.2)
    honest = torch.randn(16, 30, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0)) + 0.3
    pipe = Counting([], rule)
    a = build_attack(cfg, spec, num_classes=10)
    ctx = RoundContext(t=0, n=20, f=4, f_declared=4, pipeline=pipe,
                       generator=torch.Generator().manual_seed(1))
    b = a(honest, ctx)
    assert b.shape == (4, 30) and torch.isfinite(b).all()
    return pipe.lines


@pytest.mark.parametrize("rule", [Krum(20, 4), Median(20, 4)], ids=["krum", "median"])
@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_magnitudes_use_query_line(name, rule):
    assert _run(yaml.safe_load((CONF / f"{name}.yaml").read_text()), rule) >= 2


@pytest.mark.parametrize("name", TUNED_ON_A_LINE)
def test_tuned_scales_use_query_line(name):
    cfg = {**yaml.safe_load((CONF / f"{name}.yaml").read_text()), "tune": {"budget": 8}}
    assert _run(cfg, Krum(20, 4)) >= 2


def test_tuned_off_the_line_materializes():
    """Jittered seesaw rows are off the line: the materialized path, as before."""
    cfg = {**yaml.safe_load((CONF / "seesaw.yaml").read_text()), "jitter": 0.1,
           "tune": {"budget": 4}}
    with pytest.raises(AssertionError, match="materialized"):
        _run(cfg, Krum(20, 4))
