"""Decentralized (serverless) training on a graph: Byzantine-robust gossip.

Each honest node i holds its own parameters, a row of ``X [n_h, d]`` (honest nodes in
increasing id order), and its own solver state: the configured ``torch.optim`` over the
``[n_h, d]`` rows (elementwise solvers, e.g. SGD with momentum or Adam, are exact per
node). A round:

1. local step(s): ``U, losses = workers(X, draw)`` (the algorithm chosen with
   ``algorithm=``, one vectorized pass over the per-node rows, each node on its own
   shard), then ``X.grad = U; opt.step()``;
2. ``topology.gossip_steps`` times, robust gossip: every Byzantine node sends each of
   its honest neighbours its own vector (the attack, computed per recipient from the
   recipient's honest neighbourhood); node i aggregates its **neighbourhood problem**
   ``[m_i, d]`` (row 0: its own parameters, then what its neighbours sent, in
   increasing id order) with its per-node rule (``agg=``, built for ``n = m_i`` and
   the node's declared f). Nodes with the same (m_i, declared f) form one group: one
   batched call ``rule.batch(xs [k, m, d])`` per group, or a loop over the group's
   nodes for a rule without a batched path (each node then has its own instance and
   state).

Byzantine nodes hold no parameters. Under a ``local`` threat model (``attack=none``,
label flipping, ...) a Byzantine node's honest-protocol message is what an honest node
would send from the average of its honest neighbours: one SGD step of the solver's
learning rate on its own shard from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import ConfigError, require
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.gossip.base import GossipRule
from byzbench.config import ClusterSpec
from byzbench.topology.graphs import (
    Graph,
    attach,
    byzantine_nodes,
    connected,
    make_graph,
)
from byzbench.topology.weights import fiedler_vector, mixing_matrix

DECLARED_F = ("global", "byzantine_neighbours")


@dataclass
class Group:
    """Nodes with the same neighbourhood size m and declared f."""

    m: int
    f: int
    nodes: Tensor  # [k] honest indices
    idx: Tensor  # [k, m] rows of cat(X, messages) in node order
    pipelines: list[Pipeline]  # one per node (own state; attack queries)
    batch: Pipeline | None  # one for the whole group when every stage has a batched path
    byz_cols: Tensor  # [k, m] bool: the columns that came from a Byzantine neighbour


@dataclass
class AttackGroup:
    """Recipients whose Byzantine messages come from one attack call (``batch``: the
    attack's ``nodes`` over all of them; else one recipient, its ``__call__``)."""

    nodes: list[int]  # honest indices of the recipients
    batch: bool
    honest: Tensor  # [k, h] each recipient's honest rows (itself first)
    weights: Tensor  # [k, m] their mixing weights, honest-first order
    rows: Tensor  # [k * f] their rows of the message table, recipient by recipient


@dataclass
class Node:
    """One honest node's static neighbourhood (indices into the honest rows)."""

    honest: np.ndarray  # [h] itself first, then honest neighbours (honest indices)
    n_byz: int  # Byzantine neighbours
    byz_rank: np.ndarray  # [n_byz] their ranks among the Byzantine nodes (increasing id)
    order: Tensor  # [m] honest-first -> node order
    weights_hf: Tensor  # [m] mixing weights in honest-first order
    byz_weight: float
    f_declared: int


@dataclass(frozen=True)
class Builders:
    """What the build hands the gossip topology (so that it never imports the build):
    ``pipeline(m, f)`` a node's pipeline for m rows told f; ``attack(spec)`` an attack
    for one recipient's ``ClusterSpec``; ``solver(rows)`` the configured optimizer and
    scheduler over a parameter tensor; ``seed`` the placement's seed (stream byz_ids);
    the run's ``device``, ``worker_momentum`` and ``preagg`` config (for messages)."""

    pipeline: Callable[[int, int], Pipeline]
    attack: Callable[[ClusterSpec], Any]
    solver: Callable[[Tensor], tuple[Any, Any]]
    seed: int
    device: torch.device
    worker_momentum: float = 0.0
    preagg: Any = None


def _declared_f(mode: Any, f_global: int, f_node: int) -> int:
    if mode == "global":
        return f_global
    if mode == "byzantine_neighbours":
        return f_node
    return int(mode)


def _batchable(p: Pipeline) -> bool:
    """One batched call for a group: every stage declares a batched path and none
    declares state (a stateful rule keeps its own state per node: a loop)."""
    return p.supports_batch() and not any(s.state_keys for s in p.stages)


@dataclass
class Gossip:
    """``topology=gossip``: the graph, the Byzantine placement, the mixing weights and
    the per-node rules, built at build time; :meth:`train` runs the gossip rounds."""

    graph: Graph
    byz: np.ndarray
    W: np.ndarray
    gossip_steps: int
    declared_f: Any
    nodes: list[Node]
    groups: list[Group]
    n_msgs: int
    recv: list[tuple[int, int, int]]  # (honest index, first message row, count)
    fiedler: Tensor
    attacks: dict[int, Any]
    solver: Callable[[Tensor], tuple[Any, Any]]
    eval_nodes: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    # run state (set by start): the nodes' parameters [n_h, d], their solver, scheduler
    X: Tensor | None = None
    opt: Any = None
    sched: Any = None
    pending: dict[str, Any] | None = None  # a loaded state_dict, applied by start
    attack_groups: list[AttackGroup] = field(default_factory=list)

    @property
    def pipeline(self) -> Pipeline:
        """A representative per-node pipeline (the first honest node's)."""
        return self.groups[0].pipelines[0]

    def start(self, theta: Tensor) -> None:
        """Every honest node's parameters ``X [n_h, d]`` (all ``theta`` at round 0) and
        the configured solver over them; then any state loaded before (a resume)."""
        if self.X is None:
            self.X = theta.detach().unsqueeze(0).repeat(len(self.nodes), 1).requires_grad_(True)
            self.opt, self.sched = self.solver(self.X)
        pending, self.pending = self.pending, None
        if pending is not None:
            with torch.no_grad():
                self.X.copy_(pending["X"])
            self.opt.load_state_dict(pending["optimizer"])
            if self.sched is not None:
                self.sched.load_state_dict(pending["scheduler"])
            for g, gs in zip(self.groups, pending["groups"]):
                for pl, ps in zip(g.pipelines, gs["pipelines"]):
                    pl.load_state_dict(ps)
                if g.batch is not None and gs["batch"] is not None:
                    g.batch.load_state_dict(gs["batch"])
            for k, a in self.attacks.items():
                a.load_state_dict(pending["attacks"][str(k)])

    def state_dict(self) -> dict[str, Any]:
        """The run's gossip state (checkpoints): the nodes' parameters and solver state,
        every node pipeline's and per-recipient attack's declared state."""
        return {"X": self.X.detach(), "optimizer": self.opt.state_dict(),
                "scheduler": None if self.sched is None else self.sched.state_dict(),
                "groups": [{"pipelines": [p.state_dict() for p in g.pipelines],
                            "batch": None if g.batch is None else g.batch.state_dict()}
                           for g in self.groups],
                "attacks": {str(k): a.state_dict() for k, a in self.attacks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (applied by :meth:`start`, which has the solver)."""
        self.pending = state

    def train(self, exp: Any, start: Any = None, after_round: Any = None):
        from byzbench.topology.train import train_gossip

        return train_gossip(self, exp, start, after_round)


def build_gossip(node: dict, spec: ClusterSpec, b: Builders) -> Gossip:
    """The gossip topology of the ``topology`` config ``node`` (a plain dict) for
    ``spec.n`` nodes, ``spec.f`` Byzantine (one-line ConfigErrors naming ``topology.*``
    or the node a rule does not fit)."""
    t = dict(node)
    device = b.device
    t.pop("name", None)
    g = t.pop("graph", {}) or {}
    # topology.graph=<name> (a string) is short for topology.graph.name=<name>.
    gnode = {"name": g} if isinstance(g, str) else dict(g)
    gname = gnode.pop("name", "ring")
    gnode = {k: v for k, v in gnode.items() if v is not None}
    bnode = dict(t.pop("byzantine", {}) or {})
    weights = t.pop("weights", "metropolis")
    step = t.pop("step", None)
    gossip_steps = t.pop("gossip_steps", 1)
    declared = t.pop("declared_f", "global")
    allow = t.pop("allow_disconnected", False)
    eval_nodes = t.pop("eval_nodes", True)
    for k in t:
        raise ConfigError(f"topology.{k} is not a gossip topology key: allowed graph, "
                          "byzantine, weights, step, gossip_steps, declared_f, "
                          "allow_disconnected, eval_nodes")
    require(isinstance(gossip_steps, int) and gossip_steps >= 1, "topology.gossip_steps",
            gossip_steps, "an integer >= 1")
    require(declared in DECLARED_F or (isinstance(declared, int) and declared >= 0),
            "topology.declared_f", declared,
            "global, byzantine_neighbours or an integer bound b >= 0")
    require(spec.participation == 1.0, "cluster.participation", spec.participation,
            "1.0 with topology=gossip (every node takes part in every round)")
    require(b.worker_momentum == 0.0, "worker_momentum", b.worker_momentum,
            "0 with topology=gossip (each node's solver keeps its own momentum: solver.momentum)")
    n, f = spec.n, spec.f
    placement = bnode.pop("placement", "attached")
    ids = bnode.pop("ids", None)
    links = bnode.pop("links", 1)
    for k in bnode:
        raise ConfigError(f"topology.byzantine.{k} is not a key: allowed placement, ids, "
                          "links")
    if placement == "attached":
        try:
            graph = attach(make_graph(n - f, gname, **gnode), f, links)
        except ConfigError as e:
            raise ConfigError(f"{e} (topology.byzantine.placement=attached: the graph spans "
                              f"the n - f = {n - f} honest nodes)") from None
    else:
        graph = make_graph(n, gname, **gnode)
    byz = byzantine_nodes(graph, f, placement, ids, b.seed)
    honest = np.setdiff1d(np.arange(n), byz)
    adj = graph.adjacency
    if not allow:
        require(connected(adj[np.ix_(honest, honest)]), "topology.graph.name", gname,
                f"its honest subgraph (n={n}, Byzantine nodes {byz.tolist()}) is disconnected;"
                " set topology.allow_disconnected=true to run it anyway")
    W = mixing_matrix(graph, weights, step)
    pos = {int(v): k for k, v in enumerate(honest)}
    isbyz = np.zeros(n, dtype=bool)
    isbyz[byz] = True
    n_h = len(honest)
    # Message rows: one per (Byzantine neighbour, honest recipient), by recipient.
    recv, row = [], n_h
    nodes: list[Node] = []
    node_idx: list[np.ndarray] = []
    w_node: list[np.ndarray] = []
    for k, v in enumerate(honest):
        nb = graph.neighbours(int(v))
        hn = nb[~isbyz[nb]]
        bn = nb[isbyz[nb]]
        seq = np.concatenate([[v], nb])  # node order: itself, then neighbours by id
        hf = np.concatenate([[v], hn, bn])  # honest-first order
        order = torch.as_tensor([int(np.flatnonzero(hf == u)[0]) for u in seq])
        msg = {int(u): row + i for i, u in enumerate(bn)}
        node_idx.append(np.array([pos[int(u)] if not isbyz[u] else msg[int(u)] for u in seq]))
        if len(bn):
            recv.append((k, row - n_h, len(bn)))  # rows of the message table
        row += len(bn)
        w_row = W[v, seq]
        w_node.append(w_row)
        fd = _declared_f(declared, spec.f_declared, len(bn))
        top = np.sort(w_row[1:])[::-1][:fd]
        nodes.append(Node(honest=np.array([pos[int(u)] for u in [v, *hn]]), n_byz=len(bn),
                          byz_rank=np.searchsorted(byz, bn),
                          order=order, weights_hf=torch.as_tensor(W[v, hf]),
                          byz_weight=float(top.sum()), f_declared=fd))
    fied = torch.as_tensor(fiedler_vector(graph, honest))
    # Per-node rules, grouped by (m, declared f).
    keys: dict[tuple[int, int], list[int]] = {}
    for k, nd in enumerate(nodes):
        keys.setdefault((len(node_idx[k]), nd.f_declared), []).append(k)
    groups = []
    for (m, fd), members in sorted(keys.items()):
        def make(ks: list[int], m=m, fd=fd) -> Pipeline:
            try:
                p = b.pipeline(m, fd)
            except ConfigError as e:
                v = int(honest[ks[0]])
                raise ConfigError(f"{e} (topology=gossip: node {v} has {m - 1} neighbours, "
                                  f"its rule sees n={m} rows and is told f={fd})") from None
            require(p.rule.server_data is None, "agg.server_data", p.rule.server_data,
                    "none with topology=gossip (there is no server)")
            if isinstance(p.rule, GossipRule):
                rows = sum(1 for s in p.preaggs if s.n_out != m)
                require(rows == 0, "preagg", b.preagg,
                        "row-preserving pre-aggregators only before a gossip rule")
                w = torch.as_tensor(np.stack([w_node[k] for k in ks]), device=device)
                bw = torch.as_tensor([nodes[k].byz_weight for k in ks], device=device)
                p.rule.set_mixing(w, bw)
            return p

        pipes = [make([k]) for k in members]
        batch = make(members) if _batchable(pipes[0]) and len(members) > 1 else None
        if batch is None and _batchable(pipes[0]):
            batch = pipes[0]
        idx = torch.as_tensor(np.stack([node_idx[k] for k in members]), device=device)
        groups.append(Group(m=m, f=fd, nodes=torch.as_tensor(members, device=device),
                            idx=idx, pipelines=pipes, batch=batch, byz_cols=idx >= n_h))
    attacks = {}
    for k, _r0, cnt in recv:
        nd = nodes[k]
        node_spec = ClusterSpec(n=len(node_idx[k]), f=cnt, f_declared=nd.f_declared)
        attacks[k] = b.attack(node_spec)
    groups_a = attack_groups(recv, nodes, attacks, device)
    from byzbench.topology.weights import spectral_gap

    info = {"graph": gname, "byzantine_nodes": byz.tolist(), "weights": weights,
            "edges": int(len(graph.edges)), "spectral_gap": spectral_gap(W),
            "groups": len(groups), "byz_edges": int(row - n_h)}
    return Gossip(graph=graph, byz=byz, W=W, gossip_steps=gossip_steps, declared_f=declared,
                  nodes=nodes, groups=groups, n_msgs=row - n_h, recv=recv,
                  fiedler=fied.to(device), attacks=attacks, solver=b.solver,
                  eval_nodes=bool(eval_nodes), info=info, attack_groups=groups_a)


def attack_groups(recv: list[tuple[int, int, int]], nodes: list[Node], attacks: dict,
                  device: Any, batch: bool = True) -> list[AttackGroup]:
    """Recipients grouped for one attack call: those of equal (honest rows, Byzantine
    neighbours, declared f) whose attack declares ``batch_nodes`` and holds no state;
    every other recipient (all of them with ``batch=False``) is a group of its own
    (one call each)."""
    keys: dict[tuple, list[tuple[int, int, int]]] = {}
    for k, r0, cnt in recv:
        a = attacks[k]
        ok = batch and a.batch_nodes and not a.state_keys and not a.generator_keys
        key = (len(nodes[k].honest), cnt, nodes[k].f_declared) if ok else ("one", k)
        keys.setdefault(key, []).append((k, r0, cnt))
    out = []
    for key, members in keys.items():
        ks = [k for k, _, _ in members]
        rows = np.concatenate([np.arange(r0, r0 + cnt) for _, r0, cnt in members])
        out.append(AttackGroup(
            nodes=ks, batch=key[0] != "one",
            honest=torch.as_tensor(np.stack([nodes[k].honest for k in ks]), device=device),
            weights=torch.stack([nodes[k].weights_hf for k in ks]).to(device),
            rows=torch.as_tensor(rows, device=device)))
    return out


def build_topology(node: dict | None, spec: ClusterSpec, b: Builders) -> Gossip | None:
    """``topology=server`` (None: the parameter-server round of ``byzbench.loop``) or
    the gossip topology of ``node`` (the ``topology`` config as a plain dict)."""
    name = None if not node else node.get("name", "server")
    require(name in (None, "server", "gossip"), "topology.name", name, "server or gossip")
    if name in (None, "server"):
        return None
    return build_gossip(node, spec, b)
