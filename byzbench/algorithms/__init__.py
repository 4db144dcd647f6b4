"""What the workers compute in a round, chosen at build time (``algorithm=``).

A workers function is ``fn(theta [d], draw) -> (U [m, d], losses [m])``: ``draw()``
returns the next minibatch ``(X [m, B, ...], Y [m, B])`` of the round's m computing
clients (each from its own shard; Byzantine rows with their own, possibly flipped,
labels), ``U`` holds the rows the clients send (DSGD: one gradient each; FedAvg: the
update ``theta - theta_i^K`` after K local steps) and ``losses`` each client's loss at
the global model theta. The loop calls it and never branches on the algorithm. State
that persists across rounds (client control variates, say) is declared as a
:class:`~byzbench.stages.Stateful`'s ``state_keys``; checkpoints save it through
``state_dict()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from torch import Tensor

Draw = Callable[[], tuple[Tensor, Tensor]]


class Workers(Protocol):
    """``(theta [d], draw) -> (U [m, d], losses [m])``, with the state that persists
    across rounds behind ``state_dict`` / ``load_state_dict`` (``Stateful``)."""

    def __call__(self, theta: Tensor, draw: Draw) -> tuple[Tensor, Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
