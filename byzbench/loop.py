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
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from byzbench import host
from byzbench.aggregators.base import Pipeline
from byzbench.algorithms import Workers
from byzbench.attacks.base import Attack, RoundContext
from byzbench.cluster import BatchSampler, Participation, Round
from byzbench.config import ClusterSpec
from byzbench.data.base import Dataset
from byzbench.grads import loss_fn, make_unflatten
from byzbench.metrics import MetricsLog
from byzbench.stages import SideInputs, Stateful


@dataclass
class Experiment:
    """Everything one run needs, already built (see ``byzbench.build``)."""

    data: Dataset
    model: nn.Module
    theta: Tensor
    spec: ClusterSpec
    sampler: BatchSampler
    attack: Attack
    pipeline: Pipeline
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampling_gen: torch.Generator
    attack_gen: torch.Generator
    rounds: int
    workers: Workers  # built from ``algorithm=`` (DSGD: one gradient; FedAvg: K local steps)
    participation: Participation  # which clients take part in each round
    momentum: WorkerMomentum
    query_gen: torch.Generator | None = None  # attacker's own randomness for queries
    eval_every: int = 10
    eval_train: bool = True
    f_star: float | None = None
    progress: bool = True
    log: MetricsLog = field(default_factory=MetricsLog)
    # (model, theta, data, split) -> extra metrics of every evaluation (a backdoor's asr),
    # the attack's ``evaluators()`` chosen at build time.
    evaluators: list[Callable[..., dict[str, Tensor]]] = field(default_factory=list)
    # The one timer: lap(part) charges the time since the previous lap to ``part``
    # (scripts/profile_round.py); None: no timing.
    lap: Callable[[str], None] | None = None
    topology: Any = None  # built from ``topology=`` (None: this module's server round)


@dataclass
class Result:
    status: str  # ok | diverged | preempted (stopped at a checkpoint by ``after_round``)
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


class WorkerMomentum(Stateful):
    """Worker momentum on the rows the clients computed (``beta = 0``: off, rows pass
    through). With every client in every round the buffer is the rows of the last
    round; under partial participation it holds one row per client (all n, then the
    server's), kept between the rounds it takes part in and zero before its first."""

    state_keys = ("buffer",)

    def __init__(self, beta: float = 0.0, style: str = "ema", clients: int = 0,
                 per_client: bool = False):
        self.beta, self.style, self.clients, self.per_client = beta, style, clients, per_client
        self.buffer: Tensor | None = None

    def __call__(self, G: Tensor, rows: Tensor) -> Tensor:
        """The momentum of ``G [m, d]``, the rows of clients ``rows [m]``."""
        if self.beta <= 0:
            return G
        if not self.per_client:
            self.buffer = momentum_step(self.buffer, G, self.beta, self.style)
            return self.buffer
        if self.buffer is None:
            self.buffer = G.new_zeros(self.clients, G.shape[1])
        out = momentum_step(self.buffer[rows], G, self.beta, self.style)  # gathered: a copy
        self.buffer[rows] = out  # the loop's own buffer; G itself is never modified
        return out


def _no_lap(part: str) -> None:
    pass


def _draw(exp: Experiment, ids: Tensor, n_h: int, lap: Callable[[str], None] = _no_lap):
    """``draw()`` for one round: the next minibatch ``(X [m, B, ...], Y [m, B])`` of
    clients ``ids`` (honest first), the Byzantine rows' batch through the attack's
    ``transform_batch`` when it poisons data. Laps: the work since the previous draw (a
    local step) is ``gradients``."""
    data, attack = exp.data, exp.attack
    poison = attack.poisons_data and len(ids) > n_h

    def draw() -> tuple[Tensor, Tensor]:
        lap("gradients")
        idx = exp.sampler.sample(ids)
        lap("sampling")
        X, Y = data.prepare(data.x_train[idx]), data.y_train[idx]
        if poison:  # the server's row (if any) stays as it is
            b = slice(n_h, len(ids))  # X, Y are fresh gathers: written in place
            X[b], Y[b] = attack.transform_batch(X[b], Y[b], data.num_classes)
        lap("batch")
        return X, Y

    return draw


@dataclass
class RoundRows:
    """What one round's clients sent: ``honest [n_h, d]`` (after worker momentum), the
    rows the Byzantine clients computed (``byz_own [f, d]`` under a local threat model,
    else None), the server's root-data row (``server [d]`` or None) and the honest
    clients' losses at theta."""

    honest: Tensor
    byz_own: Tensor | None
    server: Tensor | None
    losses: Tensor


def compute_rows(exp: Experiment, rnd: Round, t: int, lap: Callable[[str], None]) -> RoundRows:
    """The clients' rows of round ``t``: the algorithm's workers (one vectorized pass over
    honest, computing Byzantine and server rows), then worker momentum."""
    n_h, f = rnd.n_honest, rnd.n_byz
    ids = rnd.ids if (exp.attack.computes and f > 0) else rnd.ids[:n_h]
    G, losses = exp.workers(exp.theta, _draw(exp, ids, n_h, lap))
    lap("gradients")
    rows = len(ids)
    key = torch.cat([ids, ids.new_tensor([exp.spec.n])]) if exp.sampler.has_server else ids
    M = exp.momentum(G, key)
    server = M[rows] if exp.sampler.has_server else None
    byz_src = M if exp.attack.byz_momentum else G  # attack.byz_momentum = false: raw rows
    lap("momentum")
    return RoundRows(honest=M[:n_h], byz_own=byz_src[n_h:rows] if rows > n_h else None,
                     server=server, losses=losses)


def attack_rows(exp: Experiment, rr: RoundRows, rnd: Round, t: int, perm: Tensor,
                prev_u: Tensor | None, side: SideInputs) -> Tensor:
    """The Byzantine rows ``[f, d]``: the attack sees the honest rows and its context;
    the pipeline it may query already holds this round's side inputs (no row owners)."""
    honest, f = rr.honest, rnd.n_byz
    qs = 0 if exp.query_gen is None else host.host_int(
        torch.randint(0, 2**62, (1,), generator=exp.query_gen))
    exp.pipeline.observe(side)
    ctx = RoundContext(t=t, n=len(rnd.ids), f=f, f_declared=exp.spec.f_declared_round,
                       pipeline=exp.pipeline, prev_aggregate=prev_u, byz_grads=rr.byz_own,
                       generator=exp.attack_gen, perm=perm, query_seed=qs,
                       server_randomness=exp.attack.server_randomness)
    byz = exp.attack(honest, ctx) if f > 0 else honest.new_zeros((0, honest.shape[1]))
    if byz.shape != (f, honest.shape[1]):
        raise RuntimeError(
            f"attack returned shape {tuple(byz.shape)}, expected {(f, honest.shape[1])}")
    return byz


def side_inputs(exp: Experiment, rr: RoundRows, perm: Tensor) -> SideInputs:
    """The side inputs the pipeline's stages declare they need (``Stage.needs``), as an
    attacker's queries may see them: no row owners (see :func:`with_owners`)."""
    needs = exp.pipeline.needs
    honest_row = (int(host.to_host(torch.argmin(perm)).item())
                  if "honest_row" in needs else None)  # the row of worker 0 (honest)
    return SideInputs(server_grad=rr.server, honest_row=honest_row)


def with_owners(exp: Experiment, side: SideInputs, rnd: Round, perm: Tensor) -> SideInputs:
    """``side`` plus which client each row of the real aggregation comes from (row k is
    client ``perm[k]``), for stages that need it."""
    if "worker_ids" not in exp.pipeline.needs:
        return side
    ids = host.to_host(perm if exp.participation.full else rnd.ids[perm])
    return replace(side, worker_ids=ids)


def log_round(exp: Experiment, t: int, rr: RoundRows, rnd: Round, perm: Tensor,
              u: Tensor) -> None:
    """The round's train metrics (one host sync at the next flush)."""
    log, n_h, f = exp.log, rnd.n_honest, rnd.n_byz
    for k, v in exp.pipeline.stats().items():  # e.g. cclip_clipped
        log.add(t, "train", k, v)
    log.add(t, "train", "loss", rr.losses[:n_h].mean())
    log.add(t, "train", "agg_error", torch.linalg.vector_norm(u - rr.honest.mean(0)))
    log.add(t, "train", "agg_norm", torch.linalg.vector_norm(u))
    if not exp.participation.full:
        log.add(t, "train", "clients_honest", n_h)
        log.add(t, "train", "clients_byz", f)
    w = exp.pipeline.row_weights(len(rnd.ids))
    if w is not None and f > 0:
        byz_w = torch.where(perm >= n_h, w, torch.zeros_like(w)).sum()  # no mask (sync)
        log.add(t, "train", "byz_weight", byz_w / w.sum().clamp_min(1e-30))


def gradient_noise(honest: Tensor) -> dict[str, float]:
    """Round-0 spread of the honest rows: mean squared distance to their mean, and that
    relative to the squared norm of the mean."""
    gbar = honest.mean(0)
    var, sq = host.to_host(torch.stack([((honest - gbar) ** 2).sum(1).mean(),
                                        gbar.square().sum()]), torch.float64).tolist()
    return {"grad_var_round0": var, "grad_rel_var_round0": var / max(sq, 1e-30)}


def do_eval(exp: Experiment, t: int) -> None:
    """Evaluate theta on test (val, train) and log the results at round ``t``."""
    data = exp.data
    splits = ("test",) + ("val",) * (data.y_val is not None) + ("train",) * exp.eval_train
    for split in splits:
        res = evaluate(exp.model, exp.theta, data, split)
        for ev in exp.evaluators:
            res.update(ev(exp.model, exp.theta, data, split))
        for k, v in res.items():
            exp.log.add(t, split, f"{k}_full" if split == "train" else k, v)
        if split == "train" and exp.f_star is not None:
            exp.log.add(t, "train", "opt_gap", res["loss"] - exp.f_star)


@dataclass
class RoundState:
    """What a round hands the next besides ``exp``'s own objects: rounds done ``t``, the
    aggregate of the last round (``ctx.prev_aggregate``), round-0 statistics. A resumed
    run starts from a saved one (``byzbench.checkpoint``)."""

    t: int = 0
    prev_u: Tensor | None = None
    extra: dict[str, float] = field(default_factory=dict)


def train(exp: Experiment, start: RoundState | None = None,
          after_round: Callable[[Experiment, RoundState], bool] | None = None) -> Result:
    """Run rounds ``start.t .. exp.rounds - 1`` (from 0 by default); stop early (status
    ``diverged``) at the first non-finite aggregate, parameter vector or honest training
    loss. ``after_round(exp, state)`` runs at the end of each round (checkpoints); True
    stops the run (status ``preempted``)."""
    if exp.topology is not None:  # topology=gossip: byzbench.topology.train
        return exp.topology.train(exp, start, after_round)
    log, lap, theta = exp.log, exp.lap or _no_lap, exp.theta
    rs = start or RoundState()
    status = "ok"
    bar = _progress(exp, rs.t)
    if rs.t == 0:
        do_eval(exp, 0)
    for t in range(rs.t, exp.rounds):
        t0 = time.perf_counter()
        lap("other")
        rnd = exp.participation.sample()                      # 1. who takes part
        lap("sampling")
        rr = compute_rows(exp, rnd, t, lap)                   # 2. gradients + momentum
        if t == 0:
            rs.extra.update(gradient_noise(rr.honest))
        # 3. The server's row permutation (own stream) is drawn before the attack so that
        # the strongest attacker (server_randomness) can query in the server's row order.
        perm = torch.randperm(len(rnd.ids), generator=exp.sampling_gen,
                              device=rr.honest.device)
        side = side_inputs(exp, rr, perm)                     # what the stages declared
        byz = attack_rows(exp, rr, rnd, t, perm, rs.prev_u, side)  # 4. the attack
        lap("attack")
        V = torch.cat([rr.honest, byz.to(rr.honest.dtype)])[perm]
        ta = time.perf_counter()
        exp.pipeline.observe(with_owners(exp, side, rnd, perm))
        u = exp.pipeline(V)                                   # 5. aggregation
        agg_time = time.perf_counter() - ta
        lap("aggregation")
        log_round(exp, t + 1, rr, rnd, perm, u)
        lap("metrics")
        # 6. The server applies whatever the rule returned: a non-finite aggregate
        # poisons theta, the run is marked diverged and stops after a final eval.
        theta.grad = u.detach().to(theta.dtype).clone()
        exp.optimizer.step()
        if exp.scheduler is not None:
            exp.scheduler.step()
        rs.prev_u = u.detach()
        lap("step")
        # One flag, one transfer per round (the device otherwise runs ahead of the host).
        ok = (torch.isfinite(u).all() & torch.isfinite(theta).all()
              & torch.isfinite(rr.losses[:rnd.n_honest]).all())
        if not host.to_host(ok).item():
            status = "diverged"
        # Wall-clock rows get their own split: the only rows that differ between runs.
        log.add(t + 1, "time", "aggregation", agg_time)
        log.add(t + 1, "time", "round", time.perf_counter() - t0)
        rs.t = t + 1
        lap("metrics")
        if status != "ok" or rs.t % exp.eval_every == 0 or rs.t == exp.rounds:
            do_eval(exp, rs.t)                                # 7. evaluation
            lap("evaluation")
            _show(bar, log)
        if bar is not None:
            bar.update(1)
        if status != "ok":
            break
        if after_round is not None and after_round(exp, rs):  # 8. checkpoint
            status = "preempted"
            break
    if bar is not None:
        bar.close()
    return Result(status=status, rounds_done=rs.t, final=final_metrics(log), extra=rs.extra)


def _progress(exp: Experiment, done: int = 0):
    if not exp.progress:
        return None
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, silence in logs and sweeps.
    return tqdm(total=exp.rounds, initial=done, desc="byzbench", leave=False,
                dynamic_ncols=True, disable=None)


def _show(bar: Any, log: MetricsLog) -> None:
    if bar is not None:
        log.flush()
        bar.set_postfix(loss=f"{log.last('train', 'loss'):.4f}",
                        acc=f"{(log.last('test', 'accuracy') or float('nan')):.3f}")


FINAL = (("test", "accuracy"), ("test", "loss"), ("test", "asr"), ("val", "accuracy"),
         ("val", "loss"), ("val", "asr"), ("train", "loss"), ("train", "loss_full"),
         ("train", "opt_gap"))


def final_metrics(log: MetricsLog) -> dict[str, float]:
    """The last logged value of each summary metric, as ``<split>_<metric>``."""
    log.flush()
    final = {}
    for split, metric in FINAL:
        v = log.last(split, metric)
        if v is not None:
            final[f"{split}_{metric}"] = v
    return final
