"""Federated mode end to end: FedAvg with K = 1 equals DSGD on metrics.csv, partial
participation (attacks see only the sampled honest clients, counts logged), local
threat models run K local steps on their own data, every attack and rule runs."""

from __future__ import annotations

import csv

import pytest
import torch

from byzbench import ConfigError
from byzbench.algorithms.fedavg import FedAvg
from byzbench.build import build_experiment
from byzbench.loop import train

from .conftest import TINY, compose_cfg, conf_options
from .test_loop import Recorder

pytestmark = pytest.mark.usefixtures("one_thread")


FED = ["algorithm=fedavg", "algorithm.local_steps=3", "algorithm.client_lr=0.1", "solver.lr=1"]


def _rows(path, skip=("time",)):
    with open(path) as fh:
        return [r for r in csv.DictReader(fh) if r["split"] not in skip]


def _run(tmp_path, name, *over):
    from byzbench.run import execute

    execute(compose_cfg(*TINY, "plot=false", *over), tmp_path / name, {})
    return _rows(tmp_path / name / "metrics.csv")


@pytest.mark.parametrize("over", [
    ["attack=alie", "agg=median"],
    ["attack=label_flip", "agg=krum", "cluster.n_workers=9", "cluster.byz_frac=0.2",
     "worker_momentum=0.5"],
    ["attack=sign_flip", "agg=trmean", "preagg=[nnm]", "cluster.participation=0.6",
     "cluster.n_workers=10", "cluster.byz_frac=0.2"],
    # The server's FLTrust root-data row goes through the same workers function (FedAvg:
    # the server's own K local steps), with per-client momentum under participation.
    ["attack=label_flip", "agg=fltrust", "agg.server_data.size=40", "cluster.n_workers=10",
     "cluster.byz_frac=0.2", "cluster.participation=0.6", "worker_momentum=0.5",
     "worker_momentum_style=heavy_ball"],
    ["attack=alie", "agg=foolsgold", "cluster.byz_data=none", "cluster.n_workers=10",
     "cluster.byz_frac=0.2", "cluster.participation=0.6", "worker_momentum=0.5"],
])
def test_k1_fedavg_equals_dsgd_bit_for_bit(tmp_path, over):
    """K = 1, client_lr = eta = 1/8, server SGD lr 1 vs DSGD with lr 1/8: the same
    metrics.csv (the aggregate is scaled by eta, exact for a power of two, so agg_error
    and agg_norm are compared times eta)."""
    d = _run(tmp_path, "dsgd", *over, "solver.lr=0.125")
    fa = _run(tmp_path, "fedavg", *over, "algorithm=fedavg", "algorithm.local_steps=1",
              "algorithm.client_lr=0.125", "solver.lr=1")
    assert [(r["round"], r["metric"]) for r in d] == [(r["round"], r["metric"]) for r in fa]
    for a, b in zip(d, fa):
        va, vb = float(a["value"]), float(b["value"])
        if a["metric"] in ("agg_error", "agg_norm"):
            va *= 0.125
        assert va == vb, (a, b)


def test_k1_fedavg_matches_dsgd_closely_for_any_lr(tmp_path):
    """eta = 0.1 is not exact in binary: eta * mean(g) and mean(eta * g) differ in the
    last bit, which the next rounds carry; agreement to float32 rounding (1e-5)."""
    d = _run(tmp_path, "dsgd", "attack=alie", "agg=median", "solver.lr=0.1")
    fa = _run(tmp_path, "fedavg", "attack=alie", "agg=median", "algorithm=fedavg",
              "algorithm.local_steps=1", "algorithm.client_lr=0.1", "solver.lr=1")
    for a, b in zip(d, fa):
        if a["metric"] not in ("agg_error", "agg_norm"):
            assert float(b["value"]) == pytest.approx(float(a["value"]), rel=1e-5), (a, b)


class Spy(Recorder):
    """test_loop's Recorder, also keeping the client ids of every draw."""

    def __init__(self, exp):
        self.ids = []
        super().__init__(exp)

    def _sample(self, ids):
        self.ids.append(ids.clone())
        return super()._sample(ids)


@pytest.mark.parametrize("mode", ["sampled", "fixed"])
def test_partial_participation_rounds(mode):
    over = [*TINY, *FED, "cluster.n_workers=12", "cluster.byz_frac=0.25", "rounds=8",
            "cluster.participation=0.5", f"cluster.byz_per_round={mode}", "attack=alie",
            "agg=median"]
    exp, info = build_experiment(compose_cfg(*over))
    assert info["clients_per_round"] == 6 and exp.spec.f_declared_round == 2
    spy = Spy(exp)
    train(exp)
    exp.log.flush()
    logged = {m: [v for _, s, mm, v in exp.log.rows if mm == m] for m in ("clients_honest",
                                                                          "clients_byz")}
    assert len(spy.calls) == sum(1 for v in logged["clients_byz"] if v > 0)
    draws = spy.ids[::3]  # K = 3 draws per round, the same clients
    assert all(torch.equal(a, b) for a, b in zip(spy.ids[::3], spy.ids[1::3]))
    hon = [int(v) for v in logged["clients_honest"]]
    byz = [int(v) for v in logged["clients_byz"]]
    assert [len(i) for i in draws] == hon and all(h + b == 6 for h, b in zip(hon, byz))
    assert all((i < 9).all() for i in draws)  # omniscient attack: only honest clients compute
    if mode == "fixed":
        assert set(byz) == {2}
    else:
        assert len(set(byz)) > 1 or len(byz) < 3
    calls = iter(spy.calls)
    for h, b in zip(hon, byz):
        if b:
            honest, ctx, out = next(calls)
            assert honest.shape[0] == h and ctx.n == 6 and ctx.f == b and out.shape[0] == b
            assert ctx.f_declared == 2


def test_same_seed_same_sample_other_seed_other_sample():
    def ids(seed):
        exp, _ = build_experiment(compose_cfg(*TINY, *FED, "cluster.participation=0.6",
                                              f"seed={seed}", "attack=sign_flip"))
        spy = Spy(exp)
        train(exp)
        return torch.cat(spy.ids)

    assert torch.equal(ids(0), ids(0)) and not torch.equal(ids(0), ids(1))


@pytest.mark.parametrize("attack", ["label_flip", "bit_flip"])
def test_local_attacks_run_k_local_steps_on_their_own_data(attack):
    """Byzantine clients run the same K local steps on their own shards (labels
    flipped for label_flip): replay the recorded minibatches through a per-client
    autograd loop (grad_path=loop)."""
    K = 3
    exp, _ = build_experiment(compose_cfg(*TINY, *FED, f"attack={attack}", "rounds=1",
                                          "cluster.participation=0.75"))
    theta0 = exp.theta.detach().clone()
    spy = Spy(exp)
    train(exp)
    ((honest, ctx, out),) = spy.calls
    n_h = honest.shape[0]
    assert len(spy.idx) == K and spy.idx[0].shape[0] == n_h + ctx.f and ctx.f > 0
    C = exp.data.num_classes
    batches = []
    for idx in spy.idx:
        Y = exp.data.y_train[idx]
        if attack == "label_flip":
            Y = torch.cat([Y[:n_h], (C - 1) - Y[n_h:]])
        batches.append((exp.data.prepare(exp.data.x_train[idx]), Y))
    it = iter(batches)
    U, _ = FedAvg(exp.model, local_steps=K, client_lr=0.1, grad_path="loop")(
        theta0, lambda: next(it))
    torch.testing.assert_close(honest, U[:n_h], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ctx.byz_grads, U[n_h:], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out, U[n_h:] if attack == "label_flip" else -U[n_h:],
                               rtol=1e-4, atol=1e-6)
    if attack == "label_flip":  # and flipping changed them
        it = iter([(X, exp.data.y_train[i]) for (X, _), i in zip(batches, spy.idx)])
        U_true, _ = FedAvg(exp.model, local_steps=K, client_lr=0.1, grad_path="loop")(
            theta0, lambda: next(it))
        assert not torch.allclose(U_true[n_h:], U[n_h:])


FAST = [*TINY, "rounds=2", "eval_every=2", "eval_train=false", "algorithm=fedavg",
        "algorithm.local_steps=2", "solver.lr=1", "cluster.n_workers=14",
        "cluster.byz_frac=0.15", "cluster.participation=0.75"]


@pytest.mark.parametrize("over", [
    ["agg=fltrust", "agg.server_data.size=40", "attack=label_flip", "worker_momentum=0.9"],
    ["cluster.byz_data=none", "attack=ipm", "agg=foolsgold", "cluster.byz_per_round=fixed"],
    ["cluster.byz_data=iid", "attack=alie_local", "worker_momentum=0.5",
     "worker_momentum_style=heavy_ball"],
])
def test_main_data_options_with_fedavg_and_participation(over):
    """main's data options (FLTrust root row, byz_data none / iid, momentum styles) with
    FedAvg's local steps and partial participation: finite training, round sizes kept."""
    exp, info = build_experiment(compose_cfg(*FAST, *over))
    res = train(exp)
    assert res.status == "ok" and res.rounds_done == 2, over
    hon = exp.log.last("train", "clients_honest")
    byz = exp.log.last("train", "clients_byz")
    assert hon + byz == info["clients_per_round"] == 10


@pytest.mark.parametrize("group", ["attack", "agg", "preagg"])
def test_every_option_runs_in_fedavg_mode(group):
    """Each attack, rule and pre-aggregator trains two FedAvg rounds with partial
    participation (m = 10 of 14, f = 2; the round's f varies), or refuses in one line.
    One experiment per group; the option's component is rebuilt into it."""
    from omegaconf import OmegaConf

    from byzbench.build import build_attack, build_round_pipeline, make_generator

    cfg = compose_cfg(*FAST)
    exp, info = build_experiment(cfg)
    assert info["clients_per_round"] == 10
    theta0 = exp.theta.detach().clone()
    for path in conf_options(group):
        node = OmegaConf.load(path)
        cfg[group] = {path.stem: node} if group == "preagg" else node
        try:
            if group == "attack":
                exp.attack = build_attack(cfg.attack, exp.spec, exp.data.num_classes, exp.data)
            else:
                exp.pipeline = build_round_pipeline(cfg, exp.spec, make_generator(0, "agg"))
                exp.log = type(exp.log)()
        except ConfigError as e:
            assert "\n" not in str(e), (path.stem, e)
            continue
        with torch.no_grad():
            exp.theta.copy_(theta0)
        res = train(exp)
        assert res.rounds_done >= 1 and res.status in ("ok", "diverged"), path.stem


def test_done_when_command_writes_three_files(tmp_path):
    from byzbench.run import execute

    cfg = compose_cfg("algorithm=fedavg", "algorithm.local_steps=5", "cluster.participation=0.5",
                      "attack=alie", "agg=median", "rounds=3", "eval_every=3", "progress=false")
    s = execute(cfg, tmp_path, {"algorithm": "fedavg"})
    assert s["status"] == "ok" and s["clients_per_round"] == 10
    for f in ("metrics.csv", "summary.json", "convergence.png"):
        assert (tmp_path / f).is_file()
    metrics = {r["metric"] for r in _rows(tmp_path / "metrics.csv")}
    assert {"clients_honest", "clients_byz", "loss", "accuracy"} <= metrics
