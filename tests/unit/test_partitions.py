"""Partitions: every conf/partition YAML gives disjoint, complete, non-empty shards,
deterministic in the generator; plus each option's defining property."""

from __future__ import annotations

import pathlib

import pytest
import torch
from omegaconf import OmegaConf

import byzbench
from byzbench import ConfigError
from byzbench.build import instantiate_component

PART_DIR = pathlib.Path(byzbench.__file__).parent / "conf" / "partition"
YAMLS = sorted(PART_DIR.glob("*.yaml"))


def make(path: pathlib.Path, **override):
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    cfg.update(override)
    return instantiate_component(cfg, "partition")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def labels(n_per_class: int = 100, classes: int = 10) -> torch.Tensor:
    # Shuffled so a partition cannot rely on the input being sorted.
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return y[torch.randperm(len(y), generator=gen(123))]


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
@pytest.mark.parametrize("n_workers", [1, 7, 20])
def test_disjoint_complete_nonempty(path, n_workers):
    y = labels()
    shards = make(path)(y, n_workers, gen())
    assert len(shards) == n_workers
    assert all(s.dtype == torch.long and s.ndim == 1 and len(s) >= 1 for s in shards)
    allidx = torch.cat(shards)
    assert torch.equal(allidx.sort().values, torch.arange(len(y)))  # disjoint + complete


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_same_generator_same_shards(path):
    y = labels()
    a = make(path)(y, 10, gen(5))
    b = make(path)(y, 10, gen(5))
    c = make(path)(y, 10, gen(6))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert not all(torch.equal(s, t) for s, t in zip(a, c))


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_too_many_workers_is_one_line_config_error(path):
    with pytest.raises(ConfigError) as e:
        make(path)(labels(1, 10), 11, gen())
    assert "\n" not in str(e.value)


def test_iid_sizes_balanced():
    # N = 1000 over 7 workers: 1000 = 7 * 142 + 6 -> sizes 142 or 143, six of 143.
    sizes = sorted(len(s) for s in make(PART_DIR / "iid.yaml")(labels(), 7, gen()))
    assert sizes == [142] + [143] * 6
