"""The pipeline that chains pre-aggregators and one rule, and the contracts it reads.

A rule is a :class:`~byzbench.stages.Rule` (``[n, d] -> [d]``), a pre-aggregator a
:class:`~byzbench.stages.PreAggregator` (``[n, d] -> [n_out, d]``); both are declared in
:mod:`byzbench.stages` with every optional capability (weights, mixing, stats, the
batched path, side inputs, state) and its default. A plain callable becomes a stage
through :func:`as_stage`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from byzbench import kernels
from byzbench.stages import (
    FunctionPreAggregator,
    FunctionRule,
    PreAggregator,
    Rule,
    SideInputs,
    Stage,
)

Aggregator = Rule  # the name older code and docs use

__all__ = ["Aggregator", "Pipeline", "PreAggregator", "Rule", "SideInputs", "Stage",
           "as_stage"]


def as_stage(obj: Any, kind: str, n: int = 0) -> Stage:
    """``obj`` itself if it is a stage of ``kind`` (``rule`` | ``preagg``), else a plain
    callable wrapped in the adapter (a pre-aggregator keeps ``n`` rows)."""
    base = Rule if kind == "rule" else PreAggregator
    if isinstance(obj, base):
        return obj
    if isinstance(obj, Stage) or not callable(obj):
        raise TypeError(f"{type(obj).__name__} is not a {base.__name__}")
    return FunctionRule(obj) if kind == "rule" else FunctionPreAggregator(obj, n)


class Pipeline:
    """Pre-aggregators applied in order, then one rule: ``[n, d] -> [d]``.

    ``pipeline(x)`` is the real server aggregation (updates stateful stages);
    ``pipeline.query(x, seed)`` is what an omniscient attacker may evaluate: the same
    computation with every stage's declared state and generator states restored after,
    drawing from the server's generators (``seed=None``) or from the attacker's own
    (``seed``; see ``RoundContext.query``, which decides).
    """

    def __init__(self, preaggs: Sequence[Callable[[Tensor], Tensor]],
                 rule: Callable[[Tensor], Tensor]):
        self.preaggs: list[PreAggregator] = [as_stage(p, "preagg") for p in preaggs]
        self.rule: Rule = as_stage(rule, "rule")  # type: ignore[assignment]

    @property
    def stages(self) -> list[Stage]:
        return [*self.preaggs, self.rule]

    @property
    def needs(self) -> frozenset[str]:
        """The side inputs any stage declares it needs."""
        return frozenset().union(*(s.needs for s in self.stages))

    def __call__(self, x: Tensor) -> Tensor:
        for p in self.preaggs:
            x = p(x)
        return self.rule(x)

    def observe(self, side: SideInputs) -> None:
        """Hand this round's side inputs to the stages that declare a need."""
        for s in self.stages:
            if s.needs:
                s.observe(side)

    def state_dict(self) -> dict[str, Any]:
        """Every stage's ``state_dict`` (``preagg.<i>`` in order, then ``rule``)."""
        out = {f"preagg.{i}": p.state_dict() for i, p in enumerate(self.preaggs)}
        out["rule"] = self.rule.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, p in enumerate(self.preaggs):
            p.load_state_dict(state[f"preagg.{i}"])
        self.rule.load_state_dict(state["rule"])

    @contextmanager
    def frozen(self, seed: int | None = None):
        """Restore every stage's declared state and generator states on exit.

        ``seed=None``: stages draw from the server's own generators (the strongest
        attacker: a query sees exactly the draws the real call will make next).
        ``seed=s``: for the duration of the block each distinct server generator is
        replaced by a fresh one seeded ``s`` on the same device (the attacker's own
        randomness: it neither sees nor advances the server's draws)."""
        saved = self.state_dict()
        swapped: list[tuple[Any, str, torch.Generator]] = []
        if seed is not None:
            own: dict[int, torch.Generator] = {}
            for stage in self.stages:
                for s, k in stage.generator_slots():
                    g = getattr(s, k)
                    if g is None:
                        continue
                    if id(g) not in own:
                        own[id(g)] = torch.Generator(device=g.device).manual_seed(int(seed))
                    swapped.append((s, k, g))
                    setattr(s, k, own[id(g)])
        try:
            yield self
        finally:
            for s, k, g in swapped:
                setattr(s, k, g)
            self.load_state_dict(saved)

    def query(self, x: Tensor, seed: int | None = None) -> Tensor:
        """Aggregate ``x`` without changing any stage's state (``seed``: see
        ``frozen``; None = the server's randomness)."""
        with self.frozen(seed):
            return self(x)

    def supports_batch(self) -> bool:
        """Whether every stage declares a batched call ``batch(xs [k, n, d])``."""
        return all(s.has_batch() for s in self.stages)

    def supports_batch_weights(self) -> bool:
        """Whether every stage's batched paths expose their weights or mixing
        (``Rule.batch_weights``, ``PreAggregator.batch_mixing``)."""
        return self.rule.batch_weights and all(p.batch_mixing for p in self.preaggs)

    def query_batch(self, xs: Tensor, seed: int | None = None, weights: bool = False):
        """``query(xs[i], seed)`` of each ``xs[i]`` (``xs [k, n, d] -> [k, d]``), every
        one from the same state and random draws, in one batched call when every stage
        supports it, else a loop of queries. ``weights=True`` returns ``(aggregates,
        row_weights [k, n] or None)`` (:meth:`batch_row_weights`; a loop of single
        queries where a stage's batched paths expose none)."""
        if weights and not (self.supports_batch() and self.supports_batch_weights()):
            return self._query_each(xs, seed)
        if not self.supports_batch():
            return torch.stack([self.query(x, seed) for x in xs])
        n = xs.shape[1]
        with self.frozen(seed):
            for p in self.preaggs:
                xs = p.batch(xs)
            out = self.rule.batch(xs)
            return (out, self.batch_row_weights(n)) if weights else out

    def _query_each(self, xs: Tensor, seed: int | None) -> tuple[Tensor, Tensor | None]:
        """``(aggregates [k, d], row_weights [k, n] or None)`` by k single queries."""
        aggs, ws = [], []
        for x in xs:
            with self.frozen(seed):
                aggs.append(self(x))
                ws.append(self.row_weights(x.shape[0]))
        return torch.stack(aggs), kernels.stack_weights(ws, xs.shape[1], xs)

    def supports_line(self) -> bool:
        """Whether every stage declares a line path (``Stage.line``)."""
        return all(s.has_line() for s in self.stages)

    def query_line(self, honest: Tensor, base: Tensor, direction: Tensor, scales: Tensor,
                   order: Tensor | None, seed: int | None, f: int | None = None,
                   signs: Tensor | None = None, weights: bool = False):
        """``[k, d]``: the aggregates of ``cat(honest, f rows base + scales[i] signs_j
        direction)[order]`` for every scale, as ``query_batch`` of those candidates,
        through the stages' line paths (``byzbench.aggregators.line``: the honest rows'
        work done once) when every stage has one. ``f``: default ``len(order) - h``.
        ``weights=True``: ``(aggregates, row_weights [k, n] or None)`` in the
        pipeline's row order, as ``query_batch(..., weights=True)``."""
        from byzbench.aggregators import line

        f = len(order) - honest.shape[0] if f is None else f
        return line.query(self, honest, base, direction, scales, f, order, seed, signs,
                          weights)

    def stats(self) -> dict[str, float]:
        """Every stage's ``last_stats`` of the last call, merged."""
        out: dict[str, float] = {}
        for s in self.stages:
            out.update(s.last_stats)
        return out

    def row_weights(self, n: int) -> Tensor | None:
        """Weight each of the ``n`` pipeline-input rows received in the last output, by
        composing the rule's ``last_weights`` with pre-aggregators' ``last_mixing``;
        ``None`` if the rule does not expose weights."""
        w = self.rule.last_weights
        if w is None:
            return None
        w = _compose(w, [p.last_mixing for p in self.preaggs])
        return w if w.shape[0] == n else None

    def batch_row_weights(self, n: int) -> Tensor | None:
        """``[k, n]``: :meth:`row_weights` of each problem of the last batched call (the
        rule's ``last_batch_weights`` composed with ``last_batch_mixing``, problem by
        problem with the same products: the same values as k single calls)."""
        w = self.rule.last_batch_weights
        if w is None:
            return None
        mixes = [p.last_batch_mixing for p in self.preaggs]
        w = torch.stack([_compose(w[i], [None if m is None else m[i] for m in mixes])
                         for i in range(w.shape[0])])
        return w if w.shape[1] == n else None


def _compose(w: Tensor, mixings: list[Tensor | None]) -> Tensor:
    """Row weights ``w`` of the rule's input pulled back through the pre-aggregators'
    mixing matrices (in order; None: row-preserving)."""
    for m in reversed(mixings):
        if m is not None:
            w = w @ m.to(w.dtype)
    return w
