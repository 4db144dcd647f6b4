"""Gossip mode end to end: the complete graph with the mean and no Byzantine node is
the parameter-server run, every rule and attack runs on a graph, bad configs are one
line."""

from __future__ import annotations

import csv

import pytest

from .conftest import TINY, compose_cfg

pytestmark = pytest.mark.usefixtures("one_thread")

GOSSIP = ["topology=gossip", "device=cpu"]


def _rows(path):
    with open(path) as fh:
        return [r for r in csv.DictReader(fh) if r["split"] != "time"]


def _run(tmp_path, name, *over):
    from byzbench.run import execute

    execute(compose_cfg(*TINY, "plot=false", "device=cpu", *over), tmp_path / name, {})
    return _rows(tmp_path / name / "metrics.csv")


def _series(rows, split, metric):
    return [float(r["value"]) for r in rows if r["split"] == split and r["metric"] == metric]


@pytest.mark.parametrize("solver", [["solver=sgd"], ["solver=sgd", "solver.momentum=0.9"]])
def test_complete_graph_mean_equals_parameter_server(tmp_path, solver):
    """Complete graph, uniform weights, the mean, no Byzantine node: every node holds
    the server's model, so the train loss per round and the average model's test
    metrics are the server run's (float rounding: the mean of the stepped rows vs
    the step of the mean gradient)."""
    common = ["cluster.byz_frac=0", "attack=none", "agg=mean", "rounds=6", *solver]
    ps = _run(tmp_path, "ps", *common)
    gs = _run(tmp_path, "gossip", *common, *GOSSIP, "topology.graph.name=complete",
              "topology.weights=uniform")
    for split, metric in [("train", "loss"), ("test", "loss"), ("test", "accuracy"),
                          ("train", "loss_full")]:
        a, b = _series(ps, split, metric), _series(gs, split, metric)
        assert len(a) == len(b) > 0
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6), (split, metric)
    cons = _series(gs, "train", "consensus")
    assert len(cons) == 6 and max(cons) < 1e-10
    # gossip_avg with uniform weights is the neighbourhood mean: the same run.
    ga = _run(tmp_path, "gavg", *common, *GOSSIP, "topology.graph.name=complete",
              "topology.weights=uniform", "agg=gossip/gossip_avg")
    assert _series(ga, "train", "loss") == pytest.approx(_series(gs, "train", "loss"),
                                                          rel=1e-6)
