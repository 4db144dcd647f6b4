"""Cluster sizes, shard assignment and the vectorized batch sampler."""

from __future__ import annotations

import pytest
import torch

from byzbench import ConfigError
from byzbench.cluster import BatchSampler, assign_shards, label_skew
from byzbench.config import cluster_spec


@pytest.mark.parametrize(("n", "frac", "f"), [(20, 0.2, 4), (10, 0.0, 0), (7, 0.3, 2), (1, 0.0, 0),
                                              (25, 0.2, 5), (10, 0.45, 4)])
def test_f_from_fraction(n, frac, f):
    s = cluster_spec(n, frac)
    assert (s.n, s.f, s.f_declared, s.n_honest) == (n, f, f, n - f)


def test_f_declared_override():
    assert cluster_spec(20, 0.2, 2).f_declared == 2


@pytest.mark.parametrize(("args", "param"), [((0, 0.2), "cluster.n_workers"),
                                             ((10, 1.0), "cluster.byz_frac"),
                                             ((10, -0.1), "cluster.byz_frac"),
                                             ((10, 0.2, 10), "cluster.f_declared"),
                                             ((10, 0.2, -1), "cluster.f_declared")])
def test_bad_cluster_is_one_line_error(args, param):
    with pytest.raises(ConfigError) as e:
        cluster_spec(*args)
    msg = str(e.value)
    assert msg.startswith(param) and "\n" not in msg


def test_assign_shards_puts_byzantine_last():
    shards = [torch.tensor([i]) for i in range(6)]
    g = torch.Generator().manual_seed(0)
    out = assign_shards(shards, 6, 2, g)
    assert sorted(int(s) for s in out) == list(range(6))
    byz = {int(s) for s in out[4:]}
    order = torch.randperm(6, generator=torch.Generator().manual_seed(0))[:2].tolist()
    assert byz == set(order)


def test_sampler_draws_only_from_own_shard():
    shards = [torch.arange(0, 3), torch.arange(10, 20), torch.arange(100, 101)]
    s = BatchSampler(shards, 50, torch.device("cpu"), torch.Generator().manual_seed(0))
    idx = s.sample(3)
    assert idx.shape == (3, 50)
    assert set(idx[0].tolist()) == {0, 1, 2}
    assert set(idx[1].tolist()) <= set(range(10, 20)) and len(set(idx[1].tolist())) > 5
    assert set(idx[2].tolist()) == {100}
    assert s.sample(2).shape == (2, 50)


def test_label_skew_bounds():
    y = torch.tensor([0, 0, 1, 1])
    assert label_skew(y, [torch.tensor([0, 2]), torch.tensor([1, 3])], 2) == 0.0
    # each worker holds one class: TV(onehot, uniform) = 0.5
    assert label_skew(y, [torch.tensor([0, 1]), torch.tensor([2, 3])], 2) == pytest.approx(0.5)
