"""Contracts for gradient aggregation rules (GARs) and pre-aggregators, and the
pipeline that chains them.

A GAR is any callable ``rule(x: Tensor[n, d]) -> Tensor[d]``, constructed with plain
keyword arguments plus the cluster's ``n`` (rows it will receive) and ``f`` (declared
Byzantine count) injected by ``byzbench.build``. A pre-aggregator maps
``[n, d] -> [n_out, d]`` and exposes ``n_out``.

Optional attributes a stage may set after each call (read by the run for metrics):

* ``last_weights: Tensor[n] | None`` (rules) - the weight each input row received in
  the output (e.g. one-hot for Krum, 1/m on the selected rows for Multi-Krum).
* ``last_mixing: Tensor[n_out, n_in] | None`` (pre-aggregators) - output rows as
  linear combinations of input rows (bucketing, NNM); ``None`` means row-preserving
  (row i out comes from row i in, e.g. clipping).
* ``last_stats: dict[str, float]`` (any stage) - per-call diagnostics the run logs as
  ``train`` metrics under these names (e.g. cclip's ``cclip_clipped``, the fraction of
  rows it clipped); names carry the stage's name so stages cannot collide.

Oracle input: a rule with ``needs_honest_row`` true (MoNNA's ``pivot: honest``) reads
``honest_row``, the index of one honest row of its input, which the run sets through
:meth:`Pipeline.tell_honest_row` before each aggregation (knowledge a real server lacks;
documented as such where it is used).

Optional batched call (adaptive attacks evaluate many candidates per round through
``Pipeline.query_batch``): ``batch(xs: Tensor[k, n, d]) -> Tensor[k, d]`` (rules) or
``Tensor[k, n_out, d]`` (pre-aggregators), equal to stacking ``stage(xs[i])`` each from
the same state and the same random draws. A stage without it still works: the
pipeline then loops over the ``k`` inputs (contributors are not forced to batch).

State: stateful stages (e.g. centered clipping's center) keep state as attributes and
*reassign* them rather than mutating tensors in place, so ``Pipeline.query`` can
evaluate the pipeline without side effects by restoring attributes afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Aggregator(Protocol):
    """``[n, d] -> [d]``."""

    def __call__(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class PreAggregator(Protocol):
    """``[n, d] -> [n_out, d]``."""

    n_out: int

    def __call__(self, x: Tensor) -> Tensor: ...


class Pipeline:
    """Pre-aggregators applied in order, then one rule: ``[n, d] -> [d]``.

    ``pipeline(x)`` is the real server aggregation (updates stateful stages);
    ``pipeline.query(x, seed)`` is what an omniscient attacker may evaluate: the same
    computation with every stage's attributes and generator states restored after,
    drawing from the server's generators (``seed=None``) or from the attacker's own
    (``seed``; see ``RoundContext.query``, which decides).
    """

    def __init__(
        self, preaggs: Sequence[Callable[[Tensor], Tensor]], rule: Callable[[Tensor], Tensor]
    ):
        self.preaggs = list(preaggs)
        self.rule = rule

    @property
    def stages(self) -> list[Any]:
        return [*self.preaggs, self.rule]

    def __call__(self, x: Tensor) -> Tensor:
        for p in self.preaggs:
            x = p(x)
        return self.rule(x)

    @contextmanager
    def frozen(self, seed: int | None = None):
        """Restore every stage's attributes and generator states on exit.

        ``seed=None``: stages draw from the server's own generators (the strongest
        attacker: a query sees exactly the draws the real call will make next).
        ``seed=s``: for the duration of the block each distinct server generator is
        replaced by a fresh one seeded ``s`` on the same device (the attacker's own
        randomness: it neither sees nor advances the server's draws)."""
        saved = []
        for s in self.stages:
            attrs = dict(vars(s)) if hasattr(s, "__dict__") else {}
            gens = {k: v.get_state() for k, v in attrs.items() if isinstance(v, torch.Generator)}
            saved.append((s, attrs, gens))
        if seed is not None:
            own: dict[int, torch.Generator] = {}
            for s, attrs, gens in saved:
                for k in gens:
                    g = attrs[k]
                    if id(g) not in own:
                        own[id(g)] = torch.Generator(device=g.device).manual_seed(int(seed))
                    setattr(s, k, own[id(g)])
        try:
            yield self
        finally:
            for s, attrs, gens in saved:
                if attrs:
                    s.__dict__.clear()
                    s.__dict__.update(attrs)
                for k, st in gens.items():
                    attrs[k].set_state(st)

    def query(self, x: Tensor, seed: int | None = None) -> Tensor:
        """Aggregate ``x`` without changing any stage's state (``seed``: see
        ``frozen``; None = the server's randomness)."""
        with self.frozen(seed):
            return self(x)

    def supports_batch(self) -> bool:
        """Whether every stage has a batched call ``batch(xs [k, n, d])``."""
        return all(callable(getattr(s, "batch", None)) for s in self.stages)

    def query_batch(self, xs: Tensor, seed: int | None = None) -> Tensor:
        """``query(xs[i], seed)`` of each ``xs[i]`` (``xs [k, n, d] -> [k, d]``), every
        one from the same state and random draws, in one batched call when every stage
        supports it (``stage.batch``: ``[k, n, d] -> [k, d]`` for rules, ``[k, n_out,
        d]`` for pre-aggregators), else a loop of queries."""
        if not self.supports_batch():
            return torch.stack([self.query(x, seed) for x in xs])
        with self.frozen(seed):
            for p in self.preaggs:
                xs = p.batch(xs)
            return self.rule.batch(xs)

    def query_line(self, honest: Tensor, base: Tensor, direction: Tensor, scales: Tensor,
                   order: Tensor | None, seed: int | None, f: int | None = None,
                   signs: Tensor | None = None) -> Tensor:
        """``[k, d]``: the aggregates of ``cat(honest, f rows base + scales[i] signs_j
        direction)[order]`` for every scale, as ``query_batch`` of those candidates,
        through the stages' line paths (``byzbench.aggregators.line``: the honest rows'
        work done once) when every stage has one. ``f``: default ``len(order) - h``."""
        from byzbench.aggregators import line

        f = len(order) - honest.shape[0] if f is None else f
        return line.query(self, honest, base, direction, scales, f, order, seed, signs)

    def stats(self) -> dict[str, float]:
        """Every stage's ``last_stats`` of the last call, merged."""
        out: dict[str, float] = {}
        for s in self.stages:
            out.update(getattr(s, "last_stats", None) or {})
        return out

    def tell_honest_row(self, row: int) -> None:
        """Name one honest row of the pipeline's input to rules that need it (oracle
        knowledge, see the module docstring). Row identities survive only
        row-preserving pre-aggregators; ``build_pipeline`` refuses the others."""
        if getattr(self.rule, "needs_honest_row", False):
            self.rule.honest_row = int(row)

    def row_weights(self, n: int) -> Tensor | None:
        """Weight each of the ``n`` pipeline-input rows received in the last output, by
        composing the rule's ``last_weights`` with pre-aggregators' ``last_mixing``;
        ``None`` if the rule does not expose weights."""
        w = getattr(self.rule, "last_weights", None)
        if w is None:
            return None
        for p in reversed(self.preaggs):
            m = getattr(p, "last_mixing", None)
            if m is not None:
                w = w @ m.to(w.dtype)
        return w if w.shape[0] == n else None
