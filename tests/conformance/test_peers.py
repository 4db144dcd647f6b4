"""Peers' published unit tests replayed through byzbench (conformance).

Each case is one published test of a peer library: its hard-coded input rows and
expected output, run through the byzbench option that reproduces it, built as a run
builds it (the shipped YAMLs composed by Hydra, then ``build.build_pipeline`` /
``build.build_attack``). Sources (file :: test):

* ByzFL (LPD-EPFL/byzfl, ``tests/unit_test_aggregators.py``,
  ``tests/unit_test_preaggregators.py``, ``tests/unit_test_attacks.py``; byzfl 0.0.11);
* Flower (adap/flower, ``framework/py/flwr/server/strategy/{krum,multikrum,bulyan,
  fedmedian}_test.py`` :: ``test_aggregate_fit``; Flower publishes no numeric test of
  FedTrimmedAvg);
* Blades (lishenghui/blades, ``fllib/aggregators/tests/test_aggregators.py``,
  ``fllib/aggregators/tests/test_clippedclustering.py``).

ByzFL's and Flower's Krum tests use n = 3 rows with f = 1, which byzbench refuses (the
paper needs n >= 2f + 3); they are replayed at f = 0, where byzbench scores the same
number of neighbours (ByzFL: n - f - 1 = 1 at f = 1; Flower: max(1, n - f - 2) = 1;
byzbench: n - 0 - 2 = 1).

``scripts/peer_parity.py`` prints the parity table (peer, test, option, agree) from
``CASES``, including the default options that do not reproduce a peer's tie rule.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from byzbench.attacks.base import RoundContext
from byzbench.build import build_attack, build_pipeline
from byzbench.config import cluster_spec
from byzbench.run import CONF_DIR

X3 = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]  # ByzFL's input in every test
FLOWER_KRUM = [[0.2] * 4, [0.7] * 4, [1.0] * 4]
FLOWER_MULTIKRUM = [[0.2] * 4, [0.5] * 4, [1.0] * 4]
FLOWER_BULYAN = [[0.2] * 4, [0.5] * 4, [0.7] * 4, [12.0] * 4, [0.1] * 4, [0.1] * 4]
FLOWER_MEDIAN = [[0.2] * 4, [1.0] * 4, [0.5] * 4]
BLADES = [[1.0, 2.0, 3.0], [-1.0, 4.0, -1.0], [2.0, 2.0, 3.0], [3.0, 1.0, 3.0]]

BYZFL_AGG = "LPD-EPFL/byzfl tests/unit_test_aggregators.py"
BYZFL_PRE = "LPD-EPFL/byzfl tests/unit_test_preaggregators.py"
BYZFL_ATT = "LPD-EPFL/byzfl tests/unit_test_attacks.py"
FLOWER = "adap/flower framework/py/flwr/server/strategy/"
BLADES_AGG = "lishenghui/blades fllib/aggregators/tests/test_aggregators.py"
BLADES_CC = "lishenghui/blades fllib/aggregators/tests/test_clippedclustering.py"


@dataclass(frozen=True)
class Case:
    """One published test: ``kind`` agg (rule over the rows), preagg (rows out), attack
    (one Byzantine row for ``f`` Byzantine workers, honest rows = ``x``)."""

    peer: str
    source: str
    test: str
    kind: str
    overrides: tuple[str, ...]
    x: list
    expected: list | None
    f: int
    rtol: float = 1e-5
    atol: float = 0.0
    agrees: bool = True  # False: a default option that differs (the table's "no" rows)
    check: str = field(default="values")  # values | geomed_condition | finite_shape


def _c(*args, **kw) -> Case:
    return Case(*args, **kw)


CASES: list[Case] = [
    # --- ByzFL aggregators ---------------------------------------------------------
    _c("ByzFL", BYZFL_AGG, "TestAverageAggregation", "agg", ("agg=mean",), X3, [4, 5, 6], 0),
    _c("ByzFL", BYZFL_AGG, "TestMedianAggregation", "agg", ("agg=median",), X3, [4, 5, 6], 0),
    _c("ByzFL", BYZFL_AGG, "TestTrMeanAggregation", "agg", ("agg=trmean",), X3, [4, 5, 6], 1),
    _c("ByzFL", BYZFL_AGG, "TestGeometricMedianAggregation", "agg", ("agg=byzfl/geomed",), X3,
       [3.78788764, 4.78788764, 5.78788764], 0),
    _c("ByzFL", BYZFL_AGG, "TestGeometricMedianAggregation", "agg", ("agg=geomed",), X3,
       [3.78788764, 4.78788764, 5.78788764], 0, agrees=False),
    _c("ByzFL", BYZFL_AGG, "TestKrumAggregation", "agg", ("agg=krum",), X3, [1, 2, 3], 0),
    _c("ByzFL", BYZFL_AGG, "TestMultiKrumAggregation", "agg", ("agg=multikrum", "agg.m=2"),
       X3, [2.5, 3.5, 4.5], 0),
    _c("ByzFL", BYZFL_AGG, "TestCenteredClippingAggregation", "agg",
       ("agg=cclip", "agg.tau=100", "agg.iterations=1"), X3, [4, 5, 6], 1),
    _c("ByzFL", BYZFL_AGG, "TestMDAAggregation", "agg", ("agg=mda", "agg.ties=first"), X3,
       [2.5, 3.5, 4.5], 1),
    _c("ByzFL", BYZFL_AGG, "TestMDAAggregation", "agg", ("agg=mda",), X3, [2.5, 3.5, 4.5], 1,
       agrees=False),
    _c("ByzFL", BYZFL_AGG, "TestMoNNAAggregation", "agg", ("agg=monna", "agg.pivot=1"), X3,
       [2.5, 3.5, 4.5], 1),
    _c("ByzFL", BYZFL_AGG, "TestMeamedAggregation", "agg", ("agg=meamed",), X3,
       [2.5, 3.5, 4.5], 1),
    # --- ByzFL pre-aggregators -------------------------------------------------------
    _c("ByzFL", BYZFL_PRE, "TestNNMAggregation", "preagg", ("preagg=[nnm]",), X3,
       [[2.5, 3.5, 4.5], [2.5, 3.5, 4.5], [5.5, 6.5, 7.5]], 1),
    _c("ByzFL", BYZFL_PRE, "TestClippingAggregation", "preagg",
       ("preagg=[clipping]", "preagg.clipping.threshold=2.0"), X3,
       [[0.53452248, 1.06904497, 1.60356745], [0.91168461, 1.13960576, 1.36752692],
        [1.00514142, 1.14873305, 1.29232469]], 0, atol=1e-5),
    _c("ByzFL", BYZFL_PRE, "TestARCAggregation", "preagg", ("preagg=[arc]",), X3,
       [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [4.41004009, 5.04004582, 5.67005155]], 1,
       atol=1e-5),
    # --- ByzFL attacks (honest rows X3, one Byzantine row) -----------------------------
    _c("ByzFL", BYZFL_ATT, "TestSignFlippingAttack", "attack", ("attack=sign_flip",), X3,
       [-4, -5, -6], 1),
    _c("ByzFL", BYZFL_ATT, "TestInnerProductManipulationAttack", "attack",
       ("attack=ipm", "attack.eps=2.0"), X3, [-8, -10, -12], 1),
    _c("ByzFL", BYZFL_ATT, "TestOptimalInnerProductManipulationAttack", "attack",
       ("attack=byzfl/ipm", "agg=trmean", "preagg=[nnm,clipping]",
        "preagg.clipping.threshold=2.0"), X3, [-2.74877907, -3.43597384, -4.1231686], 1,
       atol=1e-5),
    _c("ByzFL", BYZFL_ATT, "TestOptimalInnerProductManipulationAttack", "attack",
       ("attack=byzfl/ipm", "attack.tune.search=lpd", "agg=trmean", "preagg=[nnm,clipping]",
        "preagg.clipping.threshold=2.0"), X3, [-2.74877907, -3.43597384, -4.1231686], 1,
       atol=1e-5, agrees=False),
    _c("ByzFL", BYZFL_ATT, "TestALittleIsEnoughAttack", "attack",
       ("attack=alie", "attack.z=1.5", "attack.side=plus"), X3, [8.5, 9.5, 10.5], 1),
    _c("ByzFL", BYZFL_ATT, "TestOptimalALittleIsEnoughAttack", "attack",
       ("attack=byzfl/alie", "agg=trmean", "preagg=[nnm,clipping]",
        "preagg.clipping.threshold=2.0"), X3, [12.91985116, 13.91985116, 14.91985116], 1,
       atol=1e-5),
    _c("ByzFL", BYZFL_ATT, "TestOptimalALittleIsEnoughAttack", "attack",
       ("attack=byzfl/alie", "attack.side=minus", "agg=trmean", "preagg=[nnm,clipping]",
        "preagg.clipping.threshold=2.0"), X3, [12.91985116, 13.91985116, 14.91985116], 1,
       atol=1e-5, agrees=False),
    _c("ByzFL", BYZFL_ATT, "TestMimicAttack", "attack", ("attack=mimic", "attack.worker=0"),
       X3, [1, 2, 3], 1),
    _c("ByzFL", BYZFL_ATT, "TestInfAttack", "attack", ("attack=inf_grad",), X3,
       [math.inf] * 3, 1),
    _c("ByzFL", BYZFL_ATT, "TestGaussianAttack", "attack",
       ("attack=gaussian", "attack.mean=0.0", "attack.std=1.0"), X3, None, 1,
       check="finite_shape"),
    # --- Flower strategies (test_aggregate_fit of each) --------------------------------
    _c("Flower", FLOWER + "krum_test.py", "test_aggregate_fit", "agg", ("agg=krum",),
       FLOWER_KRUM, [0.7] * 4, 0, rtol=0.0),
    _c("Flower", FLOWER + "multikrum_test.py", "test_aggregate_fit", "agg",
       ("agg=multikrum", "agg.m=2"), FLOWER_MULTIKRUM, [0.35] * 4, 0, rtol=0.0),
    _c("Flower", FLOWER + "bulyan_test.py", "test_aggregate_fit", "agg", ("agg=bulyan",),
       FLOWER_BULYAN, [(0.2 + 0.5 + 0.7 + 12.0 + 0.1 + 0.1) / 6] * 4, 0, rtol=1e-7),
    _c("Flower", FLOWER + "fedmedian_test.py", "test_aggregate_fit", "agg", ("agg=median",),
       FLOWER_MEDIAN, [0.5] * 4, 0, rtol=0.0),
    # --- Blades -------------------------------------------------------------------------
    _c("Blades", BLADES_AGG, "TestAggregators.test_mean", "agg", ("agg=mean",), BLADES,
       [1.25, 2.25, 2.0], 0, rtol=1e-5, atol=1e-8),
    _c("Blades", BLADES_AGG, "TestAggregators.test_median", "agg", ("agg=median",), BLADES,
       [1.5, 2.0, 3.0], 0, rtol=1e-5, atol=1e-8),
    _c("Blades", BLADES_AGG, "TestAggregators.test_trimmedmean", "agg", ("agg=trmean",),
       BLADES, [1.5, 2.0, 3.0], 1, rtol=1e-5, atol=1e-8),
    _c("Blades", BLADES_AGG, "TestAggregators.test_geomed", "agg",
       ("agg=geomed", "agg.tol=1e-12", "agg.max_iter=1000", "agg.nu=1e-8",
        "agg.absolute_nu=true"), BLADES, None, 0, atol=1e-3, check="geomed_condition"),
    _c("Blades", BLADES_AGG, "TestAggregators.test_dnc", "agg",
       ("agg=dnc", "agg.niters=1", "agg.b=2"), BLADES, [2.0, 1.6667, 3.0], 1, atol=1e-4),
    _c("Blades", BLADES_CC, "TestAggregators.test_clippedclustering", "agg",
       ("agg=clipped_clustering", "agg.max_tau=1e5"), BLADES, [1.9596, 1.6532, 2.9596], 0,
       rtol=1e-5, atol=1e-4),
]


@functools.cache
def composed(overrides: tuple[str, ...]):
    """The run config `byzbench <overrides>` composes (cached per override tuple)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def replay(case: Case, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Run one case through the byzbench option it names; returns byzbench's output."""
    x = torch.tensor(case.x, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    if case.kind == "attack":
        ov = case.overrides if any(o.startswith("agg=") for o in case.overrides) \
            else (*case.overrides, "agg=mean", "preagg=[]")
        cfg = composed(ov)
        n = x.shape[0] + case.f
        pipe = build_pipeline(cfg.preagg, cfg.agg, n, case.f, gen)
        spec = cluster_spec(n, case.f / n)
        attack = build_attack(cfg.attack, spec, num_classes=10)
        ctx = RoundContext(t=0, n=n, f=case.f, f_declared=case.f, pipeline=pipe,
                           generator=gen)
        rows = attack(x, ctx)
        assert rows.shape == (case.f, x.shape[1])
        return rows[0]
    cfg = composed((*case.overrides, "preagg=[]") if case.kind == "agg"
                   else (*case.overrides, "agg=mean"))
    pipe = build_pipeline(cfg.preagg, cfg.agg, x.shape[0], case.f, gen)
    if case.kind == "preagg":
        out = x
        for p in pipe.preaggs:
            out = p(out)
        return out
    return pipe(x)


def agrees(case: Case, out: torch.Tensor) -> bool:
    """Whether byzbench's output passes the peer's own assertion."""
    if case.check == "finite_shape":
        return out.shape == (len(case.x[0]),) and bool(torch.isfinite(out).all())
    if case.check == "geomed_condition":  # Blades: sum of unit vectors to the median ~ 0
        x = torch.tensor(case.x, dtype=out.dtype)
        u = (x - out) / torch.linalg.vector_norm(x - out, dim=1, keepdim=True)
        return bool(torch.allclose(u.sum(0), torch.zeros_like(out), atol=case.atol))
    # The expected values in the input's precision (Flower compares float32 exactly).
    exp = np.asarray(case.expected, dtype=np.float64).astype(out.numpy().dtype)
    return bool(np.allclose(out.numpy(), exp, rtol=case.rtol, atol=case.atol))


def _id(case: Case) -> str:
    return f"{case.peer}:{case.test}:{' '.join(case.overrides)}"


@pytest.mark.parametrize("case", CASES, ids=_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_peer_case(case: Case, dtype: torch.dtype, one_thread):
    """The option reproduces the peer's published expected output (the "no" rows of
    the table: the default option differs, on a tie rule or a variant, as documented)."""
    out = replay(case, dtype)
    assert agrees(case, out) == case.agrees, (case.test, case.overrides, out)
