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


def runs_in(path: Path, topology: str | None) -> bool:
    """Whether the option's component declares ``topology`` (None: any)."""
    from byzbench.config import declared_topologies

    return topology is None or topology in declared_topologies(path)


def conf_options(group: str, topology: str | None = "server") -> list[Path]:
    """Every top-level option YAML of a config group whose component runs in
    ``topology`` (default: the parameter server; None: every option)."""
    return [p for p in sorted((CONF / group).glob("*.yaml")) if runs_in(p, topology)]


# Input shape used to test each conf/model option (the dataset injects it in a run).
MODEL_SHAPES = {
    "logreg": (1, 8, 8),
    "mlp": (64,),
    "lenet": (1, 28, 28),
    "cnn": (3, 16, 16),
    "resnet20": (3, 8, 8),
    "resnet20_bn": (3, 8, 8),
    "epfml_cnn": (1, 10, 10),
    "byzfl_cnn_mnist": (1, 16, 16),
    "byzfl_fc_mnist": (1, 6, 6),
    "cnn1d": (40,),
}


@pytest.fixture
def model_shapes() -> dict[str, tuple[int, ...]]:
    """Small input shapes for every model option (``MODEL_SHAPES``)."""
    return MODEL_SHAPES
