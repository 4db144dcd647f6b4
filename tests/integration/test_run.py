"""Whole runs in-process (compose -> build -> train -> files): determinism,
divergence handling, every config option composes and builds."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from byzbench import ConfigError
from byzbench.build import build_experiment
from byzbench.run import execute

from .conftest import TINY, compose_cfg, conf_options


def _run(tmp_path, *overrides):
    cfg = compose_cfg(*TINY, "plot=false", *overrides)
    return execute(cfg, tmp_path, {}), pd.read_csv(tmp_path / "metrics.csv")


def test_same_seed_same_numbers(tmp_path):
    args = ("attack=seesaw", "agg=krum", "solver=adam", "worker_momentum=0.5")
    s1, m1 = _run(tmp_path / "a", *args)
    s2, m2 = _run(tmp_path / "b", *args)
    s3, m3 = _run(tmp_path / "c", *args, "seed=1")
    det1, det2 = m1[m1.split != "time"], m2[m2.split != "time"]
    assert len(det1) > 20
    pd.testing.assert_frame_equal(det1.reset_index(drop=True), det2.reset_index(drop=True))
    assert s1["final"] == s2["final"]
    assert not m3[m3.split != "time"].reset_index(drop=True).equals(det1.reset_index(drop=True))
    # only wall-clock rows are allowed to differ, and they are all in split "time"
    assert set(m1[m1.split == "time"].metric) == {"round", "aggregation"}


def test_default_task_learns_without_attack(tmp_path):
    cfg = compose_cfg("progress=false", "plot=false", "rounds=150", "eval_every=50")
    s = execute(cfg, tmp_path, {})
    assert s["status"] == "ok"
    assert s["final"]["test_accuracy"] > 0.85  # chance is 0.1 on 10 digit classes


def test_f_declared_is_what_the_rule_sees(tmp_path):
    cfg = compose_cfg(*TINY, "cluster.f_declared=1", "agg=trmean")
    exp, info = build_experiment(cfg)
    assert (info["f"], info["f_declared"]) == (2, 1)
    assert exp.pipeline.rule.f == 1


@pytest.mark.parametrize("group", ["solver", "schedule"])
def test_every_solver_and_schedule_option_runs(tmp_path, group):
    for path in conf_options(group):
        s, m = _run(tmp_path / path.stem, f"{group}={path.stem}")
        assert s["status"] == "ok", path.stem
        assert json.loads((tmp_path / path.stem / "summary.json").read_text())["status"] == "ok"


def test_bad_schedule_param_is_config_error():
    cfg = compose_cfg(*TINY, "schedule=inv_sqrt", "schedule.warmup=0")
    with pytest.raises(ConfigError, match="schedule.warmup"):
        build_experiment(cfg)


def test_resume_skips_a_finished_run_of_the_same_config_only(tmp_path):
    """``finished_summary``: a finished run of the same resolved config is skipped on
    rerun; another config (or resume=false, or a failed run) is not."""
    from byzbench.run import finished_summary

    cfg = compose_cfg(*TINY, "plot=false")
    s = execute(cfg, tmp_path, {})
    assert s["status"] == "ok"
    assert finished_summary(tmp_path, cfg)["config_hash"] == s["config_hash"]
    assert finished_summary(tmp_path, compose_cfg(*TINY, "plot=false", "seed=1")) is None
    assert finished_summary(tmp_path, compose_cfg(*TINY, "plot=false", "resume=false")) is None
    (tmp_path / "summary.json").write_text(json.dumps({**s, "status": "failed"}))
    assert finished_summary(tmp_path, cfg) is None
