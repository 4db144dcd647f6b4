"""byzbench.aggregators.fltrust: FLTrust by hand; the server's root data (held out, drawn,
checked) and its row computed in the same pass as the workers'."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.aggregators.fltrust import FLTrust, check_server_data, draw_root
from byzbench.build import build_experiment
from byzbench.grads import loop_grads
from byzbench.loop import train
from byzbench.stages import SideInputs

from .helpers import cfg


def test_fltrust_by_hand():
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0]], dtype=f64)
    rule = FLTrust(4, 1)
    rule.observe(SideInputs(server_grad=torch.tensor([1.0, 0.0], dtype=f64)))
    # trust: cos = 1, 0, -1 -> 0, 1/sqrt2; rows rescaled to ||g0|| = 1:
    # (1 * (1, 0) + (1/sqrt2) * (1/sqrt2, 1/sqrt2)) / (1 + 1/sqrt2)
    r = 1 / math.sqrt(2)
    want = torch.tensor([(1 + 0.5) / (1 + r), 0.5 / (1 + r)], dtype=f64)
    torch.testing.assert_close(rule(x), want)
    # coefficient of row i: TS_i ||g0|| / ||x_i|| / sum TS
    assert rule.last_weights.tolist() == pytest.approx(
        [0.5 / (1 + r), 0.0, 0.0, r / math.sqrt(2) / (1 + r)])
    # scale-free in the rows; proportional to the server's gradient
    torch.testing.assert_close(rule(1e4 * x), want)
    rule.observe(SideInputs(server_grad=torch.tensor([3.0, 0.0], dtype=f64)))
    torch.testing.assert_close(rule(x), 3 * want)
    # no positive trust: no step
    rule.observe(SideInputs(server_grad=torch.tensor([0.0, -1.0], dtype=f64)))
    assert torch.equal(rule(x[[0, 2]]), torch.zeros(2, dtype=f64))


def test_fltrust_server_data_checks_and_draws():
    assert check_server_data({"size": 5, "draw": "balanced"}) == {"size": 5, "draw": "balanced"}
    for bad, key in (({"size": 0}, "size"), ({"draw": "x"}, "draw"), ({"sz": 3}, "sz")):
        with pytest.raises(ConfigError, match=f"agg.server_data.{key}"):
            check_server_data(bad)
    y = torch.arange(40) % 4
    g = torch.Generator().manual_seed(0)
    idx = draw_root(y, {"size": 8, "draw": "balanced"}, 4, g)
    assert torch.bincount(y[idx], minlength=4).tolist() == [2, 2, 2, 2]
    assert len(set(idx.tolist())) == 8
    with pytest.raises(ConfigError, match="agg.server_data.size"):
        draw_root(y, {"size": 40, "draw": "uniform"}, 4, g)


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
