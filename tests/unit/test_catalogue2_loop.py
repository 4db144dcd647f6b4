"""Catalogue II in the training loop: FLTrust's root data is held out of the workers'
shards and its gradient is one extra row of the same pass (with label flipping it
keeps its true labels); FoolsGold learns which worker each permuted row is."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from byzbench import ConfigError
from byzbench.build import build_experiment
from byzbench.grads import loop_grads
from byzbench.loop import train
from byzbench.run import CONF_DIR

TINY = ["rounds=1", "eval_every=1", "cluster.n_workers=7", "cluster.byz_frac=0.3",
        "batch_size=8", "progress=false", "model.hidden=[16]"]


def cfg(*over):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, *over])


def test_fltrust_root_data_held_out_and_server_row_from_same_pass():
    exp, _ = build_experiment(cfg("agg=fltrust", "agg.server_data.size=50",
                                  "attack=label_flip"))
    s = exp.sampler
    assert s.has_server
    root = s.table[-1, : int(s.lens[-1])]
    assert len(root) == 50 and len(set(root.tolist())) == 50
    workers = torch.cat([s.table[i, : int(s.lens[i])] for i in range(len(s.lens) - 1)])
    assert not set(root.tolist()) & set(workers.tolist())  # held out of every shard
    assert len(root) + len(workers) == len(exp.data.y_train)  # and nothing else lost
    seen, idx_seen = [], []
    rule, sample = exp.pipeline.rule, s.sample
    observe = rule.observe

    def spy(side):
        seen.append((side.server_grad.clone(), side.worker_ids))
        observe(side)

    def spy_sample(rows):
        idx = sample(rows)
        idx_seen.append(idx)
        return idx

    rule.observe, s.sample = spy, spy_sample
    theta0 = exp.theta.detach().clone()
    train(exp)
    idx = idx_seen[0]
    n = exp.spec.n
    assert idx.shape[0] == n + 1  # label_flip is local: all n workers + the server row
    assert set(idx[-1].tolist()) <= set(root.tolist())
    X, Y = exp.data.prepare(exp.data.x_train[idx[-1:]]), exp.data.y_train[idx[-1:]]
    g_ref, _ = loop_grads(exp.model, theta0, X, Y)  # true labels: not flipped
    torch.testing.assert_close(seen[0][0], g_ref[0], rtol=1e-4, atol=1e-6)
    assert seen[0][1] is None and torch.equal(seen[1][0], seen[0][0])
    # FLTrust does not declare worker_ids: the round computes no row owners for it.
    assert seen[1][1] is None and exp.pipeline.needs == {"server_grad"}


def test_fltrust_without_root_data_is_a_one_line_error():
    with pytest.raises(ConfigError, match="agg.server_data") as e:
        build_experiment(cfg("agg=fltrust", "agg.server_data=null"))
    assert "\n" not in str(e.value)


def test_same_seed_same_root_and_no_server_row_without_fltrust():
    a, _ = build_experiment(cfg("agg=fltrust", "seed=3"))
    b, _ = build_experiment(cfg("agg=fltrust", "seed=3"))
    assert torch.equal(a.sampler.table, b.sampler.table)
    c, _ = build_experiment(cfg("agg=mean"))
    assert not c.sampler.has_server and c.sampler.sample(3).shape[0] == 3


def test_foolsgold_history_follows_workers_under_permutation():
    exp, _ = build_experiment(cfg("agg=foolsgold", "attack=sign_flip", "rounds=3"))
    rule = exp.pipeline.rule
    calls, observe, call = [], rule.observe, type(rule).__call__

    class Spy(type(rule)):
        def __call__(self, x):
            calls.append((x.clone(), self.worker_ids))
            return call(self, x)

    rule.__class__ = Spy
    train(exp)
    real = [(x, ids) for x, ids in calls if ids is not None]  # the server's calls
    assert len(real) == 3
    want = torch.zeros_like(rule.history)
    for x, ids in real:
        want[ids] += x  # row k of round t is worker ids[k]
    torch.testing.assert_close(rule.history, want)
    assert observe is not None
