"""Loop conventions of the published code bases as options: worker momentum style
(ema | heavy_ball) and the data of Byzantine workers (shard | iid | none)."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench import ConfigError
from byzbench.cluster import worker_shards
from byzbench.data.iid import IID
from byzbench.data.sorted_labels import SortedLabels
from byzbench.loop import momentum_step


def test_momentum_styles_on_a_hand_computed_sequence():
    # g = 1, 2, 4 with beta = 0.5:
    # ema:        m1 = 0.5*1 = 0.5; m2 = 0.5*0.5 + 0.5*2 = 1.25; m3 = 0.5*1.25 + 0.5*4 = 2.625
    # heavy_ball: m1 = 1;          m2 = 0.5*1 + 2 = 2.5;         m3 = 0.5*2.5 + 4 = 5.25
    expected = {"ema": [0.5, 1.25, 2.625], "heavy_ball": [1.0, 2.5, 5.25]}
    for style, want in expected.items():
        m = None
        for g, w in zip((1.0, 2.0, 4.0), want):
            m = momentum_step(m, torch.tensor([[g, -g]]), 0.5, style)
            assert torch.equal(m, torch.tensor([[w, -w]])), style


def test_heavy_ball_is_ema_over_one_minus_beta():
    torch.manual_seed(0)
    gs = torch.randn(6, 3, 4, dtype=torch.float64)
    ema = hb = None
    for g in gs:
        ema, hb = momentum_step(ema, g, 0.9), momentum_step(hb, g, 0.9, "heavy_ball")
        assert torch.allclose(hb, ema / (1 - 0.9), rtol=1e-12)


def _published_sorted_split(labels: list[int], n_good: int, noniid: bool, beta: float):
    """epfml NONIIDLTSampler.__iter__ (codes/sampler.py) written out independently:
    per class in dataset order, keep floor(len * beta**c), pad with the first indices,
    then rank r takes [r*m, (r+1)*m) (non-IID) or r::n_good (IID)."""
    indices: list[int] = []
    for c in range(10):
        idx = [i for i, y in enumerate(labels) if y == c]
        indices += idx[: int(len(idx) * beta**c)]
    m = int(math.ceil(len(indices) / n_good))
    indices += indices[: m * n_good - len(indices)]
    if noniid:
        return [indices[r * m:(r + 1) * m] for r in range(n_good)]
    return [indices[r:m * n_good:n_good] for r in range(n_good)]


def _mnist_like_labels() -> torch.Tensor:
    # Unequal class sizes (as MNIST), shuffled: 103 + 7c samples of class c (1345 total).
    y = torch.cat([torch.full((103 + 7 * c,), c) for c in range(10)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]


def _gens():
    return torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)


@pytest.mark.parametrize("noniid, beta", [(True, 1.0), (False, 0.5), (True, 0.5)])
def test_byz_data_iid_gives_the_published_honest_split(noniid, beta):
    """n = 25, f = 5, byz_data=iid: the 20 honest workers hold exactly the published
    sampler's pieces (same indices, so the same label sets), Byzantine worker j holds
    piece j mod 20 of an IID split of the whole training set."""
    y = _mnist_like_labels()
    part = SortedLabels(noniid=noniid, long_tail=beta, pad=True, shuffle=False)
    shards = worker_shards(part, y, 25, 5, "iid", *_gens())
    assert len(shards) == 25
    ref = _published_sorted_split(y.tolist(), 20, noniid, beta)
    for r in range(20):
        assert sorted(shards[r].tolist()) == sorted(ref[r])
        assert set(y[shards[r]].tolist()) == {y[i].item() for i in ref[r]}
    if noniid and beta == 1.0:
        # Sorted split: each honest worker holds one or two (adjacent) classes.
        assert all(len(set(y[s].tolist())) <= 2 for s in shards[:20])
    pieces = IID()(y, 20, _gens()[1])
    for j in range(5):
        assert torch.equal(shards[20 + j], pieces[j])
        assert len(set(y[shards[20 + j]].tolist())) >= 8  # IID: (nearly) every class


def test_byz_data_none_and_shard():
    y = _mnist_like_labels()
    part = SortedLabels(pad=True, shuffle=False)
    none = worker_shards(part, y, 25, 5, "none", *_gens())
    assert len(none) == 20
    assert all(torch.equal(a, b) for a, b in zip(none, worker_shards(part, y, 25, 5, "iid",
                                                                      *_gens())[:20]))
    # shard: the partition is over all 25 workers, 5 of them chosen as Byzantine.
    shard = worker_shards(part, y, 25, 5, "shard", *_gens())
    assert len(shard) == 25
    full = part(y, 25, _gens()[0])
    assert sorted(map(tuple, (s.tolist() for s in shard))) == sorted(
        map(tuple, (s.tolist() for s in full)))


def test_byz_data_none_refuses_local_attacks_in_one_line():
    from byzbench.build import build_experiment
    from tests.integration.conftest import compose_cfg

    cfg = compose_cfg("cluster.byz_data=none", "attack=label_flip", "cluster.n_workers=5",
                      "cluster.byz_frac=0.2")
    with pytest.raises(ConfigError, match="byz_data='none'") as e:
        build_experiment(cfg)
    assert "\n" not in str(e.value)
    exp, info = build_experiment(compose_cfg("cluster.byz_data=none", "attack=sign_flip",
                                             "cluster.n_workers=5", "cluster.byz_frac=0.2",
                                             "worker_momentum=0.9",
                                             "worker_momentum_style=heavy_ball"))
    assert exp.sampler.table.shape[0] == 4 and info["f"] == 1
    assert exp.momentum.style == "heavy_ball" and exp.momentum.beta == 0.9


@pytest.mark.parametrize("key, value", [("worker_momentum_style", "nesterov"),
                                        ("cluster.byz_data", "half")])
def test_bad_convention_is_one_line_config_error(key, value):
    from byzbench.build import build_experiment
    from tests.integration.conftest import compose_cfg

    with pytest.raises(ConfigError, match=key) as e:
        build_experiment(compose_cfg(f"{key}={value}"))
    assert "\n" not in str(e.value)


def test_dropout_model_same_seed_same_numbers():
    """epfml_cnn trains with dropout (per-worker masks from the seeded dropout stream):
    two runs with the same seed give identical metrics."""
    from byzbench.build import build_experiment
    from byzbench.loop import train
    from tests.integration.conftest import compose_cfg

    def run(seed: int) -> dict[str, float]:
        cfg = compose_cfg("model=epfml_cnn", "dataset.flatten=false", "rounds=2",
                          "eval_every=2", "cluster.n_workers=3", "cluster.byz_frac=0.0",
                          "batch_size=4", "progress=false", f"seed={seed}",
                          "worker_momentum=0.5", "worker_momentum_style=heavy_ball")
        exp, _ = build_experiment(cfg)
        return train(exp).final

    assert run(0) == run(0)
