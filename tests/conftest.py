"""Shared fixtures: small tensors and the path of the shipped config groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CONF = Path(__file__).resolve().parents[1] / "byzbench" / "conf"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def conf_options(group: str) -> list[Path]:
    """Every option YAML of a config group."""
    return sorted((CONF / group).glob("*.yaml"))
