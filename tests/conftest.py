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


@pytest.fixture
def one_thread():
    """One torch thread for tiny shapes (no oversubscription on a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def conf_options(group: str) -> list[Path]:
    """Every option YAML of a config group."""
    return sorted((CONF / group).glob("*.yaml"))
