"""Backdoor attacks end to end: every one logs test/asr through FedAvg (and DSGD),
summary.json has test_asr; BadNets implants the backdoor on digits (slow)."""

from __future__ import annotations

import csv
import json

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from byzbench.backdoor.poison import Backdoor

from .conftest import TINY, compose_cfg, conf_options

pytestmark = pytest.mark.usefixtures("one_thread")

BACKDOORS = [p.stem for p in conf_options("attack")
             if issubclass(get_object(OmegaConf.load(p)["_target_"]), Backdoor)]
FED = ["algorithm=fedavg", "algorithm.local_steps=2", "solver.lr=1"]


def _run(tmp_path, *over):
    from byzbench.run import execute

    return execute(compose_cfg(*TINY, "plot=false", *over), tmp_path, {})


@pytest.mark.parametrize("attack", BACKDOORS)
def test_every_backdoor_logs_asr(tmp_path, attack):
    summary = _run(tmp_path, *FED, f"attack={attack}", "agg=mean", "dataset.val_frac=0.1")
    assert summary["status"] == "ok"
    assert 0.0 <= summary["final"]["test_asr"] <= 1.0 and "val_asr" in summary["final"]
    with open(tmp_path / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "asr"]
    assert {r["split"] for r in rows} == {"test", "val"}
    assert len({r["round"] for r in rows}) == 3  # rounds 0, 2, 4 (eval_every=2)
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["test_asr"] >= 0


def test_badnets_under_dsgd_and_label_flip_has_no_asr(tmp_path):
    assert "test_asr" in _run(tmp_path / "a", "attack=badnets", "agg=median")["final"]
    assert "test_asr" not in _run(tmp_path / "b", "attack=label_flip")["final"]


@pytest.mark.slow
def test_badnets_implants_the_backdoor_on_digits(tmp_path):
    over = ["algorithm=fedavg", "algorithm.local_steps=5", "solver.lr=1", "rounds=50",
            "eval_every=50", "progress=false", "plot=false", "attack=badnets",
            "attack.trigger.pixel.size=2", "agg=mean"]
    from byzbench.run import execute

    bad = execute(compose_cfg(*over), tmp_path / "bad", {})["final"]
    clean = execute(compose_cfg(*over, "cluster.byz_frac=0"), tmp_path / "clean", {})["final"]
    assert bad["test_asr"] > 0.9 and bad["test_accuracy"] > 0.9
    assert clean["test_asr"] < 0.1 and clean["test_accuracy"] > 0.9
