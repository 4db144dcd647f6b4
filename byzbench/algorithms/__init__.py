"""What the workers compute in a round, chosen at build time (``algorithm=``).

A workers function is ``fn(theta [d], draw) -> (U [m, d], losses [m])``: ``draw()``
returns the next minibatch ``(X [m, B, ...], Y [m, B])`` of the round's m computing
clients (each from its own shard; Byzantine rows with their own, possibly flipped,
labels), ``U`` holds the rows the clients send (DSGD: one gradient each; FedAvg: the
update ``theta - theta_i^K`` after K local steps) and ``losses`` each client's loss at
the global model theta. The loop calls it and never branches on the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import Tensor

Draw = Callable[[], tuple[Tensor, Tensor]]


class Workers(Protocol):
    """``(theta [d], draw) -> (U [m, d], losses [m])``."""

    def __call__(self, theta: Tensor, draw: Draw) -> tuple[Tensor, Tensor]: ...
