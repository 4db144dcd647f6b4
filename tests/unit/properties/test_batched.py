"""Batched pipeline queries: for every rule and pre-aggregator (auto-discovered from
conf/agg and conf/preagg), ``stage.batch(xs [k, n, d])`` equals the stage called on
each ``xs[i]`` from the same state (same generator seed); ``Pipeline.query_batch``
equals looped queries, batched or not; every distance-based and coordinate-wise stage
has a batched path."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from conftest import conf_options
from omegaconf import OmegaConf

from byzbench.aggregators.base import Pipeline
from byzbench.build import instantiate_component

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf"
STAGES = [("agg", p) for p in conf_options("agg")] + \
    [("preagg", p) for p in conf_options("preagg")]
IDS = [f"{g}-{p.stem}" for g, p in STAGES]
K, N, F, D = 4, 15, 3, 30  # every rule accepts n = 15, f = 3 (bulyan: 4f + 3 = 15)


def build(group: str, yaml: Path, n: int = N, seed: int = 0):
    node = OmegaConf.to_container(OmegaConf.load(yaml))
    if group == "preagg":
        node = node[yaml.stem]
    return instantiate_component(node, f"{group}={yaml.stem}", n=n, f=F,
                                 generator=torch.Generator().manual_seed(seed))


def candidates(seed: int = 3) -> torch.Tensor:
    """k matrices sharing the honest rows, the Byzantine rows at k different scales
    (what a line maximizer asks), float64."""
    g = torch.Generator().manual_seed(seed)
    honest = 1.0 + torch.randn(N - F, D, generator=g, dtype=torch.float64)
    u = torch.randn(D, generator=g, dtype=torch.float64)
    xs = []
    for c in (0.1, 1.0, 3.0, 30.0)[:K]:
        byz = honest.mean(0) + c * u + 0.01 * torch.randn(F, D, generator=g, dtype=torch.float64)
        xs.append(torch.cat([honest, byz]))
    return torch.stack(xs)


@pytest.mark.parametrize("group, yaml", STAGES, ids=IDS)
def test_batched_equals_looped(group, yaml):
    stage = build(group, yaml)
    if not stage.has_batch():
        pytest.skip("no batched path (the pipeline loops over queries)")
    xs = candidates()
    out = stage.batch(xs)
    ref = torch.stack([build(group, yaml)(x).clone() for x in xs])
    assert out.shape == ref.shape and out.dtype == xs.dtype
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
    assert torch.equal(xs, candidates()), "batch modified its input"


@pytest.mark.parametrize("group, yaml", STAGES, ids=IDS)
def test_distance_and_coordinate_stages_have_a_batched_path(group, yaml):
    stage = build(group, yaml)
    src = inspect.getsource(type(stage))
    if "kernels.pairwise(" in src or "kernels.columnwise(" in src:
        assert stage.has_batch(), "distance/coordinate stage unbatched"


@pytest.mark.parametrize("preagg", [None, "nnm", "bucketing", "clipping"])
@pytest.mark.parametrize("rule", ["trmean", "krum", "median", "cclip", "mean"])
def test_pipeline_query_batch_equals_looped_queries(preagg, rule):
    pre = [build("preagg", CONF / "preagg" / f"{preagg}.yaml")] if preagg else []
    n_rule = pre[0].n_out if pre else N
    if rule == "krum" and n_rule < 2 * F + 3:
        pytest.skip("krum needs 2f + 3 rows; bucketing leaves fewer")
    pipe = Pipeline(pre, build("agg", CONF / "agg" / f"{rule}.yaml", n=n_rule))
    xs = candidates()
    state = pipe.state_dict()
    out = pipe.query_batch(xs)
    ref = torch.stack([pipe.query(x) for x in xs])
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
    after = pipe.state_dict()  # no side effects (tests/unit/engine/test_purity.py: every option)
    assert after.keys() == state.keys()
    for k in state:
        for key, v in state[k].items():
            w = after[k][key]
            assert (v is None and w is None) or torch.equal(v, w), (k, key)
