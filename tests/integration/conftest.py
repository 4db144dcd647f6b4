"""Helpers for end-to-end tests: compose configs in-process, or run the installed CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import conf_options  # noqa: F401  (tests/conftest.py's, for this package)
from hydra import compose, initialize_config_dir

from byzbench.run import CONF_DIR

TINY = ["rounds=4", "eval_every=2", "cluster.n_workers=7", "cluster.byz_frac=0.3",
        "batch_size=8", "progress=false", "model.hidden=[16]"]


def compose_cfg(*overrides: str):
    """The composed run config, as `byzbench <overrides>` would see it."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


def byzbench_cmd() -> list[str]:
    """The installed console script (falls back to the module for a source checkout)."""
    exe = shutil.which("byzbench")
    return [exe] if exe else [sys.executable, "-m", "byzbench.run"]


def run_cli(args: list[str], cwd: Path, timeout: int = 300, cmd: list[str] | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    e.update(env or {})
    return subprocess.run((cmd or byzbench_cmd()) + args, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=e)


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)
