"""Every option of conf/attack is scale-equivariant against every pipeline (gradients
scaled by c give Byzantine rows scaled by c), apart from the listed absolute ones."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean
from byzbench.aggregators.median import Median
from byzbench.aggregators.trmean import TrMean
from byzbench.attacks.base import RoundContext
from byzbench.preaggregators.nnm import NNM

from .helpers import D, F, N
from .test_attacks import YAMLS, instantiate_attack, load

# Absolute by definition, with the reason (docs/ATTACKS.md lists them too).
ABSOLUTE = {
    "inf_grad": "sends +inf whatever the gradients",
    "nan_grad": "sends nan whatever the gradients",
    "gaussian": "N(mean, std^2) ignores the gradients (Blanchard et al.); unit: spread "
                "makes it scale-free",
}


PIPELINES = {
    "mean": lambda: Pipeline([], Mean(N, F)),
    "median": lambda: Pipeline([], Median(N, F)),
    "trmean": lambda: Pipeline([], TrMean(N, F)),
    "krum": lambda: Pipeline([], Krum(N, F)),
    "nnm+krum": lambda: Pipeline([NNM(N, F)], Krum(N, F)),
}


def _run(cfg: dict, rule: str, c: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    honest = c * (torch.randn(N - F, D, generator=g, dtype=f64) + 0.4)
    own = c * (torch.randn(F, D, generator=g, dtype=f64) - 0.2)
    prev = c * torch.randn(D, generator=g, dtype=f64)
    ctx = RoundContext(t=3, n=N, f=F, f_declared=F, pipeline=PIPELINES[rule](),
                       prev_aggregate=prev, byz_grads=own,
                       generator=torch.Generator().manual_seed(9), query_seed=11)
    return instantiate_attack(cfg, n=N, f=F)(honest, ctx)


def _configs():
    for p in YAMLS:
        cfg = load(p)
        yield pytest.param(cfg, id=p.stem)
        if "tune" in cfg:
            yield pytest.param({**cfg, "tune": {"budget": 8}}, id=p.stem + "+tune")


@pytest.mark.parametrize("rule", sorted(PIPELINES))
@pytest.mark.parametrize("cfg", list(_configs()))
def test_attack_is_scale_equivariant(cfg, rule):
    name = cfg["_target_"].split(".")[2]
    stem = next(p.stem for p in YAMLS if load(p)["_target_"] == cfg["_target_"])
    if stem in ABSOLUTE or name in ("inf_grad", "nan_grad"):
        pytest.skip(f"absolute by definition: {ABSOLUTE.get(stem, name)}")
    base = _run(cfg, rule, 1.0)
    for c in (1e-3, 1e3):
        torch.testing.assert_close(_run(cfg, rule, c), c * base, rtol=1e-4, atol=0)


def test_absolute_list_is_current():
    stems = {p.stem for p in YAMLS}
    assert set(ABSOLUTE) <= stems
