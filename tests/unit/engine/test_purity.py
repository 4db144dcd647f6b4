"""Queries have no side effects (issue 18, item 4), for every option of agg and preagg
(auto-discovered): after real calls, ``query``, ``query`` with the attacker's own seed and
``query_batch`` leave every stage's ``state_dict()`` equal by value (tensors, arrays and
generator states included) to what it was before, and every other instance attribute
except per-call outputs (``last_*``) too, so declared state is complete. A rule that
mutates undeclared state in place is caught by the same check."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.gossip.base import GossipRule
from byzbench.build import build_pipeline
from byzbench.config import declared_topologies
from byzbench.run import CONF_DIR
from byzbench.stages import Rule, SideInputs

N, F, D = 12, 2, 6


def equal(a, b) -> bool:
    """Deep equality by value; nan equals nan."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.shape == b.shape and a.dtype == b.dtype
                and np.array_equal(a.cpu().numpy(), b.cpu().numpy(), equal_nan=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal, a, b))
    if isinstance(a, torch.Generator):
        return isinstance(b, torch.Generator) and torch.equal(a.get_state(), b.get_state())
    return a == b or a is b


def attributes(pipe: Pipeline) -> list[dict]:
    """Every stage's instance attributes except per-call outputs and scratch buffers."""
    out = []
    for s in pipe.stages:
        out.append({k: copy.deepcopy(v) if not isinstance(v, torch.Generator) else v.get_state()
                    for k, v in vars(s).items()
                    if not k.startswith("last_") and k not in ("_out", *s.substages)})
    return out


def _pipeline(group: str, option: str) -> Pipeline:
    over = f"preagg=[{option}]" if group == "preagg" else f"agg={option}"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[over])
    c = OmegaConf.to_container(cfg, resolve=True)
    agg = c["agg"] if group == "agg" else {"_target_": "byzbench.aggregators.mean.Mean"}
    where = min(declared_topologies(Path(CONF_DIR) / group / f"{option}.yaml"))  # gossip
    pipe = build_pipeline(c["preagg"], agg, N, F, torch.Generator().manual_seed(3), where)
    if isinstance(pipe.rule, GossipRule):  # a node of degree N - 1, uniform weights
        pipe.rule.set_mixing(torch.full((1, N), 1.0 / N, dtype=torch.float64),
                             torch.tensor([F / N], dtype=torch.float64))
    return pipe


def _options(group):
    root = Path(CONF_DIR) / group
    return [str(p.relative_to(root).with_suffix("")) for p in sorted(root.rglob("*.yaml"))]


CASES = [("agg", o) for o in _options("agg")] + [("preagg", o) for o in _options("preagg")]


def check_pure(pipe: Pipeline) -> None:
    g = torch.Generator().manual_seed(0)
    x = lambda: torch.randn(N, D, generator=g, dtype=torch.float64)  # noqa: E731
    side = SideInputs(server_grad=torch.randn(D, generator=g, dtype=torch.float64),
                      worker_ids=torch.arange(N), honest_row=0)
    pipe.observe(side)
    for _ in range(3):  # real calls build up state (centers, histories, permutations)
        pipe(x())
    before, attrs = pipe.state_dict(), attributes(pipe)
    pipe.observe(SideInputs(server_grad=side.server_grad, honest_row=0))  # as the attack sees
    pipe.query(x())
    pipe.query(x(), seed=123)
    pipe.query_batch(torch.stack([x(), x(), x()]), seed=7)
    pipe.query_batch(torch.stack([x(), x()]))
    pipe.observe(side)
    assert equal(pipe.state_dict(), before), "a query changed the declared state"
    after = attributes(pipe)
    for s, a, b in zip(pipe.stages, attrs, after):
        changed = [k for k in a if k in b and not equal(a[k], b[k]) and k != "worker_ids"]
        assert not changed, f"{type(s).__name__}: undeclared state changed by a query: {changed}"


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}/{o}" for g, o in CASES])
def test_queries_leave_every_stage_state_unchanged(group, option, one_thread):
    check_pure(_pipeline(group, option))


def test_state_dict_round_trips_and_is_a_copy():
    pipe = _pipeline("agg", "cclip")
    pipe(torch.randn(N, D, dtype=torch.float64))
    sd = pipe.state_dict()
    center = sd["rule"]["center"].clone()
    pipe(torch.randn(N, D, dtype=torch.float64))
    assert equal(sd["rule"]["center"], center)  # the dict holds copies
    pipe.load_state_dict(sd)
    assert equal(pipe.rule.center, center)


class Leaky(Rule):
    """Deliberately wrong: a running sum mutated in place and not declared as state."""

    def __init__(self, n: int = 0, f: int = 0):
        self.total = torch.zeros(D, dtype=torch.float64)

    def __call__(self, x):
        self.total.add_(x.mean(0))
        return self.total.clone()


class DeclaredInPlace(Leaky):
    """The same in-place mutation, declared: queries restore it."""

    state_keys = ("total",)


def test_a_mutating_rule_is_caught():
    with pytest.raises(AssertionError, match="undeclared state changed by a query"):
        check_pure(Pipeline([], Leaky()))
    check_pure(Pipeline([], DeclaredInPlace()))
