"""The fair protocol of the seesaw study (docs/STUDY.md): finite_norm, seesaw and
directional_deviation share the magnitude cap, its unit, the search range, the
maximizer and the pipeline-evaluation budget; every (attack, cap) cell of the sweep
builds; the budget is what each attack spends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import RoundContext
from byzbench.build import build_attack
from byzbench.config import cluster_spec
from tests.unit.test_attacks import CONF

EXP = CONF.parent / "experiment"
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
