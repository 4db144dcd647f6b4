"""Contracts for Byzantine attacks.

An attack is an :class:`Attack`: ``attack(honest: Tensor[n_h, d], ctx: RoundContext) ->
Tensor[f, d]`` (dtype/device of ``honest``; ``f = ctx.f``; ``f = 0`` gives ``[0, d]``),
constructed with plain keyword arguments (``n``, ``f``, ``f_declared`` and
``num_classes`` are injected by ``byzbench.build`` when the constructor accepts them).
Every optional capability is declared on :class:`Attack` with its default; a plain
callable becomes an attack through :class:`FunctionAttack`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from byzbench.stages import Stateful

if TYPE_CHECKING:
    from byzbench.aggregators.base import Pipeline


@dataclass(frozen=True)
class RoundContext:
    """What an attacker knows at round ``t``.

    Its tensors (``byz_grads``, the honest rows passed beside it) are valid during the
    attack's call only: the loop updates its worker-momentum buffer in place, so an
    attack that keeps history across rounds stores copies.

    Attributes:
        t: round index, starting at 0.
        n: number of workers.
        f: number of Byzantine workers (rows to return).
        f_declared: the f the aggregation rule was told.
        pipeline: the server's real pre-aggregators + rule; evaluate an honest-first
            ``[n, d]`` matrix with ``ctx.query(x)`` (no side effects).
        prev_aggregate: the server's aggregate of round ``t - 1`` (``None`` at t = 0).
        byz_grads: ``[f, d]`` the Byzantine workers' own honest-protocol gradients
            (only for ``local`` attacks, else ``None``).
        generator: the attack's own seeded generator (device of the gradients).
        perm: ``[n]`` the server's row permutation of this round: it aggregates
            ``cat(honest, byz)[perm]`` (``None``: rows in honest-first order).
        server_randomness: what a query may see. ``False`` (default): queries use the
            attacker's own randomness - rows in an order drawn by the attacker and
            random stages (bucketing, DnC, SignGuard samples) drawing from a generator
            seeded ``query_seed`` - so they neither see nor advance the server's
            draws. ``True``: the strongest attacker, who knows the server's
            permutation ``perm`` and the exact draws the real round will make.
        query_seed: seed of the attacker's own randomness for this round's queries
            (the same for every query of the round: candidate scales are compared
            under common random numbers).

    The knowledge each attack uses is listed in docs/ATTACKS.md.
    """

    t: int
    n: int
    f: int
    f_declared: int
    pipeline: Pipeline | None = None
    prev_aggregate: Tensor | None = None
    byz_grads: Tensor | None = None
    generator: torch.Generator | None = None
    perm: Tensor | None = None
    server_randomness: bool = False
    query_seed: int = 0

    def query_order(self, device: torch.device | str = "cpu") -> Tensor | None:
        """``[n]`` the row order a query aggregates (server's ``perm`` for the strongest
        attacker, else a permutation drawn from ``query_seed``)."""
        if self.server_randomness:
            return None if self.perm is None else self.perm.to(device)
        g = torch.Generator().manual_seed(int(self.query_seed))
        return torch.randperm(self.n, generator=g).to(device)

    def query(self, x: Tensor, weights: bool = False):
        """Aggregate the honest-first ``x [n, d]`` with the real pipeline, as the server
        would (same row convention), without side effects; the randomness is the
        attacker's own unless ``server_randomness``. ``weights=True`` returns
        ``(aggregate [d], weight of each row of x [n] or None)``."""
        p = self.pipeline
        if p is None:
            raise RuntimeError("this attack needs the aggregation pipeline, none in context")
        order = self.query_order(x.device) if x.shape[0] == self.n else None
        xp = x if order is None else x[order]
        seed = None if self.server_randomness else int(self.query_seed)
        with p.frozen(seed):
            agg = p(xp)
            w = p.row_weights(x.shape[0]) if weights else None
        if not weights:
            return agg
        return agg, _input_order(w, order)


    def query_batch(self, xs: Tensor, ordered: bool = False) -> Tensor:
        """``query`` of each honest-first ``xs[i]`` (``xs [k, n, d] -> [k, d]``), in one
        batched pipeline call when every stage has a batched path (else a loop): what
        the line maximizer uses for all its scan points at once. ``ordered``: the rows
        are already in ``query_order`` (``attacks._ops.query_candidates``)."""
        p = self.pipeline
        if p is None:
            raise RuntimeError("this attack needs the aggregation pipeline, none in context")
        order = self.query_order(xs.device) if xs.shape[1] == self.n and not ordered else None
        xp = xs if order is None else xs.index_select(1, order)
        return p.query_batch(xp, None if self.server_randomness else int(self.query_seed))

    def query_line(self, honest: Tensor, base: Tensor, direction: Tensor, scales: Tensor,
                   signs: Tensor | None = None, weights: bool = False):
        """``[k, d]``: ``query`` of ``cat(honest, f rows base + scales[i] signs_j
        direction)`` for every scale (``signs [f]``, default all 1): a line of
        candidates in one pipeline call, the honest rows' work done once
        (``Pipeline.query_line``). ``weights=True`` returns ``(aggregates [k, d],
        weights [k, n] or None)``: row i of the weights is what ``query(candidate i,
        weights=True)`` gives (honest rows first; a row of nan where that query gives
        None), by the stages' batched paths (``Pipeline.query_batch``)."""
        p = self.pipeline
        if p is None:
            raise RuntimeError("this attack needs the aggregation pipeline, none in context")
        order = self.query_order(honest.device) if honest.shape[0] + self.f == self.n else None
        out = p.query_line(honest, base, direction, scales, order,
                           None if self.server_randomness else int(self.query_seed),
                           f=self.f, signs=signs, weights=weights)
        if not weights:
            return out
        return out[0], _input_order(out[1], order)


def _input_order(w: Tensor | None, order: Tensor | None) -> Tensor | None:
    """Weights ``[..., n]`` of the rows in query order, put back in the input's row
    order (``x[order]`` was aggregated)."""
    if w is None or order is None:
        return w
    return torch.empty_like(w).index_copy_(w.dim() - 1, order.to(w.device), w)


class Attack(Stateful):
    """Base of every attack. Declared capabilities (class attributes; an instance may
    refine them in ``__init__``), read by the round:

    * ``local`` (False): threat model. True: each Byzantine worker computes its own
      gradient on its own data shard (same vectorized pass as the honest workers), and
      the attack receives them as ``ctx.byz_grads [f, d]``. False: omniscient, the attack
      sees every honest row of the round.
    * ``poisons_data`` (False): the Byzantine workers' minibatches go through
      :meth:`transform_batch` inside the vectorized pass (label flipping, backdoor
      triggers), and :meth:`evaluators` adds metrics to every evaluation (a backdoor's
      ``asr``). Implies ``local``.
    * ``byz_momentum`` (True): under worker momentum, whether ``ctx.byz_grads`` holds the
      Byzantine workers' momentum (True) or their raw gradients (False).
    * ``server_randomness`` (False): set by ``byzbench.build`` from the attack config
      key of that name; see ``RoundContext.server_randomness``.
    * ``scale_param`` (None), ``scale_range`` ((0.01, 10.0)), ``scale_overrides`` ({}):
      the scale attribute the generic per-round tuner (``attack.tune``) searches, its
      range, and attribute values it sets first.
    * ``state_keys`` / ``generator_keys`` (empty): what persists across rounds
      (``state_dict`` / ``load_state_dict``).
    * ``batch_nodes`` (False): :meth:`nodes` computes the rows for k gossip recipients
      of equal neighbourhood shape in one call; the gossip round then calls it once per
      group instead of once per recipient. Declared only by attacks without state or
      random draws, whose batched rows equal the per-recipient ones (tested).
    """

    local: ClassVar[bool] = False
    poisons_data: ClassVar[bool] = False
    byz_momentum: ClassVar[bool] = True
    server_randomness: ClassVar[bool] = False
    scale_param: ClassVar[str | None] = None
    scale_range: ClassVar[tuple[float, float]] = (0.01, 10.0)
    scale_overrides: ClassVar[dict[str, Any]] = {}
    batch_nodes: ClassVar[bool] = False
    capabilities = Stateful.capabilities | {"local", "poisons_data", "byz_momentum",
                                            "server_randomness", "scale_param",
                                            "scale_range", "scale_overrides", "batch_nodes"}

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        raise NotImplementedError

    def nodes(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        """``[k, f, d]``: the rows for k recipients at once (``batch_nodes``): ``honest
        [k, h, d]`` each recipient's honest rows (its own first), ``ctx`` a gossip
        ``NodeContext`` whose per-recipient fields are stacked (``weights [k, n]``;
        ``prev_aggregate`` None; ``n``, ``f``, ``f_declared`` shared by the group)."""
        raise NotImplementedError

    @property
    def computes(self) -> bool:
        """Whether the Byzantine workers compute on their own data this round."""
        return self.local or self.poisons_data

    def transform_batch(self, x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """The Byzantine workers' minibatch ``(x [r, B, ...], y [r, B])`` as they train on
        it (``poisons_data`` only; identity by default): new tensors, or the inputs."""
        return x, y

    def scale_line(self, honest: Tensor, ctx: RoundContext
                   ) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """Its rows as a function of its scale parameter, ``base + v signs_j direction``
        (``(base [d], direction [d], signs [f] | None)``), or None this round: the tuner
        then queries the whole line in one ``ctx.query_line`` call. Declared by
        overriding (:meth:`has_scale_line`)."""
        return None

    @classmethod
    def has_scale_line(cls) -> bool:
        """Whether the class overrides :meth:`scale_line`."""
        return cls.scale_line is not Attack.scale_line

    def evaluators(self) -> list[Callable]:
        """Extra evaluations ``(model, theta, data, split) -> dict[str, Tensor]`` the run
        logs at every evaluation (a backdoor's ``asr``); none by default. Read once by
        ``byzbench.build`` (the threat model is chosen at build time)."""
        return []


class DataPoisoning(Attack):
    """Base of data-poisoning attacks (local threat model): ``local`` and
    ``poisons_data`` declared true; subclasses define :meth:`transform_batch`."""

    local = True
    poisons_data = True


class FunctionAttack(Attack):
    """Adapter: a plain callable ``fn(honest, ctx) -> [f, d]`` used as an omniscient
    attack (no state)."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        return self.fn(honest, ctx)


def as_attack(obj: Any) -> Attack:
    """``obj`` if it is an :class:`Attack`, else a plain callable in the adapter."""
    if isinstance(obj, Attack):
        return obj
    if not callable(obj):
        raise TypeError(f"{type(obj).__name__} is not an Attack")
    return FunctionAttack(obj)


def repeat_rows(b: Tensor, f: int) -> Tensor:
    """``b [d] -> [f, d]``: every Byzantine worker sends the same vector."""
    return b.unsqueeze(0).expand(f, -1).clone()


def repeat_node_rows(b: Tensor, f: int) -> Tensor:
    """``b [k, d] -> [k, f, d]``: :func:`repeat_rows` for k recipients at once."""
    return b.unsqueeze(1).expand(-1, f, -1).clone()
