"""The declared contract shared by every stage of a round (rules, pre-aggregators,
attacks): state, randomness and the side inputs a stage needs, each declared once here
with its default. The round reads these declarations; it never probes a stage.

* ``state_keys`` - instance attributes that persist across rounds (cclip's center,
  FoolsGold's history, Mimic's running estimates). ``state_dict()`` returns deep copies
  of them plus the states of the generators named in ``generator_keys``;
  ``load_state_dict()`` restores both. Queries (``Pipeline.query``), checkpoints and the
  purity tests go through these two methods, never through ``__dict__``.
* ``substages`` - attributes holding nested stages (GAS's base rule), whose state
  nests in this one's.
* ``generator_keys`` - attributes holding a ``torch.Generator`` the stage draws from
  (bucketing's shuffle, DnC's column sample). A query with the attacker's own
  randomness swaps these for a generator of its own for its duration.
* ``needs`` - side inputs the stage reads from the round, a subset of
  :data:`SIDE_INPUTS`, delivered as one :class:`SideInputs` by ``observe``.

A subclass may set only the capability names its base declares (``capabilities``) as
class attributes; anything else that is not a method, a property or a private name
(``_x``) is a TypeError at class creation, so a misspelt capability cannot fall back to
its default without a word.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from byzbench import ConfigError

SIDE_INPUTS = frozenset({"server_grad", "worker_ids", "honest_row"})


@dataclass(frozen=True)
class SideInputs:
    """What the round tells the stages that declare they need it (``Stage.needs``).

    Attributes:
        server_grad: ``[d]`` the server's own root-data row of this round (FLTrust).
        worker_ids: ``[n]`` (CPU tensor) which client each input row comes from; given for
            the real aggregation only, never to an attacker's queries (FoolsGold).
        honest_row: index of one honest row of the pipeline's input: oracle knowledge
            a real server lacks (MoNNA's ``pivot: honest``).
    """

    server_grad: Tensor | None = None
    worker_ids: Tensor | None = None
    honest_row: int | None = None


def _copy(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.detach().clone()
    if isinstance(v, np.ndarray):
        return v.copy()
    return copy.deepcopy(v)


TOPOLOGIES = frozenset({"server", "gossip"})


class Stateful:
    """``state_dict`` / ``load_state_dict`` over the declared ``state_keys`` and
    ``generator_keys`` (torch-style: the dict holds copies; loading copies back).

    ``topologies`` (both ``server`` and ``gossip``): the topologies a rule,
    pre-aggregator or attack runs in. The build refuses any other with one line; the
    per-node gossip rules and the graph attacks declare ``{"gossip"}``."""

    state_keys: ClassVar[tuple[str, ...]] = ()
    generator_keys: ClassVar[tuple[str, ...]] = ()
    substages: ClassVar[tuple[str, ...]] = ()
    topologies: ClassVar[frozenset[str]] = TOPOLOGIES
    capabilities: ClassVar[frozenset[str]] = frozenset({"state_keys", "generator_keys",
                                                         "substages", "topologies"})

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        allowed = cls.capabilities
        for name, value in vars(cls).items():
            if name.startswith("_") or name in allowed or name == "capabilities":
                continue
            if callable(value) or isinstance(value, (property, staticmethod, classmethod)):
                continue
            raise TypeError(f"{cls.__qualname__}.{name} is not a declared capability of "
                            f"{cls.__mro__[1].__name__}: allowed {', '.join(sorted(allowed))}")
        if not cls.topologies or not cls.topologies <= TOPOLOGIES:
            raise TypeError(f"{cls.__qualname__}.topologies={sorted(cls.topologies)}: a "
                            f"non-empty subset of {sorted(TOPOLOGIES)}")

    @classmethod
    def check_topology(cls, topology: str, where: str, name: str) -> None:
        """One ConfigError line unless ``topology`` is one this class declares."""
        if topology not in cls.topologies:
            raise ConfigError(f"{where}={name} is invalid with topology={topology}: it runs "
                              f"with topology={'|'.join(sorted(cls.topologies))} only")

    def state_dict(self) -> dict[str, Any]:
        """Copies of the declared state and the generators' states."""
        out = {k: _copy(getattr(self, k)) for k in self.state_keys}
        for k in self.generator_keys:
            g = getattr(self, k)
            out[k] = None if g is None else g.get_state()
        for k in self.substages:
            out[k] = getattr(self, k).state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (copies: ``state`` stays untouched)."""
        for k in self.state_keys:
            setattr(self, k, _copy(state[k]))
        for k in self.generator_keys:
            g = getattr(self, k)
            if g is not None and state[k] is not None:
                g.set_state(state[k])
        for k in self.substages:
            getattr(self, k).load_state_dict(state[k])

    def generator_slots(self) -> list[tuple[Stateful, str]]:
        """``(owner, key)`` of every declared generator, nested stages' included."""
        out = [(self, k) for k in self.generator_keys]
        for k in self.substages:
            out += getattr(self, k).generator_slots()
        return out


class Stage(Stateful):
    """Base of every rule and pre-aggregator: a callable on ``[n, d]`` rows.

    Declared capabilities (class attributes; an instance may refine them in ``__init__``):

    * ``needs`` (default empty): side inputs read from :class:`SideInputs`.
    * ``last_stats`` (default empty): per-call diagnostics the run logs as ``train``
      metrics under these names (e.g. cclip's ``cclip_clipped``); names carry the
      stage's name so stages cannot collide. Reassigned per call, never mutated.
    * ``batch(xs [k, n, d])``: the batched path, equal to stacking ``stage(xs[i])`` each
      from the same state and random draws. A stage declares it by overriding
      :meth:`batch`; without it, ``Pipeline.query_batch`` loops over queries.
    * ``line(fam)``: the line path of line queries (:meth:`line`), declared likewise.
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    last_stats: ClassVar[dict[str, float]] = {}
    capabilities = Stateful.capabilities | {"needs", "last_stats"}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        bad = set(cls.needs) - SIDE_INPUTS
        if bad:
            raise TypeError(f"{cls.__qualname__}.needs names unknown side inputs {sorted(bad)}: "
                            f"allowed {', '.join(sorted(SIDE_INPUTS))}")

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def observe(self, side: SideInputs) -> None:
        """Take this round's side inputs (called only when ``needs`` is not empty)."""

    def batch(self, xs: Tensor) -> Tensor:
        """``[k, n, d] ->`` ``[k, d]`` (rules) or ``[k, n_out, d]`` (pre-aggregators)."""
        raise NotImplementedError

    @classmethod
    def has_batch(cls) -> bool:
        """Whether the class overrides :meth:`batch` (a declared batched path)."""
        return cls.batch is not Stage.batch

    def line(self, fam: Any) -> Any:
        """The line path (``byzbench.aggregators.line``): the candidates of a line query
        as an affine family of rows over a small basis -> the next stage's family
        (pre-aggregators) or the ``[k, d]`` aggregates (rules)."""
        raise NotImplementedError

    @classmethod
    def has_line(cls) -> bool:
        """Whether the class overrides :meth:`line` (a declared line path); without one
        a line query materializes its candidates for the batched path."""
        return cls.line is not Stage.line


class Rule(Stage):
    """A gradient aggregation rule ``[n, d] -> [d]``, constructed with plain keyword
    arguments plus ``n`` (rows it will receive) and ``f`` (declared Byzantine count)
    injected by ``byzbench.build``.

    Declared outputs: ``last_weights`` (default None): ``[n]`` the weight each input row
    received in the last output (one-hot for Krum, ``1/m`` on Multi-Krum's selection).
    ``batch_weights`` (default False): ``batch`` sets ``last_batch_weights`` (default
    None): ``[k, n]`` each problem's ``last_weights`` of the last batched call (a row of
    nan where a problem got none), or None when the rule exposes no weights (a rule
    that never has weights may declare ``batch_weights`` and leave it None). Without
    the declaration a weighted batched query loops over single queries.
    ``server_data`` (default None): the root dataset the server holds,
    ``{size, draw}`` (FLTrust), carved out of the training set by the build.
    """

    last_weights: ClassVar[Tensor | None] = None
    batch_weights: ClassVar[bool] = False
    last_batch_weights: ClassVar[Tensor | None] = None
    server_data: ClassVar[dict | None] = None
    capabilities = Stage.capabilities | {"last_weights", "batch_weights",
                                         "last_batch_weights", "server_data"}


class PreAggregator(Stage):
    """A pre-aggregator ``[n, d] -> [n_out, d]``, chainable before any rule.

    Declared outputs: ``n_out`` (rows it returns; set in ``__init__`` from the injected
    ``n``) and ``last_mixing`` (default None: row-preserving, row i out comes from row i
    in): ``[n_out, n_in]`` the output rows as linear combinations of the input rows
    (bucketing, NNM). ``batch_mixing`` (default False): ``batch`` sets
    ``last_batch_mixing`` (default None: row-preserving): ``[k, n_out, n_in]`` each
    problem's ``last_mixing`` of the last batched call. Without the declaration a
    weighted batched query loops over single queries.
    """

    n_out: int
    last_mixing: ClassVar[Tensor | None] = None
    batch_mixing: ClassVar[bool] = False
    last_batch_mixing: ClassVar[Tensor | None] = None
    capabilities = Stage.capabilities | {"n_out", "last_mixing", "batch_mixing",
                                         "last_batch_mixing"}


class FunctionRule(Rule):
    """Adapter: a plain callable ``fn(x [n, d]) -> [d]`` used as a rule (no batched
    path, no state, no weights)."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


class FunctionPreAggregator(PreAggregator):
    """Adapter: a plain callable ``fn(x [n, d]) -> [n_out, d]`` used as a
    pre-aggregator that keeps the row count unless it says otherwise (``n_out``)."""

    def __init__(self, fn: Any, n_out: int):
        self.fn, self.n_out = fn, int(n_out)

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

