"""The only place that instantiates config nodes. Targets are allow-listed
(``byzbench.*``, ``torch.optim.*``); injected values (n, f, generators, shapes) are
passed only to constructors that accept them; unknown keys are one-line errors."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from byzbench import ConfigError, require
from byzbench.aggregators.base import Pipeline, as_stage
from byzbench.attacks.base import Attack, as_attack
from byzbench.config import ClusterSpec, cluster_spec, validate_top
from byzbench.validate import check_params

ALLOWED_TARGETS = ("byzbench.", "torch.optim.")
_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}

# Independent random streams, each seeded from (seed, stream id).
STREAMS = {"dataset": 0, "partition": 1, "byz_ids": 2, "init": 3, "sampling": 4, "perm": 5,
           "attack": 6, "agg": 7, "query": 8, "val": 9, "dropout": 10, "server": 11,
           "participation": 12}


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one named random stream of a run."""
    return int(np.random.SeedSequence([seed, STREAMS[stream]]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def make_generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded for ``stream``."""
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g


def _plain(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def _check_targets(node: Any, where: str) -> None:
    if isinstance(node, Mapping):
        t = node.get("_target_")
        if t is not None and not str(t).startswith(ALLOWED_TARGETS):
            raise ConfigError(f"{where}._target_={t!r} is invalid: only byzbench.* and "
                              "torch.optim.* targets may be instantiated")
        for k, v in node.items():
            _check_targets(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_targets(v, f"{where}[{i}]")


def instantiate_component(cfg: Any, name: str = "component", **inject: Any) -> Any:
    """Instantiate one config node ``{_target_: ..., **kwargs}``.

    ``inject`` values (n, f, generator, input_shape, ...) are passed only if the
    target's signature accepts them. A key the target does not accept, or a missing
    required argument, raises a one-line ConfigError naming ``name.key``.
    """
    node = _plain(cfg)
    require("_target_" in node, f"{name}._target_", None, "every component config needs one")
    _check_targets(node, name)
    try:
        target = get_object(node["_target_"])
    except Exception as e:  # noqa: BLE001 - report the bad path in one line
        raise ConfigError(f"{name}._target_={node['_target_']!r} is invalid: cannot import "
                          f"({type(e).__name__})") from None
    sig = inspect.signature(target)
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    keys = set(node) - _HYDRA_KEYS
    if not var_kw:
        unknown = sorted(keys - set(params))
        if unknown:
            allowed = sorted(k for k, p in params.items() if k not in inject
                             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
            raise ConfigError(f"{name}.{unknown[0]} is not a parameter of {node['_target_']}: "
                              f"allowed {', '.join(allowed) or '(none)'}")
    # Injected values go only to parameters the target names (never into **kwargs).
    injected = {k: v for k, v in inject.items() if k in params}
    for k, p in params.items():
        if (p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and k not in keys and k not in injected):
            raise ConfigError(f"{name}.{k} is missing: required by {node['_target_']}")
    check_params(target, {k: node[k] for k in keys}, name)
    try:
        return instantiate(node, **injected, _convert_="all")
    except InstantiationException as e:
        # Hydra wraps errors raised by constructors; surface our one-line ones as is,
        # and a constructor's own ValueError/TypeError (torch.optim's range checks) as one.
        cause = e.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            if isinstance(cause, (ValueError, TypeError, OverflowError, MemoryError)) or (
                    isinstance(cause, RuntimeError) and "allocate" in str(cause)):
                msg = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                raise ConfigError(f"{name} is invalid: {node['_target_']} rejected its "
                                  f"parameters: {type(cause).__name__}: {msg}") from None
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={device!r} is invalid: CUDA is not available here (use auto or cpu)")
    return torch.device(device)


def build_pipeline(preagg_cfg: Any, agg_cfg: Any, n: int, f: int,
                   generator: torch.Generator | None, topology: str = "server") -> Pipeline:
    """Pre-aggregators in order (each told the rows it receives), then the rule; each
    must declare ``topology`` among its ``topologies``."""
    preaggs = []
    rows = n
    items = _plain(preagg_cfg or {})
    for key, node in items.items():
        p = as_stage(instantiate_component(node, f"preagg.{key}", n=rows, f=f,
                                           generator=generator), "preagg", rows)
        rows = int(p.n_out)
        p.check_topology(topology, f"preagg.{key}", type(p).__name__)
        preaggs.append(p)
    rule = as_stage(instantiate_component(agg_cfg, "agg", n=rows, f=f, generator=generator),
                    "rule")
    rule.check_topology(topology, "agg", type(rule).__name__)
    # Row identities (an honest row, each row's owner) survive only row-preserving
    # pre-aggregators.
    per_row = sorted(rule.needs & {"honest_row", "worker_ids"})
    require(not (per_row and rows != n), "agg", type(rule).__name__,
            f"a rule that needs {per_row[0] if per_row else ''} (a row of the workers' "
            "order): not after a pre-aggregator that changes the row count")
    return Pipeline(preaggs, rule)


def hold_out_root(pipeline: Pipeline, data: Any,
                  generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(root, pool)``: the server's root-data indices and the remaining training
    indices the workers share, when the rule declares ``server_data``; else
    ``(None, None)``. A rule that needs the server's row must declare its data."""
    node = pipeline.rule.server_data
    require(node is not None or "server_grad" not in pipeline.needs, "agg.server_data", None,
            "this rule needs the server's root data {size, draw}")
    if node is None:
        return None, None
    from byzbench.data.root import check_server_data, draw_root

    root = draw_root(data.y_train, check_server_data(node), data.num_classes, generator)
    keep = torch.ones(len(data.y_train), dtype=torch.bool)
    keep[root] = False
    return root, torch.nonzero(keep).flatten()


def build_attack(attack_cfg: Any, spec: ClusterSpec, num_classes: int,
                 data: Any = None, topology: str = "server") -> Attack:
    """The attack, optionally wrapped in the generic per-round scale tuner. The key
    ``server_randomness`` (any attack) sets what its pipeline queries may see. With
    ``data``, attacks that take them get the input shape and ``input_range()``."""
    node = _plain(attack_cfg)
    tune = node.pop("tune", None)
    require(tune is None or isinstance(tune, (bool, dict)), "attack.tune", tune,
            "true, false or a mapping of tuner options (budget, lo, hi, param, search, "
            "start, delta)")
    server_randomness = node.pop("server_randomness", False)
    require(isinstance(server_randomness, bool), "attack.server_randomness",
            server_randomness, "true or false")
    shapes = {}
    if data is not None:
        from byzbench.backdoor.triggers import input_range

        shapes = dict(input_shape=data.input_shape, input_range=lambda: input_range(data))
    attack = as_attack(instantiate_component(node, "attack", n=spec.n, f=spec.f,
                                             f_declared=spec.f_declared,
                                             num_classes=num_classes, **shapes))
    attack.check_topology(topology, "attack", type(attack).__name__)
    if tune:
        extra = tune if isinstance(tune, dict) else {}
        attack = instantiate_component(
            {"_target_": "byzbench.attacks.tuning.Tuned", **extra}, "attack.tune", attack=attack)
    if server_randomness:
        attack.server_randomness = True
    return attack


def build_solver(solver_cfg: Any, schedule_cfg: Any, theta: torch.Tensor):
    """A real torch.optim optimizer over ``[theta]`` and its lr scheduler."""
    node = _plain(solver_cfg)
    if "lr" in node:
        require(isinstance(node["lr"], (int, float)) and node["lr"] > 0, "solver.lr", node["lr"],
                "a positive number")
    _check_numbers(node, "solver")
    opt = instantiate_component(node, "solver", params=[theta])
    sched = None
    if schedule_cfg is not None and _plain(schedule_cfg):
        snode = _plain(schedule_cfg)
        _check_numbers(snode, "schedule")
        # A dry run on a throwaway optimizer: a schedule that cannot step (StepLR with
        # step_size 0, cosine with T_max 0) is one line now, not a crash at round 1.
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        try:
            dry = instantiate_component(snode, "schedule", optimizer=probe)
            for _ in range(2):
                probe.step()
                dry.step()
        except ZeroDivisionError:
            raise ConfigError(f"schedule={snode} is invalid: it cannot step (a zero period "
                              "or length)") from None
        sched = instantiate_component(snode, "schedule", optimizer=opt)
    return opt, sched


def _check_numbers(node: dict, name: str) -> None:
    """Every number of a solver or schedule config is finite and >= 0 (torch.optim takes
    nan and inf silently)."""
    for k, v in node.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        for x in vals:
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                require(math.isfinite(x) and x >= 0, f"{name}.{k}", v, "a finite number >= 0")


def check_top(cfg: Any) -> ClusterSpec:
    """Validate top-level values and derive the cluster sizes."""
    validate_top(cfg)
    c = cfg.cluster
    return cluster_spec(c.n_workers, c.byz_frac, c.f_declared, c.participation, c.byz_per_round)


def build_round_pipeline(cfg: Any, spec: ClusterSpec, generator: torch.Generator) -> Pipeline:
    """The pipeline for the rows of one round: ``n = spec.per_round`` (every round has
    that many rows) told ``f = spec.f_declared_round``; a sample too small for the rule
    is one line naming cluster.participation."""
    try:
        return build_pipeline(cfg.preagg, cfg.agg, spec.per_round, spec.f_declared_round,
                              generator)
    except ConfigError as e:
        if spec.per_round == spec.n:
            raise
        raise ConfigError(f"{e} (per round: the m={spec.per_round} clients sampled with "
                          f"cluster.participation={spec.participation}, told "
                          f"f={spec.f_declared_round})") from None


def example_batch(data: Any, rows: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(X [rows, B, ...], Y [rows, B])`` batch of the run's shapes (the first samples;
    for timing the gradient paths, not for training)."""
    idx = torch.arange(rows * batch, device=data.y_train.device) % len(data.y_train)
    x = data.prepare(data.x_train[idx])
    return x.view(rows, batch, *x.shape[1:]), data.y_train[idx].view(rows, batch)


def build_experiment(cfg: Any) -> tuple[Any, dict[str, Any]]:
    """Compose every component of a run from the config.

    Returns ``(Experiment, info)``; ``info`` holds values for summary.json (n, f, the
    device, label heterogeneity, f*)."""
    from byzbench.cluster import BatchSampler, Participation, label_skew, worker_shards
    from byzbench.data._common import hold_out_validation
    from byzbench.grads import choose_grad_path, flat_params
    from byzbench.loop import Experiment, WorkerMomentum
    from byzbench.optimum import full_batch_optimum, is_linear_model

    spec = check_top(cfg)
    device = resolve_device(cfg.device)
    seed = int(cfg.seed)
    dnode = _plain(cfg.dataset)
    val_frac = dnode.pop("val_frac", 0.0)  # any dataset: held out of train before the partition
    data = instantiate_component(dnode, "dataset", generator=make_generator(seed, "dataset"))
    data = hold_out_validation(data, val_frac, make_generator(seed, "val"))
    partition = instantiate_component(cfg.partition, "partition")
    from byzbench.topology.gossip import Builders, build_topology  # None: the server

    agg_gen = make_generator(seed, "agg", device)
    topology = build_topology(_plain(cfg.topology or {}), spec, Builders(
        pipeline=lambda m, f: build_pipeline(cfg.preagg, cfg.agg, m, f, agg_gen, "gossip"),
        attack=lambda s: build_attack(cfg.attack, s, data.num_classes, data, "gossip"),
        solver=lambda rows: build_solver(cfg.solver, cfg.schedule, rows),
        seed=stream_seed(seed, "byz_ids"), device=device,
        worker_momentum=float(cfg.worker_momentum), preagg=_plain(cfg.preagg)))
    pipeline = build_round_pipeline(cfg, spec, make_generator(seed, "agg", device)) \
        if topology is None else topology.pipeline
    # A rule with server-side root data (FLTrust): carve it out before partitioning.
    root, pool = hold_out_root(pipeline, data, make_generator(seed, "server"))
    labels = data.y_train if pool is None else data.y_train[pool]
    byz_data = str(cfg.cluster.byz_data)
    shards = worker_shards(partition, labels, spec.n, spec.f, byz_data,
                           make_generator(seed, "partition"), make_generator(seed, "byz_ids"))
    if pool is not None:
        shards = [pool[s] for s in shards]
    info: dict[str, Any] = {
        "n": spec.n, "f": spec.f, "f_declared": spec.f_declared, "n_honest": spec.n_honest,
        "device": str(device), "dataset_train_size": int(len(data.y_train)),
    }
    if spec.per_round < spec.n:
        info.update(participation=spec.participation, clients_per_round=spec.per_round,
                    byz_per_round=spec.byz_per_round, f_declared_round=spec.f_declared_round)
    if data.y_val is not None:
        info["dataset_val_size"] = int(len(data.y_val))
    if data.task == "classification":
        info["label_skew"] = label_skew(data.y_train, shards[: spec.n_honest], data.num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        model = instantiate_component(cfg.model, "model", input_shape=data.input_shape,
                                      num_classes=data.num_classes)
    model = model.to(device)
    data = data.to(device)
    theta = flat_params(model).requires_grad_(True)
    if topology is not None:
        topology.start(theta)  # the nodes' parameters and solver, before any resume
    info["d"] = int(theta.numel())
    info["grad_path"] = choose_grad_path(
        model, device, cfg.grad_path, task=data.task,
        example=lambda: example_batch(data, spec.n_honest, int(cfg.batch_size)))
    f_star = None
    if is_linear_model(model):
        # Closed form from the dataset when it has one (least squares), else L-BFGS.
        f_star = data.f_star if data.f_star is not None else full_batch_optimum(model, theta, data)
        info["f_star"] = f_star
    algo_cfg = cfg.get("algorithm") or {"_target_": "byzbench.algorithms.dsgd.DSGD"}
    workers = instantiate_component(algo_cfg, "algorithm", model=model, task=data.task,
                                    grad_path=info["grad_path"])
    attack = build_attack(cfg.attack, spec, data.num_classes, data,
                          "server" if topology is None else "gossip")
    if byz_data == "none" and spec.f > 0 and attack.computes:
        raise ConfigError(
            "cluster.byz_data='none' is invalid for this attack: its Byzantine workers "
            "compute gradients on their own data (local threat model); use shard or iid")
    optimizer, scheduler = build_solver(cfg.solver, cfg.schedule, theta)
    exp = Experiment(
        data=data, model=model, theta=theta, spec=spec,
        sampler=BatchSampler(shards, int(cfg.batch_size), device,
                             make_generator(seed, "sampling", device), server=root),
        attack=attack, pipeline=pipeline, optimizer=optimizer, scheduler=scheduler,
        sampling_gen=make_generator(seed, "perm", device),
        attack_gen=make_generator(seed, "attack", device),
        query_gen=make_generator(seed, "query"),
        rounds=int(cfg.rounds), eval_every=int(cfg.eval_every), eval_train=bool(cfg.eval_train),
        f_star=f_star, progress=bool(cfg.progress), workers=workers,
        # The threat model, chosen here once: extra metrics of a backdoor (asr).
        evaluators=attack.evaluators(),
        participation=Participation(spec.n, spec.f, spec.per_round, spec.f_fixed_round,
                                    spec.byz_per_round, make_generator(seed, "participation"),
                                    device),
        topology=topology,
        # Under partial participation one buffer per client (all n, then the server's).
        momentum=WorkerMomentum(float(cfg.worker_momentum), str(cfg.worker_momentum_style),
                                clients=spec.n + (root is not None),
                                per_client=spec.per_round < spec.n),
    )
    # Dropout draws from torch's global generator (F.dropout takes none): seed it.
    torch.manual_seed(stream_seed(seed, "dropout"))
    return exp, info
