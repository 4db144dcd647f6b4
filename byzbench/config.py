"""Typed schema of the top-level config, validation, and the one place where the
number of Byzantine workers is derived from ``cluster.byz_frac``.

Component groups (dataset, model, attack, agg, preagg, solver, schedule, partition)
are free-form here; their keys are checked against the target's signature in
``byzbench.build``. Hydra/omegaconf appear only here, in build.py and in run.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from byzbench import require
from byzbench.grads import GRAD_PATHS

MOMENTUM_STYLES = ("ema", "heavy_ball")
BYZ_DATA = ("shard", "iid", "none")


@dataclass
class ClusterConfig:
    """Simulated parameter-server cluster: n workers, a fraction of them Byzantine."""

    n_workers: int = 20
    byz_frac: float = 0.2
    f_declared: Any = None  # int | None: the f the rule is told; None = the real f
    byz_data: str = "shard"  # shard | iid | none: the data of the Byzantine workers (cluster.py)
    participation: float = 1.0  # fraction of the n clients sampled each round, in (0, 1]
    byz_per_round: str = "sampled"  # sampled | fixed (see ClusterSpec)


@dataclass
class CheckpointConfig:
    """When a run writes its checkpoint (``byzbench.checkpoint``): every ``every`` rounds
    (0: not by count) and after ``minutes`` of wall time (0: not by time), time-based
    ones spaced so that writing takes at most ``max_share`` of the run's time."""

    every: int = 0
    minutes: float = 10.0
    max_share: float = 0.02


@dataclass
class Config:
    """Top level of ``conf/config.yaml``; a typo or wrong type here is an error."""

    seed: int = 0
    rounds: int = 200
    batch_size: int = 32
    eval_every: int = 10
    eval_train: bool = True
    device: str = "auto"
    threads: Any = "auto"  # "auto" | int: torch intra-op threads (auto: 1 per joblib job)
    worker_momentum: float = 0.0
    worker_momentum_style: str = "ema"  # ema: m = b m + (1-b) g | heavy_ball: m = b m + g
    grad_path: str = "auto"  # auto | vmap | loop (see byzbench.grads.choose_grad_path)
    progress: bool = True
    plot: bool = True
    resume: bool = True  # skip a finished run of this config in its dir; continue a checkpoint
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    dataset: Any = None
    model: Any = None
    attack: Any = None
    agg: Any = None
    preagg: Any = field(default_factory=dict)
    solver: Any = None
    algorithm: Any = None
    schedule: Any = None
    partition: Any = None
    topology: Any = None  # server (default) | gossip: byzbench/conf/topology/


# Arithmetic in configs, for settings the published code derives from others (epfml's
# clipping radius tau / (1 - momentum); ByzFL's n = 10 honest + f): ``${div:10,${sub:1,0.9}}``.
RESOLVERS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


def register() -> None:
    """Register the schema so that ``conf/config.yaml`` can extend it, and the
    arithmetic resolvers ``add``, ``sub``, ``mul``, ``div``."""
    ConfigStore.instance().store(name="byzbench_schema", node=Config)
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


BYZ_PER_ROUND = ("sampled", "fixed")
MAX_WORKERS = 10**6
BOOL_KEYS = ("eval_train", "progress", "plot", "resume")


def check_overrides(overrides: list[str]) -> None:
    """Command-line values of the top-level booleans must be true or false: OmegaConf
    would take ``progress=0`` or ``resume=-1`` as a bool silently."""
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key in BOOL_KEYS:
            require(value.lower() in ("true", "false"), key, value, "true or false")


def _share(count: int, m: int, n: int) -> int:
    """``count`` scaled to a sample of m out of n: ``floor(count * m / n + 1/2)``."""
    return int(math.floor(count * m / n + 0.5 + 1e-9)) if m < n else count


@dataclass(frozen=True)
class ClusterSpec:
    """Derived cluster sizes: ``n`` workers, ``f`` Byzantine (actual), ``f_declared``
    (what the rule is told), ``n_honest = n - f``.

    Partial participation: each round ``per_round = m = max(1, floor(participation n))``
    clients are sampled. ``byz_per_round="sampled"``: the round's Byzantine count is
    however many of the f fall in a uniform sample of m (hypergeometric, as ByzFL);
    ``"fixed"``: ``f_round = min(floor(f m / n + 1/2), m - 1)`` every round (m - f_round
    honest). The rule is built once for ``n = m`` rows (the same every round) and told
    ``f_declared_round = min(floor(f_declared m / n + 1/2), m - 1)``: the declared f
    scaled with the sample (equal to f_declared at participation 1, and to the actual
    count under ``fixed`` when f_declared = f).
    """

    n: int
    f: int
    f_declared: int
    participation: float = 1.0
    byz_per_round: str = "sampled"

    @property
    def n_honest(self) -> int:
        return self.n - self.f

    @property
    def per_round(self) -> int:
        return max(1, int(math.floor(self.participation * self.n + 1e-9)))

    @property
    def f_fixed_round(self) -> int:
        return min(_share(self.f, self.per_round, self.n), self.per_round - 1)

    @property
    def f_declared_round(self) -> int:
        return min(_share(self.f_declared, self.per_round, self.n), max(self.per_round - 1, 0))


def cluster_spec(n_workers: int, byz_frac: float, f_declared: int | None = None,
                 participation: float = 1.0, byz_per_round: str = "sampled") -> ClusterSpec:
    """The one place f is derived: ``f = floor(byz_frac * n)`` (so byz_frac=0.2, n=20 ->
    f=4), ``f_declared`` defaults to f; participation and the per-round Byzantine count
    are checked here (see ClusterSpec)."""
    require(isinstance(n_workers, int) and 1 <= n_workers <= MAX_WORKERS, "cluster.n_workers",
            n_workers, f"an integer in [1, {MAX_WORKERS}] (one row per worker on one device)")
    require(0.0 <= byz_frac < 1.0, "cluster.byz_frac", byz_frac, "a fraction in [0, 1)")
    f = int(math.floor(byz_frac * n_workers + 1e-9))
    require(n_workers - f >= 1, "cluster.byz_frac", byz_frac,
            f"leaves no honest worker among n_workers={n_workers}")
    fd = f if f_declared is None else f_declared
    require(isinstance(fd, int) and 0 <= fd < n_workers, "cluster.f_declared", f_declared,
            f"null or an integer in [0, n_workers={n_workers})")
    require(isinstance(participation, (int, float)) and 0.0 < participation <= 1.0,
            "cluster.participation", participation, "a fraction in (0, 1]")
    require(byz_per_round in BYZ_PER_ROUND, "cluster.byz_per_round", byz_per_round,
            " or ".join(BYZ_PER_ROUND))
    spec = ClusterSpec(n=n_workers, f=f, f_declared=fd, participation=float(participation),
                       byz_per_round=byz_per_round)
    m = spec.per_round
    require(m == n_workers or byz_per_round == "fixed" or m > f, "cluster.participation",
            participation, f"samples m={m} of n_workers={n_workers} clients, and with "
            f"byz_per_round=sampled all of them may be Byzantine (f={f}): need m > f, or "
            "byz_per_round=fixed")
    return spec


def validate_top(cfg: Any) -> None:
    """Check top-level values (types are already enforced by the schema)."""
    require(0 <= cfg.seed < 2**63, "seed", cfg.seed, "an integer in [0, 2**63)")
    require(cfg.rounds >= 1, "rounds", cfg.rounds, "an integer >= 1")
    require(cfg.batch_size >= 1, "batch_size", cfg.batch_size, "an integer >= 1")
    require(cfg.eval_every >= 1, "eval_every", cfg.eval_every, "an integer >= 1")
    require(cfg.device in ("auto", "cpu", "cuda") or str(cfg.device).startswith("cuda:"),
            "device", cfg.device, "auto, cpu, cuda or cuda:N")
    require(0.0 <= cfg.worker_momentum < 1.0, "worker_momentum", cfg.worker_momentum,
            "a value in [0, 1)")
    require(cfg.worker_momentum_style in MOMENTUM_STYLES, "worker_momentum_style",
            cfg.worker_momentum_style, ", ".join(MOMENTUM_STYLES))
    require(cfg.cluster.byz_data in BYZ_DATA, "cluster.byz_data", cfg.cluster.byz_data,
            ", ".join(BYZ_DATA))
    require(cfg.grad_path in GRAD_PATHS, "grad_path", cfg.grad_path, ", ".join(GRAD_PATHS))
    ck = cfg.checkpoint
    require(ck.every >= 0, "checkpoint.every", ck.every, "an integer >= 0 (0: off)")
    require(ck.minutes >= 0, "checkpoint.minutes", ck.minutes, "a number >= 0 (0: off)")
    require(0 < ck.max_share <= 1, "checkpoint.max_share", ck.max_share, "a fraction in (0, 1]")
    t = cfg.threads
    require(t == "auto" or (isinstance(t, int) and 1 <= t <= 1024), "threads", t,
            "auto or an integer in [1, 1024]")


def declared_topologies(path: Any) -> frozenset[str]:
    """The topologies the component of an option YAML declares (``Stateful.topologies``
    of its ``_target_``); an option whose target declares none (a dataset, a model, a
    builder function) runs in every topology."""
    from pathlib import Path

    from hydra.utils import get_object

    from byzbench.stages import TOPOLOGIES

    target = OmegaConf.load(Path(path)).get("_target_")
    obj = get_object(target) if isinstance(target, str) else None
    return frozenset(getattr(obj, "topologies", TOPOLOGIES))
