"""Flower integration: byzbench's rules, pre-aggregators and attacks inside Flower.

Install with ``pip install "byzbench[flower]"`` (flwr with its simulation extra, Ray).

Strategy API. Flower 1.42 has two strategy APIs: the classic ``flwr.server.strategy``
(``FitRes``/``Parameters``, run through ``ServerApp(server_fn=...)``) and the
Message API ``flwr.serverapp.strategy`` (``ArrayRecord``/``Message``, run with
``strategy.start(grid, ...)`` inside ``@app.main()``), which Flower's 1.2x documentation
and templates use. :class:`RobustStrategy` subclasses the Message API's ``FedAvg`` and
overrides ``aggregate_train``; ``flwr.simulation.run_simulation`` runs it with a
``ServerApp``/``ClientApp`` pair (see ``examples/flower_krum.py``).

What is aggregated. Each client's reply is flattened to one vector (every floating
array of its ``ArrayRecord`` in key order, the layout of
``byzbench.grads.flat_params`` for a model without buffers) and the pipeline receives
the *pseudo-gradients* ``x_k = w - w_k`` (the global model it was sent minus the
client's model; FedOpt's convention, Reddi et al., ICLR 2021): for one local SGD step
``x_k = lr g_k``, byzbench's gradient rows up to the factor lr, so attacks defined
relative to the gradients (ALIE's ``mean - z std``) keep their meaning and norm-based
stages (clipping, centered clipping) see update lengths, not model sizes. The new
global model is ``w - u`` with ``u = pipeline(x)``. Integer arrays (BatchNorm's
``num_batches_tracked``) are not aggregated: the global value is kept.

Weighting. Robust rules ignore sample counts: every reply is one row, whatever its
``num-examples`` (a Byzantine client can claim any count; FedAvg's weighting would let
it). ``num-examples`` still weights the *reported metrics* (Flower's
``aggregate_metricrecords``), as in FedAvg. ``agg="mean"`` is therefore the unweighted
mean, which equals FedAvg only with equal shards.

Diagnostics come back as Flower train metrics of each round: ``agg_norm`` (``||u||``),
every stage's ``last_stats`` (``pipeline.stats()``, e.g. ``cclip_clipped``) and, where
the Byzantine clients are known (simulation: ``byzantine=``), ``byz_weight`` (share of
the aggregate's weight on Byzantine rows, for rules that expose row weights) and
``agg_error`` (``||u - mean of the honest rows||``), the names of byzbench's own logs.

Byzantine clients (simulation only):

* local attacks (``bit_flip``, ``label_flip``): :func:`byzantine_train` wraps a client's
  ``@app.train()`` function; designated clients train on poisoned data
  (:func:`poison_batch`) and/or transform their own update, alone (f = 1 per client,
  no collusion);
* omniscient attacks (``alie``, ``ipm``, ``min_max``, ...): ``RobustStrategy(attack=...,
  byzantine=[...])`` replaces the designated clients' updates on the server with
  ``attack(honest_updates, ctx)`` before aggregation, ``ctx`` a
  ``byzbench.attacks.base.RoundContext`` holding the strategy's real pipeline (and,
  for colluding local attacks such as ``alie_local``, the designated clients' own rows
  as ``ctx.byz_grads``). A real deployment has no such hook: the server would be
  simulating its own attacker.

Clients are identified by their ``partition-id`` (``context.node_config``), which
:func:`byzantine_train` adds to every reply's metrics (your own ``ClientApp`` must do
the same for ``byzantine=`` to work).

Offline: importing this module sets ``FLWR_TELEMETRY_ENABLED=0`` and
``RAY_USAGE_STATS_ENABLED=0`` unless already set (flwr reads the first when it is
first imported: import this module first, or set it yourself), so no telemetry leaves
the machine, and :func:`local_backend_config` starts Ray as a local single-machine
cluster.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import logging
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from torch import Tensor, nn  # noqa: E402

try:
    from flwr.app import (  # noqa: E402
        Array,
        ArrayRecord,
        ConfigRecord,
        Context,
        Message,
        MetricRecord,
        RecordDict,
    )
    from flwr.clientapp import ClientApp  # noqa: E402
    from flwr.serverapp import Grid  # noqa: E402
    from flwr.serverapp.strategy import FedAvg  # noqa: E402
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError('byzbench.integrations.flower needs flwr: pip install "byzbench[flower]"'
                      ) from e

from byzbench import ConfigError, require  # noqa: E402
from byzbench.attacks.base import RoundContext  # noqa: E402
from byzbench.build import (  # noqa: E402
    build_attack,
    build_pipeline,
    instantiate_component,
    make_generator,
    stream_seed,
)
from byzbench.config import ClusterSpec  # noqa: E402
from byzbench.stages import SideInputs  # noqa: E402

log = logging.getLogger("byzbench.flower")

PARTITION_KEY = "partition-id"  # flwr.common.constant.PARTITION_ID_KEY


# ---------------------------------------------------------------- configs, by name


def compose(*overrides: str, **choices: str | Sequence[str]) -> DictConfig:
    """The run config composed from byzbench's own YAMLs with these group choices and
    command-line overrides (``compose("rounds=5", agg="krum", preagg=["nnm"])`` is what
    ``byzbench rounds=5 agg=krum preagg=[nnm]`` composes), through Hydra, so defaults
    lists and resolvers apply as in a run. A fresh copy each call (compositions are
    cached per process)."""
    choice = [f"{g}={v}" if isinstance(v, str) else f"{g}=[{','.join(v)}]"
              for g, v in choices.items()]
    return copy.deepcopy(_compose((*choice, *overrides)))


@functools.lru_cache(maxsize=64)
def _compose(overrides: tuple[str, ...]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from byzbench.run import CONF_DIR  # registers the schema and resolvers

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - Hydra's missing-option error, in one line
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{' '.join(overrides)} is invalid: {first}") from None


def _merged(node: Any, options: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """A composed node with user options merged over it (a plain dict)."""
    require(options is None or isinstance(options, Mapping), where, options, "a mapping")
    # A plain (non-struct) copy: an unknown key is then refused by the build, in one line.
    base = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    out = OmegaConf.merge(base, OmegaConf.create(dict(options or {})))
    return OmegaConf.to_container(out, resolve=True)  # type: ignore[return-value]


# ---------------------------------------------------------------- arrays <-> vector


def _floating(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.floating)


def arrays_to_vector(arrays: Sequence[np.ndarray], dtype: torch.dtype | None = None) -> Tensor:
    """Every floating array, flattened and concatenated in order: ``[d]``, in ``dtype``
    (None: the arrays' promoted float dtype, e.g. float32). Integer arrays are skipped."""
    parts = [torch.from_numpy(np.ascontiguousarray(a)).reshape(-1) for a in arrays
             if _floating(a)]
    if dtype is None:
        dtype = functools.reduce(torch.promote_types, (p.dtype for p in parts), torch.float16)
    if not parts:
        return torch.zeros(0, dtype=dtype)
    return torch.cat([p.to(dtype) for p in parts])


def vector_to_arrays(vector: Tensor, like: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Inverse of :func:`arrays_to_vector`: arrays of ``like``'s shapes and dtypes, the
    floating ones read from ``vector [d]``, the others copied from ``like``."""
    sizes = [a.size for a in like if _floating(a)]
    require(sum(sizes) == vector.numel(), "vector.numel", vector.numel(),
            f"the {sum(sizes)} floating entries of the arrays")
    chunks = iter(torch.split(vector.detach().cpu(), sizes))
    out = []
    for a in like:
        if _floating(a):
            out.append(next(chunks).numpy().astype(a.dtype).reshape(a.shape))
        else:
            out.append(np.array(a, copy=True))
    return out


def model_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The module's ``state_dict`` as numpy copies (parameters and buffers, in order)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_model_arrays(model: nn.Module, arrays: Sequence[np.ndarray]) -> nn.Module:
    """Load ``arrays`` (``state_dict`` order, as :func:`model_arrays`) into ``model``."""
    keys = list(model.state_dict())
    require(len(arrays) == len(keys), "arrays", len(arrays), f"{len(keys)} arrays (state_dict)")
    model.load_state_dict({k: torch.from_numpy(np.array(a)) for k, a in zip(keys, arrays)})
    return model


def _record(keys: Sequence[str], arrays: Sequence[np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(a)) for k, a in zip(keys, arrays)})


def _reply_arrays(content: RecordDict) -> ArrayRecord:
    return next(iter(content.array_records.values()))


def _reply_metrics(content: RecordDict) -> MetricRecord:
    return next(iter(content.metric_records.values()))


# ---------------------------------------------------------------- the strategy


@dataclass
class RoundRecord:
    """One aggregation of :class:`RobustStrategy` (``keep_history=True``).

    ``replies``: each client's arrays as received, reply order; ``partitions``: their
    partition ids (None if unreported); ``updates [m, d]``: the rows the pipeline
    aggregated (``global_vector`` minus the replies, Byzantine rows replaced by the
    server attack); ``byzantine [m]``: designated rows; ``aggregate [d]``: the pipeline's output."""

    server_round: int
    global_vector: Tensor
    replies: list[list[np.ndarray]]
    partitions: list[int | None]
    updates: Tensor
    byzantine: Tensor
    aggregate: Tensor


class RobustStrategy(FedAvg):
    """Flower's FedAvg (Message API) whose aggregation is a byzbench pipeline.

    ``RobustStrategy(agg="krum", preagg=["nnm"], f=2)`` composes ``conf/agg/krum.yaml``
    and ``conf/preagg/nnm.yaml`` (``agg_options`` / ``preagg_options={"nnm": {...}}``
    override their keys) and builds them with ``byzbench.build.build_pipeline``, as a
    run does, for ``n`` rows told ``f``. Stateful stages (centered clipping's center,
    FoolsGold's histories) persist across rounds, as in a run.

    Args:
        agg: a rule of ``conf/agg`` (``krum``, ``epfml/cclip``, ...).
        preagg: pre-aggregators of ``conf/preagg``, in order.
        f: the Byzantine count the rule is told (byzbench's ``f_declared``).
        agg_options, preagg_options: overrides of the composed YAMLs.
        n: rows per round; None = the number of replies of round 1. Every round must
            bring exactly n replies (sample all clients or set ``min_train_nodes``).
        byzantine: partition ids of Byzantine clients (simulation): diagnostics and the
            omniscient attack's targets.
        attack, attack_options: an attack of ``conf/attack`` run on the server before
            aggregation (simulation only, see the module docstring); ``num_classes``
            is injected into it.
        seed: seeds the rule's and the attack's generators (byzbench's ``agg``,
            ``attack`` and ``query`` streams).
        dtype: the pipeline's float dtype; None = the arrays' (float32 for most models).
        keep_history: keep a :class:`RoundRecord` per round in ``self.history``.
        **fedavg: Flower's FedAvg arguments (``fraction_train``, ``min_train_nodes``,
            ``min_available_nodes``, ``weighted_by_key``, ...).
    """

    def __init__(self, agg: str = "mean", preagg: Sequence[str] = (), f: int = 0, *,
                 agg_options: Mapping[str, Any] | None = None,
                 preagg_options: Mapping[str, Mapping[str, Any]] | None = None,
                 n: int | None = None, byzantine: Collection[int] = (),
                 attack: str | None = None, attack_options: Mapping[str, Any] | None = None,
                 num_classes: int | None = None, seed: int = 0,
                 dtype: torch.dtype | None = None, keep_history: bool = False,
                 **fedavg: Any) -> None:
        super().__init__(**fedavg)
        require(isinstance(f, int) and f >= 0, "f", f, "an integer >= 0")
        require(n is None or (isinstance(n, int) and n > f), "n", n, f"null or an integer > f={f}")
        preagg = [preagg] if isinstance(preagg, str) else list(preagg)
        choices: dict[str, Any] = {"agg": agg, "preagg": preagg}
        if attack is not None:
            choices["attack"] = attack
        cfg = compose(**choices)
        self.agg_cfg = _merged(cfg.agg, agg_options, "agg_options")
        pre = OmegaConf.to_container(cfg.preagg, resolve=True) or {}
        for k, v in (preagg_options or {}).items():
            require(k in pre, f"preagg_options.{k}", v, f"options of a chosen one: {sorted(pre)}")
            pre[k] = _merged(pre[k], v, f"preagg_options.{k}")
        self.preagg_cfg = pre
        self.attack_cfg = None if attack is None else _merged(cfg.attack, attack_options,
                                                              "attack_options")
        self.byzantine = frozenset(int(b) for b in byzantine)
        require(attack is None or self.byzantine, "byzantine", sorted(self.byzantine),
                "the partition ids of the clients the attack replaces")
        self.name = "+".join([*pre, agg])
        self.f, self.n, self.seed, self.dtype = f, n, int(seed), dtype
        self.num_classes = num_classes
        self.keep_history = bool(keep_history)
        self.history: list[RoundRecord] = []
        self.pipeline = None
        self.attack = None
        self._global: ArrayRecord | None = None
        self._prev: Tensor | None = None
        self._owners: dict[int, int] = {}
        if n is not None:
            self._build(n)

    # -- construction

    def _build(self, n: int) -> None:
        """The pipeline (and the server attack) for ``n`` rows, built once."""
        self.n = n
        self.pipeline = build_pipeline(self.preagg_cfg, self.agg_cfg, n, self.f,
                                       make_generator(self.seed, "agg"))
        require(self.pipeline.rule.server_data is None, "agg",
                self.agg_cfg.get("_target_"), "a rule without the server's root data "
                "(FLTrust): RobustStrategy holds no data")
        self._attack_gen = make_generator(self.seed, "attack")
        self._query_gen = make_generator(self.seed, "query")
        if self.attack_cfg is not None:
            spec = ClusterSpec(n=n, f=len(self.byzantine), f_declared=self.f)
            self.attack = build_attack(self.attack_cfg, spec, self.num_classes or 0)
            require(not self.attack.poisons_data, "attack",
                    self.attack_cfg.get("_target_"), "an attack on updates: data poisoning "
                    "runs on the clients (wrap their train function with byzantine_train)")

    def summary(self) -> None:
        log.info("RobustStrategy: %s, f=%d, n=%s, attack=%s on %s", self.name, self.f,
                 self.n, (self.attack_cfg or {}).get("_target_"), sorted(self.byzantine))
        super().summary()

    # -- the round

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """FedAvg's, keeping the global arrays the updates are measured from."""
        self._global = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def _owner_ids(self, contents: list[RecordDict], nodes: list[int]) -> list[int]:
        """Each row's client: its partition id when reported, else a stable index of
        its node id (first-seen order)."""
        out = []
        for c, node in zip(contents, nodes):
            p = _reply_metrics(c).get(PARTITION_KEY)
            out.append(int(p) if p is not None else self._owners.setdefault(node,
                                                                           len(self._owners)))
        return out

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The pipeline's aggregate of the replies' updates (see the class docstring);
        metrics: FedAvg's weighted average of the replies' metrics plus diagnostics."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        require(self._global is not None, "RobustStrategy", None,
                "configure_train must run before aggregate_train")
        contents = [m.content for m in valid]
        keys = list(self._global.keys())
        glob = [self._global[k].numpy() for k in keys]
        rows = [[_reply_arrays(c)[k].numpy() for k in keys] for c in contents]
        g = arrays_to_vector(glob, self.dtype)
        X = g - torch.stack([arrays_to_vector(r, g.dtype) for r in rows])
        m = X.shape[0]
        if self.pipeline is None:
            self._build(m)
        require(m == self.n, f"round {server_round} replies", m,
                f"n={self.n}, the rows the pipeline was built for (sample every client; "
                "failed replies are not supported)")
        owners = self._owner_ids(contents, [msg.metadata.src_node_id for msg in valid])
        reported = [_reply_metrics(c).get(PARTITION_KEY) for c in contents]
        byz = torch.tensor([o in self.byzantine and r is not None
                            for o, r in zip(owners, reported)], dtype=torch.bool)
        side = self._side_inputs(byz)
        if self.attack is not None and bool(byz.any()):
            X = self._attack_rows(X, byz, server_round, side)
        if "worker_ids" in self.pipeline.needs:  # the real aggregation: row k is owners[k]
            side = replace(side, worker_ids=torch.tensor(owners))  # a CPU tensor, as the loop
        if self.pipeline.needs:
            self.pipeline.observe(side)
        u = self.pipeline(X)
        out = _record(keys, vector_to_arrays(g - u, glob))
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        if PARTITION_KEY in metrics:
            del metrics[PARTITION_KEY]
        for k, v in self.diagnostics(X, u, byz).items():
            metrics[k] = v
        self._prev = u
        if self.keep_history:
            self.history.append(RoundRecord(server_round, g, rows, reported, X, byz, u))
        return out, metrics

    def _side_inputs(self, byz: Tensor) -> SideInputs:
        """The side inputs the stages declare (``Stage.needs``), as the attack's queries
        may see them (no row owners): an honest row for rules that ask for that oracle
        (simulation only). No server row: rules with root data are refused at build."""
        if "honest_row" not in self.pipeline.needs:
            return SideInputs()
        require(self.byzantine, "agg.pivot", "honest", "an oracle known only in "
                "simulation: pass byzantine=[...] (the Byzantine partition ids)")
        return SideInputs(honest_row=int(torch.nonzero(~byz)[0]))

    def _attack_rows(self, X: Tensor, byz: Tensor, server_round: int,
                     side: SideInputs) -> Tensor:
        """Server-side simulation hook: the designated rows become ``attack(honest,
        ctx)``, the rows kept in reply order (``ctx.perm``: reply row k is row
        ``perm[k]`` of ``cat(honest, byzantine)``)."""
        h_idx, b_idx = torch.nonzero(~byz).flatten(), torch.nonzero(byz).flatten()
        order = torch.cat([h_idx, b_idx])
        perm = torch.empty_like(order).index_copy_(0, order, torch.arange(len(order)))
        honest = X[h_idx]
        f = len(b_idx)
        if self.pipeline.needs:  # queries see the side inputs, not the row owners (a run)
            self.pipeline.observe(side)
        ctx = RoundContext(t=server_round - 1, n=X.shape[0], f=f, f_declared=self.f,
                           pipeline=self.pipeline, prev_aggregate=self._prev,
                           byz_grads=X[b_idx] if self.attack.local else None,
                           generator=self._attack_gen,
                           perm=perm, query_seed=int(torch.randint(
                               0, 2**62, (1,), generator=self._query_gen)),
                           server_randomness=self.attack.server_randomness)
        B = self.attack(honest, ctx)
        if B.shape != (f, X.shape[1]):
            raise RuntimeError(f"attack returned shape {tuple(B.shape)}, expected "
                               f"{(f, X.shape[1])}")
        return torch.cat([honest, B.to(X.dtype)])[perm]

    def diagnostics(self, X: Tensor, u: Tensor, byz: Tensor) -> dict[str, float]:
        """Metrics of the last aggregation of ``X [m, d]`` into ``u``, ``byz [m]`` the
        designated rows: agg_norm, the stages' stats, and (Byzantine rows known)
        agg_error and byz_weight."""
        out = {"agg_norm": float(torch.linalg.vector_norm(u))}
        out.update({k: float(v) for k, v in self.pipeline.stats().items()})
        if self.byzantine and bool((~byz).any()):
            out["agg_error"] = float(torch.linalg.vector_norm(u - X[~byz].mean(0)))
            w = self.pipeline.row_weights(X.shape[0])
            if w is not None and bool(byz.any()):
                out["byz_weight"] = float(w[byz].sum() / w.sum().clamp_min(1e-30))
        return out


# ---------------------------------------------------------------- Byzantine clients

_POISON: contextvars.ContextVar[Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]] | None] \
    = contextvars.ContextVar("byzbench_poison", default=None)


def poison_batch(x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """What a client's training loop applies to each batch ``(x [B, ...], y [B])``: the
    identity, except inside a :func:`byzantine_train` call of a designated client of a
    data-poisoning attack (``poisons_data``), whose ``transform_batch`` then sees it as
    one Byzantine worker's batch ``[1, B, ...]`` (``label_flip``: ``y -> C - 1 - y``)."""
    fn = _POISON.get()
    if fn is None:
        return x, y
    xp, yp = fn(x.unsqueeze(0), y.unsqueeze(0), num_classes)
    return xp[0], yp[0]


@contextlib.contextmanager
def _poisoning(fn: Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]] | None):
    """:func:`poison_batch` applies ``fn`` inside the block (a module-level function:
    Ray pickles client functions by value, and a ContextVar cannot be pickled)."""
    token = _POISON.set(fn)
    try:
        yield
    finally:
        _POISON.reset(token)


TrainFn = Callable[[Message, Context], Message]


def byzantine_train(byzantine: Collection[int] = (), attack: str | None = None,
                    attack_options: Mapping[str, Any] | None = None,
                    num_classes: int | None = None, seed: int = 0
                    ) -> Callable[[TrainFn], TrainFn]:
    """Decorator of a ClientApp's ``@app.train()`` function (simulation).

    Every reply gets its ``partition-id`` metric (how :class:`RobustStrategy` tells
    clients apart). Clients whose partition id is in ``byzantine`` run the local attack
    ``attack`` (``conf/attack``, with ``local: true``): a data-poisoning attack
    (``label_flip``) is active in :func:`poison_batch` during their training; then their
    pseudo-gradient ``x = w - w_trained`` becomes ``attack([], ctx)`` with
    ``ctx.byz_grads = [x]``, sent as ``w - attack([], ctx)`` (``bit_flip``: ``-x``, the
    client moves the model back by its update; ``label_flip``: x unchanged). Each
    client attacks alone (``f = 1``, no collusion): colluding or omniscient attacks run
    on the server (``RobustStrategy(attack=...)``)."""
    byz = frozenset(int(b) for b in byzantine)
    atk, poison = None, None
    if attack is not None:
        cfg = compose(attack=attack)
        node = _merged(cfg.attack, attack_options, "attack_options")
        from hydra.utils import get_object

        cls = get_object(str(node.get("_target_")))  # the threat model is a class attribute
        require(cls.local or cls.poisons_data, "attack", attack,
                "a local attack (bit_flip, label_flip): omniscient attacks run on the "
                "server, RobustStrategy(attack=..., byzantine=[...])")
        try:
            atk = build_attack(node, ClusterSpec(n=1, f=1, f_declared=0), num_classes or 0)
        except ConfigError as e:
            raise ConfigError(f"attack={attack} cannot run on one client alone ({e}): "
                              "colluding attacks run on the server, RobustStrategy(attack="
                              "..., byzantine=[...])") from None
        poison = atk.transform_batch if atk.poisons_data else None
        require(poison is None or num_classes, "num_classes", num_classes,
                "the number of classes (a data-poisoning attack)")

    def wrap(train_fn: TrainFn) -> TrainFn:
        @functools.wraps(train_fn)
        def train(msg: Message, context: Context) -> Message:
            pid = int(context.node_config[PARTITION_KEY])
            attacking = atk is not None and pid in byz
            with _poisoning(poison if attacking else None):
                reply = train_fn(msg, context)
            if reply.has_error():
                return reply
            if attacking:
                _attack_reply(atk, msg, reply, pid, seed)
            _reply_metrics(reply.content)[PARTITION_KEY] = pid
            return reply

        return train

    return wrap


def _attack_reply(attack: Any, msg: Message, reply: Message, pid: int, seed: int) -> None:
    """Replace the reply's arrays by ``w - attack([], ctx)[0]``, ``ctx.byz_grads`` the
    client's own pseudo-gradient ``w - w_trained`` (in place)."""
    sent = _reply_arrays(msg.content)
    key = next(iter(reply.content.array_records))
    got = reply.content[key]
    keys = list(got.keys())
    w = arrays_to_vector([sent[k].numpy() for k in keys])
    like = [got[k].numpy() for k in keys]
    x = w - arrays_to_vector(like, w.dtype)
    rnd = int(msg.content.config_records.get("config", ConfigRecord()).get("server-round", 0))
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(
        [stream_seed(seed, "attack"), pid, rnd]).generate_state(1)[0]))
    ctx = RoundContext(t=max(rnd - 1, 0), n=1, f=1, f_declared=0, byz_grads=x[None],
                       generator=gen)
    b = attack(x.new_zeros(0, x.numel()), ctx)
    reply.content[key] = _record(keys, vector_to_arrays(w - b[0].to(w.dtype), like))


# ---------------------------------------------------------------- a byzbench task as clients


@functools.lru_cache(maxsize=4)
def _task_data(groups: tuple, options: str, n_clients: int, seed: int):
    """Dataset and client shards (cached per process: Ray actors build them once);
    ``options``: the task's per-group overrides as JSON (a hashable key)."""
    import json

    from byzbench.cluster import worker_shards

    cfg = compose(**dict(groups))
    opts = json.loads(options)
    dnode = _merged(cfg.dataset, opts.get("dataset"), "options.dataset")
    dnode.pop("val_frac", None)  # no validation split: clients hold the whole train set
    data = instantiate_component(dnode, "dataset", generator=make_generator(seed, "dataset"))
    partition = instantiate_component(_merged(cfg.partition, opts.get("partition"),
                                              "options.partition"), "partition")
    shards = worker_shards(partition, data.y_train, n_clients, 0, "shard",
                           make_generator(seed, "partition"), make_generator(seed, "byz_ids"))
    return cfg, data, shards


class TorchTask:
    """A byzbench dataset, model and partition (chosen by name, built from byzbench's
    configs) as ``n_clients`` Flower clients training with local SGD.

    Round r, client k: ``local_steps`` steps of SGD (``lr``) on minibatches of
    ``batch_size`` drawn with replacement from its shard, seeded by (seed, k, r), each
    batch through :func:`poison_batch`; the mean cross-entropy (or MSE) loss.
    ``options``: per group overrides, e.g. ``{"model": {"hidden": [16]}}``."""

    def __init__(self, n_clients: int, dataset: str = "digits", model: str = "mlp",
                 partition: str = "iid", options: Mapping[str, Mapping[str, Any]] | None = None,
                 local_steps: int = 1, lr: float = 0.1, batch_size: int = 32, seed: int = 0):
        require(isinstance(n_clients, int) and n_clients >= 1, "n_clients", n_clients,
                "an integer >= 1")
        require(local_steps >= 1, "local_steps", local_steps, "an integer >= 1")
        self.groups = (("dataset", dataset), ("model", model), ("partition", partition))
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.n_clients, self.local_steps, self.lr = n_clients, int(local_steps), float(lr)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def data(self):
        """``(config, Dataset, shards)``."""
        import json

        return _task_data(self.groups, json.dumps(self.options, sort_keys=True),
                          self.n_clients, self.seed)

    def model(self) -> nn.Module:
        """A fresh model, initialized from byzbench's ``init`` stream of ``seed``."""
        cfg, data, _ = self.data()
        node = _merged(cfg.model, self.options.get("model"), "options.model")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.seed, "init"))
            return instantiate_component(node, "model", input_shape=data.input_shape,
                                         num_classes=data.num_classes)

    def initial_arrays(self) -> ArrayRecord:
        """The initial global model as an ArrayRecord."""
        return ArrayRecord(self.model().state_dict())

    def train(self, arrays: Sequence[np.ndarray], pid: int, server_round: int
              ) -> tuple[list[np.ndarray], int, float]:
        """Client ``pid``'s local training from ``arrays``: (new arrays, shard size,
        mean loss)."""
        from byzbench.grads import per_sample_loss_fn

        _, data, shards = self.data()
        model = load_model_arrays(self.model(), arrays)
        model.train()
        shard = shards[pid]
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [stream_seed(self.seed, "sampling"), pid, server_round]).generate_state(1)[0]))
        params = list(model.parameters())
        loss_fn = per_sample_loss_fn(data.task)
        losses = []
        for _ in range(self.local_steps):
            idx = shard[torch.randint(len(shard), (self.batch_size,), generator=gen)]
            x, y = poison_batch(data.prepare(data.x_train[idx]), data.y_train[idx],
                                data.num_classes)
            loss = loss_fn(model(x), y).mean()
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():  # plain SGD, w <- w - lr g (torch.optim's first import
                for p, g in zip(params, grads):  # costs each Ray worker seconds)
                    p.sub_(g, alpha=self.lr)
            losses.append(loss.item())
        return list(model_arrays(model).values()), len(shard), float(np.mean(losses))

    def evaluate(self, arrays: Sequence[np.ndarray], split: str = "test") -> dict[str, float]:
        """Accuracy and loss of the model ``arrays`` on a split (byzbench's evaluate)."""
        from byzbench.grads import flat_params
        from byzbench.loop import evaluate

        _, data, _ = self.data()
        model = load_model_arrays(self.model(), arrays)
        return {k: float(v) for k, v in evaluate(model, flat_params(model), data, split).items()}

    def train_fn(self, byzantine: Collection[int] = (), attack: str | None = None,
                 attack_options: Mapping[str, Any] | None = None) -> TrainFn:
        """The ClientApp's train function ``(msg, context) -> reply``; ``byzantine`` /
        ``attack``: a local attack of the designated clients (:func:`byzantine_train`)."""
        task = self
        num_classes = self.data()[1].num_classes if attack is not None else None

        @byzantine_train(byzantine, attack, attack_options, num_classes, self.seed)
        def train(msg: Message, context: Context) -> Message:
            torch.set_num_threads(1)
            rec = _reply_arrays(msg.content)
            keys = list(rec.keys())
            rnd = int(msg.content["config"]["server-round"])
            new, count, loss = task.train([rec[k].numpy() for k in keys],
                                          int(context.node_config[PARTITION_KEY]), rnd)
            content = RecordDict({"arrays": _record(keys, new),
                                  "metrics": MetricRecord({"train_loss": loss,
                                                           "num-examples": count})})
            return Message(content=content, reply_to=msg)

        return train

    def client_app(self, byzantine: Collection[int] = (), attack: str | None = None,
                   attack_options: Mapping[str, Any] | None = None) -> ClientApp:
        """A ClientApp of these clients running :meth:`train_fn`."""
        app = ClientApp()
        app.train()(self.train_fn(byzantine, attack, attack_options))
        return app


def local_backend_config(num_cpus: int = 1) -> dict[str, Any]:
    """``backend_config`` for ``run_simulation``: a local Ray cluster of ``num_cpus``
    CPUs (one client at a time per CPU), no dashboard, nothing reached over the network."""
    return {"init_args": {"address": "local", "num_cpus": num_cpus, "num_gpus": 0,
                          "include_dashboard": False, "log_to_driver": False},
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0}}


__all__ = ["PARTITION_KEY", "RobustStrategy", "RoundRecord", "TorchTask", "arrays_to_vector",
           "byzantine_train", "compose", "load_model_arrays", "local_backend_config",
           "model_arrays", "poison_batch", "vector_to_arrays"]
