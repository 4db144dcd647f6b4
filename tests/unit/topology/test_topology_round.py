"""The gossip round's pieces: per-recipient Byzantine messages (one per Byzantine ->
honest edge, computed from the recipient's honest neighbourhood), the batched group
call equal to the per-node loop, dissensus and the topology-aware directions by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from byzbench import ConfigError
from byzbench.attacks.gossip.dissensus import Dissensus
from byzbench.attacks.gossip.spectral import TopologyAware
from byzbench.build import build_experiment
from byzbench.run import CONF_DIR
from byzbench.topology.context import NodeContext
from byzbench.topology.gossip import attack_groups
from byzbench.topology.train import gossip_round

BASE = ["device=cpu", "progress=false", "model.hidden=[8]", "topology=gossip",
        "cluster.n_workers=12", "cluster.byz_frac=0.25", "topology.graph.name=erdos_renyi",
        "topology.graph.p=0.6", "topology.declared_f=byzantine_neighbours", "grad_path=vmap"]


def _topology(*over):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*BASE, *over])
    exp, _ = build_experiment(cfg)
    topo = exp.topology
    topo.node_pipeline = {int(k): p for g in topo.groups
                          for k, p in zip(g.nodes.tolist(), g.pipelines)}
    topo.honest_ids = np.setdiff1d(np.arange(topo.graph.n), topo.byz)
    return exp, topo


def _X(topo, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(topo.nodes), d, generator=g, dtype=torch.float64)


def test_messages_one_per_byzantine_edge_from_the_recipients_neighbourhood():
    exp, topo = _topology("attack=alie", "agg=mean")
    adj = topo.graph.adjacency
    n_edges = int(adj[np.ix_(topo.byz, topo.honest_ids)].sum())
    assert topo.n_msgs == n_edges > 0
    assert sum(c for _, _, c in topo.recv) == n_edges
    X = _X(topo)
    seen = {}

    def spy(k, attack):
        def call(honest, ctx):
            out = attack(honest, ctx)
            assert isinstance(ctx, NodeContext) and ctx.node == k
            nd = topo.nodes[k]
            assert torch.equal(honest, X[torch.as_tensor(nd.honest)])  # own row first
            assert out.shape == (nd.n_byz, X.shape[1]) and ctx.n == len(nd.order)
            seen[k] = out
            return out
        return call

    topo.attacks = {k: spy(k, a) for k, a in topo.attacks.items()}
    topo.attack_groups = attack_groups(topo.recv, topo.nodes, topo.attacks, "cpu", batch=False)
    gossip_round(topo, X, 0, exp, None, None, 0)
    assert sorted(seen) == sorted(k for k, _, _ in topo.recv)
    vecs = [v[0] for v in seen.values()]
    assert any(not torch.allclose(vecs[0], v) for v in vecs[1:])  # per recipient


@pytest.mark.parametrize("agg", ["trmean", "median", "cs_plus_rg", "ios",
                                 "clipped_gossip", "bridge"])
def test_batched_groups_equal_the_per_node_loop(agg):
    exp, topo = _topology("attack=dissensus", f"agg={agg}")
    X = _X(topo)
    batched = gossip_round(topo, X, 0, exp, None, None, 0)
    assert any(g.batch is not None for g in topo.groups)
    for g in topo.groups:
        g.batch = None
    looped = gossip_round(topo, X, 0, exp, None, None, 0)
    assert torch.allclose(batched, looped, rtol=1e-12, atol=1e-12)


def test_node_rows_are_own_row_then_neighbours_by_id():
    exp, topo = _topology("attack=none", "agg=mean", "cluster.byz_frac=0")
    X = _X(topo)
    out = gossip_round(topo, X, 0, exp, None, None, 0)
    adj = topo.graph.adjacency
    for i in range(len(X)):
        nb = np.flatnonzero(adj[i])
        assert torch.allclose(out[i], X[np.concatenate([[i], nb])].mean(0))


def _ctx(honest, weights, f, **kw):
    m = len(weights)
    return NodeContext(t=0, n=m, f=f, f_declared=f, weights=torch.as_tensor(weights),
                       order=torch.arange(m), **kw)


def test_dissensus_by_hand():
    # Node 0 at 0 with honest neighbours at 1 and 3 (weights 0.25 each), one Byzantine
    # neighbour of weight 0.25: v = (0.25 + 0.75) / 0.25 = 4, z = 0 - 1.5 * 4 = -6.
    honest = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    z = Dissensus(1.5)(honest, _ctx(honest, [0.25, 0.25, 0.25, 0.25], 1))
    assert z.tolist() == [[-6.0]]
    # Plain gossip then moves node 0 by (1 - eps) * sum_j W_ij (x_j - x_i) = -0.5.
    x = torch.cat([honest, z])
    assert (torch.tensor([0.25] * 4, dtype=torch.float64) @ x).item() == pytest.approx(-0.5)
    from byzbench.attacks.base import RoundContext

    with pytest.raises(ConfigError, match="topology=server"):
        Dissensus()(honest, RoundContext(t=0, n=4, f=1, f_declared=1))


def test_topology_aware_directions_by_hand():
    honest = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    allx = torch.tensor([[0.0], [1.0], [3.0], [5.0]], dtype=torch.float64)
    u = torch.tensor([0.5, 0.5, -0.5, -0.5], dtype=torch.float64)
    ctx = _ctx(honest, [0.25] * 4, 2, node=0, honest_all=allx, fiedler=u)
    lap = TopologyAware("laplacian", scale=2.0)(honest, ctx)
    assert lap.tolist() == [[-8.0], [-8.0]]  # 0 + 2 * ((0 - 1) + (0 - 3))
    spec = TopologyAware("fiedler", scale=1.0)(honest, ctx)
    assert spec.tolist() == [[-1.75], [-1.75]]  # u_0 * u^T x = 0.5 * (0.5 - 4)


GRAPHS = {"complete": ["topology.graph.name=complete", "topology.graph.p=null"],
          "erdos_renyi_random": ["topology.byzantine.placement=random", "seed=1"]}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("attack", ["alie", "ipm", "sign_flip", "dissensus"])
def test_batched_recipients_equal_the_per_recipient_loop(attack, dtype, graph):
    """Attacks that declare ``batch_nodes`` are called once per group of recipients of
    equal shape: the messages equal the per-recipient calls bit for bit, and there are
    fewer calls than recipients."""
    exp, topo = _topology(f"attack={attack}", "agg=clipped_gossip", *GRAPHS[graph])
    X = _X(topo, d=300).to(dtype)
    batched = [g for g in topo.attack_groups if g.batch]
    assert batched and sum(len(g.nodes) for g in topo.attack_groups) == len(topo.recv)
    assert len(topo.attack_groups) < len(topo.recv)
    out = gossip_round(topo, X, 0, exp, None, None, 0)
    topo.attack_groups = attack_groups(topo.recv, topo.nodes, topo.attacks, "cpu", batch=False)
    assert torch.equal(out, gossip_round(topo, X, 0, exp, None, None, 0))
