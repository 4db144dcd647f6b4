"""Declared stage contracts (byzbench.stages): every option of agg, preagg and attack is
a stage of the right base; a capability that is not declared cannot be set on a class;
an instance attribute that is a near-miss of a capability name is a typo; needs and
state keys name real things; plain callables work through the adapters."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import torch

from byzbench.aggregators.base import Pipeline, as_stage
from byzbench.attacks.base import Attack, as_attack
from byzbench.build import build_pipeline, instantiate_component
from byzbench.run import CONF_DIR
from byzbench.stages import SIDE_INPUTS, PreAggregator, Rule, SideInputs, Stage

BASES = {"agg": Rule, "preagg": PreAggregator, "attack": Attack}


def _options(group: str) -> list[Path]:
    return sorted((Path(CONF_DIR) / group).rglob("*.yaml"))


def _build(group: str, path: Path):
    """The option composed by Hydra (presets included), built as the run builds it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    option = str(path.relative_to(Path(CONF_DIR) / group).with_suffix(""))
    over = f"preagg=[{option}]" if group == "preagg" else f"{group}={option}"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[over])
    node = OmegaConf.to_container(cfg[group], resolve=True)
    if group == "preagg":
        node = node[option]
    node.pop("tune", None)
    node.pop("server_randomness", None)
    inject = ({"n": 12, "f": 2, "generator": torch.Generator().manual_seed(0)}
              if group != "attack" else {"n": 12, "f": 2, "f_declared": 2, "num_classes": 10})
    return instantiate_component(node, group, **inject)


CASES = [(g, p) for g in BASES for p in _options(g)]


@pytest.mark.parametrize("group, path", CASES, ids=[f"{g}/{p.stem}" for g, p in CASES])
def test_every_option_is_a_declared_stage(group, path):
    obj = _build(group, path)
    assert isinstance(obj, BASES[group])
    assert set(obj.needs if group != "attack" else ()) <= SIDE_INPUTS
    for k in (*obj.state_keys, *obj.generator_keys):
        assert hasattr(obj, k), f"{type(obj).__name__} declares {k} but has no such attribute"
    for k in obj.generator_keys:
        g = getattr(obj, k)
        assert g is None or isinstance(g, torch.Generator)
    # A near-miss of a capability name set on the instance is a typo (last_weight,
    # generator_key, ...): it would fall back to the declared default silently.
    caps = type(obj).capabilities
    for name in vars(obj):
        close = difflib.get_close_matches(name, caps, n=1, cutoff=0.85)
        assert not close or close[0] == name, f"{type(obj).__name__}.{name}: typo of {close}?"


def test_an_undeclared_capability_on_a_class_is_a_type_error():
    with pytest.raises(TypeError, match="last_weight is not a declared capability"):
        class Typo(Rule):  # noqa: F841 - the class statement itself must fail
            last_weight = None  # not last_weights

            def __call__(self, x):
                return x.mean(0)
    with pytest.raises(TypeError, match="loca is not a declared capability"):
        class Typo2(Attack):  # noqa: F841
            loca = True


def test_unknown_side_inputs_are_a_type_error():
    with pytest.raises(TypeError, match="unknown side inputs"):
        class Needy(Rule):  # noqa: F841
            needs = frozenset({"server_gradient"})


def test_plain_callables_work_through_the_adapters():
    x = torch.randn(5, 3, dtype=torch.float64)
    pipe = Pipeline([lambda v: v * 2], lambda v: v.mean(0))
    assert isinstance(pipe.rule, Rule) and isinstance(pipe.preaggs[0], Stage)
    assert torch.allclose(pipe(x), 2 * x.mean(0))
    assert torch.allclose(pipe.query_batch(x[None]), 2 * x.mean(0)[None])  # loop fallback
    assert pipe.state_dict() == {"preagg.0": {}, "rule": {}}
    att = as_attack(lambda h, ctx: h[:1])
    assert isinstance(att, Attack) and not att.local and att.byz_momentum
    with pytest.raises(TypeError):
        as_stage(3, "rule")


def test_side_inputs_reach_only_the_stages_that_declare_them():
    got = []

    class Needs(Rule):
        needs = frozenset({"server_grad"})

        def observe(self, side: SideInputs) -> None:
            got.append(side.server_grad)

        def __call__(self, x):
            return x.mean(0)

    class Plain(PreAggregator):
        def __init__(self):
            self.n_out = 4

        def observe(self, side):  # never called: needs is empty
            raise AssertionError

        def __call__(self, x):
            return x

    pipe = Pipeline([Plain()], Needs())
    assert pipe.needs == {"server_grad"}
    pipe.observe(SideInputs(server_grad=torch.ones(2)))
    assert len(got) == 1 and torch.equal(got[0], torch.ones(2))


def test_row_identity_needs_refuse_a_row_changing_preaggregator():
    from byzbench import ConfigError

    with pytest.raises(ConfigError, match="honest_row"):
        build_pipeline({"b": {"_target_": "byzbench.preaggregators.bucketing.Bucketing"}},
                       {"_target_": "byzbench.aggregators.monna.MoNNA", "pivot": "honest"},
                       12, 2, torch.Generator())


def test_topologies_are_declared_and_checked():
    """``topologies`` is a non-empty subset of {server, gossip} (TypeError at class
    creation otherwise); the build refuses a stage in a topology it does not declare,
    in one line naming the stage; gossip-only options are exactly the gossip rules and
    graph attacks."""
    from byzbench import ConfigError
    from byzbench.config import declared_topologies

    with pytest.raises(TypeError, match="topologies"):
        type("Moon", (Rule,), {"topologies": frozenset({"moon"})})
    with pytest.raises(TypeError, match="topologies"):
        type("Nowhere", (Rule,), {"topologies": frozenset()})
    only = type("OnlyGossip", (Rule,), {"topologies": frozenset({"gossip"}),
                                        "__call__": lambda self, x: x.mean(0)})
    with pytest.raises(ConfigError, match="^agg=OnlyGossip is invalid with topology=server"):
        only.check_topology("server", "agg", "OnlyGossip")
    only.check_topology("gossip", "agg", "OnlyGossip")
    gossip_only = {f"{g}/{p.stem}" for g in ("agg", "attack", "preagg")
                   for p in (Path(CONF_DIR) / g).glob("*.yaml")
                   if declared_topologies(p) == {"gossip"}}
    assert gossip_only == {"agg/bridge", "agg/clipped_gossip", "agg/cs_plus_rg",
                           "agg/gossip_avg", "agg/gts_rg", "agg/ios", "attack/dissensus",
                           "attack/dissensus_rg", "attack/spectral"}


def test_batch_nodes_attacks_define_nodes():
    """An attack that declares ``batch_nodes`` overrides ``nodes`` (else the gossip round
    would call the base's NotImplementedError)."""
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    declared = set()
    for p in sorted((Path(CONF_DIR) / "attack").rglob("*.yaml")):
        target = OmegaConf.load(p).get("_target_")
        cls = get_object(target) if isinstance(target, str) else None
        if isinstance(cls, type) and issubclass(cls, Attack) and cls.batch_nodes:
            assert cls.nodes is not Attack.nodes, cls
            declared.add(cls.__name__)
    assert declared >= {"ALIE", "IPM", "SignFlip", "Dissensus"}
