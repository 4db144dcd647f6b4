"""Contracts for Byzantine attacks.

An attack is any callable ``attack(honest: Tensor[n_h, d], ctx: RoundContext) ->
Tensor[f, d]`` (dtype/device of ``honest``; ``f = ctx.f``; ``f = 0`` gives ``[0, d]``),
constructed with plain keyword arguments (``n``, ``f``, ``f_declared`` and
``num_classes`` are injected by ``byzbench.build`` when the constructor accepts them).

Optional class attributes read by the training loop:

* ``local: bool`` - threat model. ``True``: each Byzantine worker computes its own
  gradient on its own data shard (same vectorized pass as the honest workers) and the
  attack receives them as ``ctx.byz_grads [f, d]``. Default ``False`` (omniscient:
  the attack sees every honest gradient of the round).
* ``transform_labels(y: Tensor, num_classes: int) -> Tensor`` - applied to the
  Byzantine workers' labels inside the vectorized gradient pass (label flipping).
  Implies ``local``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass(frozen=True)
class RoundContext:
    """What an attacker knows at round ``t``.

    Attributes:
        t: round index, starting at 0.
        n: number of workers.
        f: number of Byzantine workers (rows to return).
        f_declared: the f the aggregation rule was told.
        pipeline: the server's real pre-aggregators + rule; use ``pipeline.query(x)``
            to evaluate an ``[n, d]`` matrix without side effects.
        prev_aggregate: the server's aggregate of round ``t - 1`` (``None`` at t = 0).
        byz_grads: ``[f, d]`` the Byzantine workers' own honest-protocol gradients
            (only for ``local`` attacks, else ``None``).
        generator: the attack's own seeded generator (device of the gradients).
    """

    t: int
    n: int
    f: int
    f_declared: int
    pipeline: Callable[[Tensor], Tensor] | None = None
    prev_aggregate: Tensor | None = None
    byz_grads: Tensor | None = None
    generator: torch.Generator | None = None

    def query(self, x: Tensor) -> Tensor:
        """Aggregate ``x [n, d]`` with the real pipeline, without side effects."""
        if self.pipeline is None:
            raise RuntimeError("this attack needs the aggregation pipeline, none in context")
        q = getattr(self.pipeline, "query", None)
        return q(x) if q is not None else self.pipeline(x)


@runtime_checkable
class Attack(Protocol):
    """``honest [n_h, d], ctx -> [f, d]``."""

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor: ...


def repeat_rows(b: Tensor, f: int) -> Tensor:
    """``b [d] -> [f, d]``: every Byzantine worker sends the same vector."""
    return b.unsqueeze(0).expand(f, -1).clone()
