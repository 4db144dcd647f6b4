"""Shared by the rule tests: tiny composed run configs for the loop-level checks."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from byzbench.run import CONF_DIR

TINY = ["rounds=1", "eval_every=1", "cluster.n_workers=7", "cluster.byz_frac=0.3",
        "batch_size=8", "progress=false", "model.hidden=[16]"]


def cfg(*over):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, *over])
