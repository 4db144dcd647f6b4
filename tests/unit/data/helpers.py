"""Shared by the dataset tests: seeded generators and building a dataset option from
its YAML."""

from __future__ import annotations

import pathlib

import torch
from omegaconf import OmegaConf

import byzbench
from byzbench.build import instantiate_component
from byzbench.data.base import Dataset

DATA_DIR = pathlib.Path(byzbench.__file__).parent / "conf" / "dataset"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def yaml_kwargs(path: pathlib.Path) -> dict:
    """A dataset yaml as its builder's keyword arguments: every dataset yaml declares
    ``val_frac``, which build.py handles (``hold_out_validation``), not the builder."""
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    assert cfg.pop("val_frac") == 0.0
    return cfg


def build_yaml(name: str, **override) -> Dataset:
    cfg = yaml_kwargs(DATA_DIR / f"{name}.yaml")
    cfg.update(override)
    return instantiate_component(cfg, "dataset", generator=gen())
