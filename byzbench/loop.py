"""One round and the training loop (no Hydra here).

Round t: the round's clients (``participation.sample()``: all n, or a seeded sample
of m) -> ``G, losses = workers(theta, draw)`` for those that compute (honest, plus
Byzantine ones under a local threat model), where ``draw()`` gathers each client's next
minibatch ``X [m, B, ...], Y [m, B]`` from its shard and ``workers`` is the algorithm
chosen at build time (DSGD: one gradient each; FedAvg: K local steps each, sending
``theta - theta_i^K``; a rule with server root data (FLTrust) adds the server's
row last, computed the same way) -> worker momentum, kept per client -> ``Bz = attack(G_honest,
ctx) [f_t, d]`` -> seeded row permutation of ``cat(G_honest, Bz)`` -> ``u =
pipeline(V)`` -> ``theta.grad = u; opt.step()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from byzbench import host
from byzbench.aggregators.base import Pipeline
from byzbench.algorithms import Workers
from byzbench.attacks.base import RoundContext
from byzbench.cluster import BatchSampler, Participation
from byzbench.config import ClusterSpec
from byzbench.data.base import Dataset
from byzbench.grads import loss_fn, make_unflatten
from byzbench.metrics import MetricsLog


@dataclass
class Experiment:
    """Everything one run needs, already built (see ``byzbench.build``)."""

    data: Dataset
    model: nn.Module
    theta: Tensor
    spec: ClusterSpec
    sampler: BatchSampler
    attack: Callable[[Tensor, RoundContext], Tensor]
    pipeline: Pipeline
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampling_gen: torch.Generator
    attack_gen: torch.Generator
    rounds: int
    query_gen: torch.Generator | None = None  # attacker's own randomness for queries
    eval_every: int = 10
    eval_train: bool = True
    worker_momentum: float = 0.0
    worker_momentum_style: str = "ema"
    f_star: float | None = None
    progress: bool = True
    log: MetricsLog = field(default_factory=MetricsLog)
    workers: Workers | None = None  # built from ``algorithm=`` (None: DSGD, vmap path)
    participation: Participation | None = None  # None: every client, every round
    # lap(part): charge the time since the previous lap to ``part`` (scripts/profile_round.py).
    lap: Callable[[str], None] | None = None
    topology: Any = None  # built from ``topology=`` (None: this module's server round)


@dataclass
class Result:
    status: str  # ok | diverged
    rounds_done: int
    final: dict[str, float]
    extra: dict[str, float]


@torch.no_grad()
def evaluate(model: nn.Module, theta: Tensor, data: Dataset, split: str,
             chunk: int = 2048) -> dict[str, Tensor]:
    """Mean loss (and accuracy for classification) over a whole split, in chunks."""
    x_all, y_all = {"test": (data.x_test, data.y_test), "val": (data.x_val, data.y_val),
                    "train": (data.x_train, data.y_train)}[split]
    params = make_unflatten(model)(theta.detach())
    was_training = model.training
    model.eval()  # dropout off, BatchNorm on its running statistics
    crit = loss_fn(data.task)
    loss_sum = torch.zeros((), device=theta.device, dtype=torch.float64)
    correct = torch.zeros((), device=theta.device, dtype=torch.float64)
    for i in range(0, len(y_all), chunk):
        x = data.prepare(x_all[i:i + chunk])
        y = y_all[i:i + chunk]
        out = functional_call(model, params, (x,))
        loss_sum += crit(out, y).double() * len(y)
        if data.task == "classification":
            correct += (out.argmax(-1) == y).sum()
    model.train(was_training)
    res = {"loss": loss_sum / len(y_all)}
    if data.task == "classification":
        res["accuracy"] = correct / len(y_all)
    return res


def momentum_step(m: Tensor | None, G: Tensor, beta: float, style: str = "ema") -> Tensor:
    """One worker-momentum update of the rows ``G [m, d]`` from the buffer ``m`` (None
    before the first round, i.e. m = 0): ``ema`` m = beta m + (1 - beta) G (Karimireddy,
    He & Jaggi, ICML 2021; ByzFL, FLB) or ``heavy_ball`` m = beta m + G (epfml's
    ``codes/worker.py``, 1/(1 - beta) times the ema). One new buffer and two passes
    per round, never in place: a round's rows may be kept (e.g. by an attack) after the
    round; neither ``m`` nor ``G`` is modified."""
    a = 1.0 if style == "heavy_ball" else 1.0 - beta
    return a * G if m is None else torch.mul(m, beta).add_(G, alpha=a)


def _no_lap(part: str) -> None:
    pass


def _draw(exp: Experiment, ids: Tensor, n_h: int, transform: Callable | None,
          lap: Callable[[str], None] = _no_lap):
    """``draw()`` for one round: the next minibatch ``(X [m, B, ...], Y [m, B])`` of
    clients ``ids`` (honest first), Byzantine rows' labels through ``transform``. Laps:
    the work since the previous draw (a local step) is ``gradients``."""
    data = exp.data

    def draw() -> tuple[Tensor, Tensor]:
        lap("gradients")
        idx = exp.sampler.sample(ids)
        lap("sampling")
        X, Y = data.prepare(data.x_train[idx]), data.y_train[idx]
        if transform is not None and len(ids) > n_h:  # the server's row (if any) stays
            Y = torch.cat([Y[:n_h], transform(Y[n_h:len(ids)], data.num_classes),
                           Y[len(ids):]])
        lap("batch")
        return X, Y

    return draw


def train(exp: Experiment) -> Result:
    """Run ``exp.rounds`` rounds; stop early (status ``diverged``) at the first
    non-finite aggregate, parameter vector or honest training loss."""
    if exp.topology is not None:  # topology=gossip: byzbench.topology.train
        return exp.topology.train(exp)
    from byzbench.algorithms.dsgd import DSGD

    spec, data, log = exp.spec, exp.data, exp.log
    transform = getattr(exp.attack, "transform_labels", None)
    local = bool(getattr(exp.attack, "local", False)) or transform is not None
    workers = exp.workers or DSGD(exp.model, data.task)
    participation = exp.participation or Participation(
        spec.n, spec.f, spec.n, spec.f, "sampled", torch.Generator(), exp.theta.device)
    server = bool(getattr(exp.sampler, "has_server", False))
    theta = exp.theta
    momentum: Tensor | None = None
    prev_u: Tensor | None = None
    status, t_done = "ok", 0
    extra: dict[str, float] = {}
    lap = exp.lap or _no_lap

    def do_eval(t: int) -> None:
        splits = ("test",) + ("val",) * (data.y_val is not None) + ("train",) * exp.eval_train
        for split in splits:
            res = evaluate(exp.model, theta, data, split)
            for k, v in res.items():
                log.add(t, split, f"{k}_full" if split == "train" else k, v)
            if split == "train" and exp.f_star is not None:
                log.add(t, "train", "opt_gap", res["loss"] - exp.f_star)

    bar = None
    if exp.progress:
        from tqdm.auto import tqdm

        # disable=None: a bar on a terminal, silence in logs and sweeps.
        bar = tqdm(total=exp.rounds, desc="byzbench", leave=False, dynamic_ncols=True, disable=None)
    do_eval(0)
    for t in range(exp.rounds):
        t0 = time.perf_counter()
        lap("other")
        rnd = participation.sample()
        n_h, f, m = rnd.n_honest, rnd.n_byz, len(rnd.ids)
        ids = rnd.ids if (local and f > 0) else rnd.ids[:n_h]
        lap("sampling")
        G, losses = workers(theta, _draw(exp, ids, n_h, transform, lap))
        lap("gradients")
        G_raw = G  # Byzantine rows without momentum (attack.byz_momentum = false)
        if exp.worker_momentum > 0:
            b, style = exp.worker_momentum, exp.worker_momentum_style
            if participation.full:  # the computing clients are rows 0..len(ids)-1
                G = momentum = momentum_step(momentum, G, b, style)
            else:
                # One buffer per client (rows of all n, then the server's), kept between
                # the rounds it takes part in; zero before its first round.
                if momentum is None:
                    momentum = G.new_zeros(spec.n + server, G.shape[1])
                key = torch.cat([ids, ids.new_tensor([spec.n])]) if server else ids
                G = momentum_step(momentum[key], G, b, style)  # gathered rows: a copy
                momentum[key] = G  # the loop's own buffer; G itself is never modified
        # The server's root-data row (FLTrust), last in the same pass, goes to the rule.
        rows = len(ids)
        g_server, G = (G[rows], G[:rows]) if server else (None, G)
        honest = G[:n_h]
        lap("momentum")
        if t == 0:
            gbar = honest.mean(0)
            var, sq = host.to_host(torch.stack([((honest - gbar) ** 2).sum(1).mean(),
                                                gbar.square().sum()]), torch.float64).tolist()
            extra["grad_var_round0"] = var
            extra["grad_rel_var_round0"] = var / max(sq, 1e-30)
        # The server's row permutation (own stream) is drawn first so that the strongest
        # attacker (server_randomness) can query in the server's row order.
        perm = torch.randperm(m, generator=exp.sampling_gen, device=honest.device)
        qs = 0 if exp.query_gen is None else host.host_int(
            torch.randint(0, 2**62, (1,), generator=exp.query_gen))
        byz_rows = G if getattr(exp.attack, "byz_momentum", True) else G_raw[:rows]
        # Oracle for rules that ask (MoNNA pivot=honest), told before the attack so that
        # its queries see this round's honest position (a transfer only for those).
        if getattr(exp.pipeline.rule, "needs_honest_row", False):
            exp.pipeline.tell_honest_row(int(host.to_host(torch.argmin(perm)).item()))
        # Server-side side information for rules that take it (FLTrust's root gradient,
        # FoolsGold's row owners); attack queries are not told row owners.
        observe = getattr(exp.pipeline.rule, "observe", None)
        if observe is not None:
            observe(server_grad=g_server, worker_ids=None)
        ctx = RoundContext(t=t, n=m, f=f, f_declared=spec.f_declared_round,
                           pipeline=exp.pipeline, prev_aggregate=prev_u,
                           byz_grads=byz_rows[n_h:] if len(ids) > n_h else None,
                           generator=exp.attack_gen, perm=perm, query_seed=qs,
                           server_randomness=bool(getattr(exp.attack, "server_randomness",
                                                          False)))
        byz = exp.attack(honest, ctx) if f > 0 else honest.new_zeros((0, honest.shape[1]))
        if byz.shape != (f, honest.shape[1]):
            raise RuntimeError(
                f"attack returned shape {tuple(byz.shape)}, expected {(f, honest.shape[1])}")
        lap("attack")
        V = torch.cat([honest, byz.to(honest.dtype)])[perm]
        ta = time.perf_counter()
        if observe is not None:  # the real aggregation: row k is worker perm[k]
            owners = perm if participation.full else rnd.ids[perm]
            observe(server_grad=g_server, worker_ids=host.to_host(owners))
        u = exp.pipeline(V)
        agg_time = time.perf_counter() - ta
        lap("aggregation")
        for k, v in exp.pipeline.stats().items():  # e.g. cclip_clipped
            log.add(t + 1, "train", k, v)
        hmean = honest.mean(0)
        log.add(t + 1, "train", "loss", losses[:n_h].mean())
        log.add(t + 1, "train", "agg_error", torch.linalg.vector_norm(u - hmean))
        log.add(t + 1, "train", "agg_norm", torch.linalg.vector_norm(u))
        if not participation.full:
            log.add(t + 1, "train", "clients_honest", n_h)
            log.add(t + 1, "train", "clients_byz", f)
        w = exp.pipeline.row_weights(m)
        if w is not None and f > 0:
            byz_w = torch.where(perm >= n_h, w, torch.zeros_like(w)).sum()  # no mask (sync)
            log.add(t + 1, "train", "byz_weight", byz_w / w.sum().clamp_min(1e-30))
        # The server applies whatever the rule returned: a non-finite aggregate
        # poisons theta, the run is marked diverged and stops after a final eval.
        lap("metrics")
        theta.grad = u.detach().to(theta.dtype).clone()
        exp.optimizer.step()
        if exp.scheduler is not None:
            exp.scheduler.step()
        prev_u = u.detach()
        lap("step")
        # One flag, one transfer per round (the device otherwise runs ahead of the host).
        ok = (torch.isfinite(u).all() & torch.isfinite(theta).all()
              & torch.isfinite(losses[:n_h]).all())
        if not host.to_host(ok).item():
            status = "diverged"
        # Wall-clock rows get their own split: the only rows that differ between
        # two runs with the same seed.
        log.add(t + 1, "time", "aggregation", agg_time)
        log.add(t + 1, "time", "round", time.perf_counter() - t0)
        t_done = t + 1
        lap("metrics")
        if status != "ok" or t_done % exp.eval_every == 0 or t_done == exp.rounds:
            do_eval(t_done)
            lap("evaluation")
            if bar is not None:
                log.flush()
                bar.set_postfix(loss=f"{log.last('train', 'loss'):.4f}",
                                acc=f"{(log.last('test', 'accuracy') or float('nan')):.3f}")
        if bar is not None:
            bar.update(1)
        if status != "ok":
            break
    if bar is not None:
        bar.close()
    log.flush()
    final = {}
    for split, metric in (("test", "accuracy"), ("test", "loss"), ("val", "accuracy"),
                          ("val", "loss"), ("train", "loss"),
                          ("train", "loss_full"), ("train", "opt_gap")):
        v = log.last(split, metric)
        if v is not None:
            final[f"{split}_{metric}"] = v
    return Result(status=status, rounds_done=t_done, final=final, extra=extra)
