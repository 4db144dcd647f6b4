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


def class_counts(y: torch.Tensor, shards, classes: int = 10) -> torch.Tensor:
    """``[n_workers, classes]`` label histogram of each shard."""
    return torch.stack([torch.bincount(y[s], minlength=classes) for s in shards])


def test_dirichlet_large_alpha_is_iid_like():
    # alpha = 1e5: proportions ~ 1/10 each, so each of 10 workers gets floor-cut runs of
    # ~100/10 = 10 samples of every class (9..11 after flooring the cumulative sums).
    y = labels()
    counts = class_counts(y, make(PART_DIR / "dirichlet.yaml", alpha=1e5)(y, 10, gen()))
    assert counts.min() >= 9 and counts.max() <= 11


def test_dirichlet_small_alpha_concentrates():
    y = labels()
    counts = class_counts(y, make(PART_DIR / "dirichlet.yaml", alpha=0.05)(y, 10, gen()))
    frac = counts / counts.sum(1, keepdim=True)
    # Under IID each worker's top class holds ~0.1-0.2 of its data; here most is one class.
    assert frac.max(1).values.mean() > 0.6
    iid = class_counts(y, make(PART_DIR / "iid.yaml")(y, 10, gen()))
    assert (iid / iid.sum(1, keepdim=True)).max(1).values.mean() < 0.25


def test_dirichlet_impossible_is_config_error():
    # min_size = 200 per worker with 10 workers needs 2000 samples; only 1000 exist.
    with pytest.raises(ConfigError, match="n_workers=10"):
        make(PART_DIR / "dirichlet.yaml", min_size=200)(labels(), 10, gen())
    # Feasible on size but redraws always fail at alpha = 0.01 with 50-sample minimum.
    with pytest.raises(ConfigError, match="partition.alpha"):
        make(PART_DIR / "dirichlet.yaml", alpha=0.01, min_size=50, max_tries=5)(
            labels(), 20, gen())


def test_gamma_zero_is_sorted_one_class_per_worker():
    # 10 classes x 100, 10 workers, gamma = 0: sorted labels cut into 10 runs of 100 ->
    # worker i holds exactly the 100 samples of class i.
    y = labels()
    counts = class_counts(y, make(PART_DIR / "gamma_similarity.yaml", gamma=0.0)(y, 10, gen()))
    assert torch.equal(counts, 100 * torch.eye(10, dtype=torch.long))


def test_gamma_one_is_iid_like_and_half_is_between():
    y = labels()
    skew = []
    for g in (1.0, 0.5, 0.0):
        c = class_counts(y, make(PART_DIR / "gamma_similarity.yaml", gamma=g)(y, 10, gen()))
        skew.append(float((c / c.sum(1, keepdim=True)).max(1).values.mean()))
    # gamma = 0.5: each worker's 50 sorted samples span one or two classes (~50 per
    # class remain after the IID draw), so its top class holds well over IID's ~0.15.
    assert skew[0] < 0.3 and 0.35 < skew[1] < 0.75 and skew[2] == 1.0


def test_gamma_sizes_balanced():
    # N = 1000, n = 7, gamma = 0.3: IID pool m = 300 = 7*42 + 6 dealt round-robin (workers
    # 0..5 get 43, worker 6 gets 42); sorted part 700 = 7*100 -> totals 143 x 6 and 142.
    shards = make(PART_DIR / "gamma_similarity.yaml", gamma=0.3)(labels(), 7, gen())
    assert [len(s) for s in shards] == [143] * 6 + [142]


def test_shards_one_per_worker_is_one_class_each():
    # 10 workers x 1 shard of the sorted 1000 labels -> shards of 100 = exactly one class,
    # and all 10 classes appear once.
    y = labels()
    counts = class_counts(y, make(PART_DIR / "shards.yaml", shards_per_worker=1)(y, 10, gen()))
    assert sorted(counts.max(1).values.tolist()) == [100] * 10
    assert torch.equal(counts.sum(0), torch.full((10,), 100))


def test_shards_two_per_worker_at_most_two_classes():
    # 5 workers x 2 shards = 10 shards of 100 (one class each): 200 samples, <= 2 classes.
    y = labels()
    shards = make(PART_DIR / "shards.yaml")(y, 5, gen())
    counts = class_counts(y, shards)
    assert [len(s) for s in shards] == [200] * 5
    assert ((counts > 0).sum(1) <= 2).all()
    assert ((counts == 100) | (counts == 0) | (counts == 200)).all()


def test_dirichlet_rejects_regression_targets():
    with pytest.raises(ConfigError, match="classification"):
        make(PART_DIR / "dirichlet.yaml")(torch.randn(100), 4, gen())


@pytest.mark.parametrize("name", ["shards", "gamma_similarity"])
def test_sorting_partitions_split_regression_targets_by_range(name):
    # Float targets are accepted and sorted like labels; shards must stay ranges.
    y = torch.randn(400, generator=gen(1))
    shards = make(PART_DIR / f"{name}.yaml")(y, 4, gen())
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(400))
    if name == "shards":
        # 4 workers x 2 shards of 50 sorted targets: within a shard values are contiguous
        # in sorted order, so each worker's values come from exactly 2 runs of the ranking.
        rank = torch.empty(400, dtype=torch.long)
        rank[torch.argsort(y)] = torch.arange(400)
        for s in shards:
            r = rank[s].sort().values
            assert int((r[1:] - r[:-1] != 1).sum()) <= 1
