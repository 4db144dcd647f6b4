"""The gossip training loop (``topology=gossip``; see ``byzbench.topology.gossip``)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import host
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.gossip.base import GossipRule
from byzbench.topology.context import NodeContext


def _call_batch(p: Pipeline, xs: Tensor) -> Tensor:
    """The real (state-updating) batched call ``[k, m, d] -> [k, d]``."""
    for s in p.preaggs:
        xs = s.batch(xs)
    return p.rule.batch(xs)


def _byz_share(p: Pipeline, byz_cols: Tensor, batched: bool) -> Tensor | None:
    """``[k]`` the fraction of output weight on Byzantine rows, where the rule exposes
    weights (gossip rules: ``last_node_weights``; server rules: ``row_weights``)."""
    if batched:
        c = p.rule.last_node_weights if isinstance(p.rule, GossipRule) else None
    else:
        w = p.row_weights(byz_cols.shape[1])
        c = None if w is None else w.unsqueeze(0)
    if c is None:
        return None
    c = c.to(torch.float64)
    return (c * byz_cols).sum(1) / c.abs().sum(1).clamp_min(1e-30)


def gossip_round(topo: Any, X: Tensor, t: int, exp: Any, prev: Tensor | None,
                 byz_own: Tensor | None, query_seed: int,
                 weights_out: list[Tensor] | None = None) -> Tensor:
    """One communication step ``X [n_h, d] -> [n_h, d]``: the Byzantine messages of
    every (Byzantine neighbour, honest recipient) edge, then every node's rule on its
    neighbourhood, one batched call per group of equal (m, declared f)."""
    n_h, d = X.shape
    M = X.new_zeros((topo.n_msgs, d))
    server_randomness = exp.attack.server_randomness
    for grp in topo.attack_groups:
        k = grp.nodes[0]
        nd = topo.nodes[k]
        cnt = len(grp.rows) // len(grp.nodes)
        own = None if byz_own is None else byz_own[torch.as_tensor(nd.byz_rank,
                                                                   device=X.device)]
        ctx = NodeContext(t=t, n=len(nd.order), f=cnt, f_declared=nd.f_declared,
                          pipeline=topo.node_pipeline[k],
                          prev_aggregate=None if prev is None or grp.batch else prev[k],
                          byz_grads=own, generator=exp.attack_gen, perm=None,
                          server_randomness=server_randomness, query_seed=query_seed,
                          order=nd.order.to(X.device),
                          weights=(grp.weights if grp.batch else grp.weights[0]).to(X),
                          byz_weight=nd.byz_weight, node=k, honest_all=X,
                          fiedler=topo.fiedler.to(X))
        H = X[grp.honest]  # [k, h, d]
        B = topo.attacks[k].nodes(H, ctx) if grp.batch else topo.attacks[k](H[0], ctx)
        want = (len(grp.nodes), cnt, d) if grp.batch else (cnt, d)
        if B.shape != want:
            raise RuntimeError(f"attack returned shape {tuple(B.shape)} for node "
                               f"{int(topo.honest_ids[k])}, expected {want}")
        M[grp.rows] = B.reshape(-1, d).to(X.dtype)
    T = torch.cat([X, M])
    out = torch.empty_like(X)
    for g in topo.groups:
        xs = T[g.idx]
        if g.batch is not None:
            out[g.nodes] = _call_batch(g.batch, xs).to(X.dtype)
            share = _byz_share(g.batch, g.byz_cols, True) if weights_out is not None else None
        else:
            res, shares = [], []
            for j, p in enumerate(g.pipelines):
                res.append(p(xs[j]))
                if weights_out is not None:
                    shares.append(_byz_share(p, g.byz_cols[j:j + 1], False))
            out[g.nodes] = torch.stack(res).to(X.dtype)
            share = None if not shares or any(s is None for s in shares) else torch.cat(shares)
        if weights_out is not None and share is not None:
            has = g.byz_cols.any(1)
            if has.any():
                weights_out.append(share[has])
    return out


def train_gossip(topo: Any, exp: Any, start: Any = None, after_round: Any = None):
    """Run gossip rounds ``start.t .. exp.rounds - 1`` (local step(s), then ``gossip_steps``
    communication steps); stop early (``diverged``) at the first non-finite parameter
    row or honest loss. Logs as the server loop, with the test/val/train metrics of
    the average honest model, plus ``test/accuracy_mean``, ``test/accuracy_worst``
    (over the honest nodes' own models, ``topology.eval_nodes``), ``train/consensus``
    (mean squared distance of the honest rows to their average) and
    ``train/byz_weight`` (mean over the nodes with a Byzantine neighbour of the output
    weight on their rows, where the rule exposes weights; ``byz_weight_max``).
    ``start`` (a ``loop.RoundState``) and ``after_round`` are the server loop's: a
    checkpoint holds ``topo.state_dict()``, and a resumed run continues exactly."""
    from byzbench.loop import Result, RoundState, _draw, _no_lap, do_eval, evaluate

    data, log = exp.data, exp.log
    n_h, f = len(topo.nodes), len(topo.byz)
    dev = exp.theta.device
    topo.node_pipeline = {int(k): p for g in topo.groups
                          for k, p in zip(g.nodes.tolist(), g.pipelines)}
    topo.honest_ids = np.setdiff1d(np.arange(topo.graph.n), topo.byz)
    topo.start(exp.theta)
    X, opt, sched = topo.X, topo.opt, topo.sched
    workers = exp.workers
    local = exp.attack.computes and f > 0
    ids = torch.arange(n_h + (f if local else 0), device=dev)
    # A Byzantine node's honest-protocol model: the mean of its honest neighbours'.
    adj = topo.graph.adjacency[np.ix_(topo.byz, topo.honest_ids)].astype(np.float64)
    A = torch.as_tensor(adj / np.maximum(adj.sum(1, keepdims=True), 1), device=dev,
                        dtype=X.dtype)
    rs = start or RoundState()
    prev: Tensor | None = rs.prev_u
    status, t_done = "ok", rs.t
    lap = exp.lap or _no_lap

    def evaluate_nodes(t: int) -> None:
        Xd = X.detach()
        do_eval(replace(exp, theta=Xd.mean(0)), t)  # the average honest model
        if topo.eval_nodes:
            per = [evaluate(exp.model, Xd[k], data, "test") for k in range(n_h)]
            for key in per[0]:
                v = torch.stack([r[key] for r in per])
                log.add(t, "test", f"{key}_mean", v.mean())
                log.add(t, "test", f"{key}_worst", v.min() if key == "accuracy" else v.max())

    if rs.t == 0:
        evaluate_nodes(0)
    for t in range(rs.t, exp.rounds):
        t0 = time.perf_counter()
        Xd = X.detach()
        rows = torch.cat([Xd, A @ Xd]) if local else Xd
        U, losses = workers(rows, _draw(exp, ids, n_h, lap))
        byz_own = None
        if local:
            lr = float(opt.param_groups[0].get("lr", 1.0))
            byz_own = rows[n_h:] - lr * U[n_h:]
        X.grad = U[:n_h].detach().to(X.dtype).clone()
        opt.step()
        qs = 0 if exp.query_gen is None else host.host_int(
            torch.randint(0, 2**62, (1,), generator=exp.query_gen))
        ta = time.perf_counter()
        shares: list[Tensor] = []
        with torch.no_grad():
            for s in range(topo.gossip_steps):
                new = gossip_round(topo, X.detach(), t, exp, prev, byz_own, qs,
                                   shares if s == topo.gossip_steps - 1 else None)
                X.copy_(new)
        prev = X.detach().clone()
        agg_time = time.perf_counter() - ta
        for g in topo.groups:
            for k, v in (g.batch or g.pipelines[0]).stats().items():
                log.add(t + 1, "train", k, v)
        Xd = X.detach()
        log.add(t + 1, "train", "loss", losses[:n_h].mean())
        log.add(t + 1, "train", "consensus", ((Xd - Xd.mean(0)) ** 2).sum(1).mean())
        if shares:
            s = torch.cat(shares)
            log.add(t + 1, "train", "byz_weight", s.mean())
            log.add(t + 1, "train", "byz_weight_max", s.max())
        if sched is not None:
            sched.step()
        ok = torch.isfinite(Xd).all() & torch.isfinite(losses[:n_h]).all()
        if not host.to_host(ok).item():
            status = "diverged"
        log.add(t + 1, "time", "aggregation", agg_time)
        log.add(t + 1, "time", "round", time.perf_counter() - t0)
        t_done = t + 1
        if status != "ok" or t_done % exp.eval_every == 0 or t_done == exp.rounds:
            evaluate_nodes(t_done)
        if status != "ok":
            break
        if after_round is not None and after_round(exp, RoundState(t=t_done, prev_u=prev)):
            status = "preempted"
            break
    log.flush()
    final = {}
    for split, metric in (("test", "accuracy"), ("test", "loss"), ("val", "accuracy"),
                          ("val", "loss"), ("train", "loss"), ("train", "loss_full"),
                          ("train", "opt_gap"), ("test", "accuracy_mean"),
                          ("test", "accuracy_worst"), ("train", "consensus")):
        v = log.last(split, metric)
        if v is not None:
            final[f"{split}_{metric}"] = v
    extra = {k: float(v) for k, v in topo.info.items() if isinstance(v, (int, float))}
    return Result(status=status, rounds_done=t_done, final=final, extra=extra)
