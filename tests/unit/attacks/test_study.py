"""The fair protocol of the seesaw study (docs/STUDY.md): finite_norm, seesaw and
directional_deviation share the magnitude cap, its unit, the search range, the
maximizer and the pipeline-evaluation budget; every (attack, cap) cell of the sweep
builds; the budget is what each attack spends; against the plain mean each attack
takes the cap, at any gradient scale."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from unit_helpers import f64

from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import RoundContext
from byzbench.attacks.finite_norm import FiniteNorm
from byzbench.attacks.seesaw import Seesaw
from byzbench.build import build_attack
from byzbench.config import cluster_spec
from byzbench.run import CONF_DIR

from .helpers import ctx_for, mean_rule

CONF = Path(CONF_DIR) / "attack"
EXP = Path(CONF_DIR) / "experiment"
STUDY = ("finite_norm", "seesaw", "directional_deviation")
SHARED = ("cap", "lo", "unit", "budget", "search")


def _grid(name: str) -> dict[str, list[str]]:
    params = yaml.safe_load((EXP / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
    return {k: [v.strip() for v in str(p).split(",")] for k, p in params.items()}


def test_same_budget_cap_unit_and_search_by_default():
    cfgs = {a: yaml.safe_load((CONF / f"{a}.yaml").read_text()) for a in STUDY}
    for key in SHARED:
        assert len({str(c[key]) for c in cfgs.values()}) == 1, key
    assert cfgs["finite_norm"]["mode"] == "adaptive"
    assert {cfgs["seesaw"]["magnitude"], cfgs["directional_deviation"]["magnitude"]} == {
        "adaptive"}


@pytest.mark.parametrize("exp", ["seesaw_vs_finite_norm", "seesaw_vs_finite_norm_dirichlet"])
def test_every_attack_cap_cell_builds_and_spends_the_budget(exp):
    grid = _grid(exp)
    assert grid["attack"] == list(STUDY)
    spec = cluster_spec(20, 0.2)
    honest = torch.randn(16, 12, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0)) + 0.3
    mean = Pipeline([], lambda x: x.mean(0))
    spread = float((honest - honest.mean(0)).norm(dim=1).mean())
    for name in grid["attack"]:
        for cap in grid["attack.cap"]:
            cfg = {**yaml.safe_load((CONF / f"{name}.yaml").read_text()), "cap": float(cap)}
            a = build_attack(cfg, spec, num_classes=10)
            ctx = RoundContext(t=0, n=20, f=4, f_declared=4, pipeline=mean)
            b = a(honest, ctx)
            assert a.last_evals <= cfg["budget"]
            pivot = honest.mean(0) if name == "finite_norm" else honest.quantile(0.5, dim=0)
            # against the plain mean the cap binds: the same bounded deviation for all
            dist = float((b[0] - pivot).norm())
            assert dist == pytest.approx(float(cap) * spread, rel=1e-9)


def test_ablation_runs_at_one_fair_cap():
    exp = yaml.safe_load((EXP / "seesaw_ablation.yaml").read_text())
    assert exp["attack"]["cap"] == 2.0 and "attack.cap" not in exp["hydra"]["sweeper"]["params"]
    assert Path(EXP / "seesaw_baseline.yaml").is_file()


@pytest.mark.parametrize("cap", [0.5, 2.0, 8.0])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_fair_protocol_same_bounded_deviation_against_mean(cap, scale):
    # The fair protocol (docs/STUDY.md): seesaw, directional_deviation and finite_norm
    # (mode maximize) search [lo, cap] spread units with the same maximizer and budget.
    # Against the plain mean the displacement grows linearly, so all three take the cap
    # and each Byzantine row sits at exactly cap * spread from its pivot, whatever the
    # gradients' scale: bounded, and the same bound for every attack.
    honest = scale * (torch.randn(6, 4, dtype=f64, generator=torch.Generator().manual_seed(1))
                      + 2)
    spread = float((honest - honest.mean(0)).norm(dim=1).mean())
    c = ctx_for(mean_rule, 3, n_h=6)
    attacks = [Seesaw(cap=cap, budget=16, period=1), Seesaw(cap=cap, budget=16, period=None),
               FiniteNorm(cap=cap, budget=16)]
    for a in attacks:
        b = a(honest, c)
        pivot = honest.median(0).values if isinstance(a, Seesaw) else honest.mean(0)
        if isinstance(a, Seesaw):
            pivot = torch.quantile(honest, 0.5, dim=0)
        dist = (b - pivot).norm(dim=1)
        torch.testing.assert_close(dist, torch.full_like(dist, cap * spread), rtol=1e-9, atol=0)
        assert a.last_evals <= 16
