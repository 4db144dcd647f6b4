"""Distributed SGD: each worker sends one minibatch gradient."""

from __future__ import annotations

from torch import Tensor, nn

from byzbench.algorithms import Draw
from byzbench.grads import make_grads
from byzbench.stages import Stateful


class DSGD(Stateful):
    """Each worker i sends ``g_i = grad f(theta; xi_i)`` on one minibatch ``xi_i`` of its
    own shard, all workers in one vectorized pass (``byzbench.grads``); the server step
    is the configured solver on the aggregate.

    Args:
        model, task, grad_path: injected by build (vmap | loop, see ``choose_grad_path``).

    No state across rounds (``state_keys`` empty).

    Reference: Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant
    Gradient Descent", NeurIPS 2017 (the parameter-server setting).
    """

    def __init__(self, model: nn.Module, task: str = "classification", grad_path: str = "vmap"):
        self.local_steps = 1
        self.grads = make_grads(model, task, grad_path)

    def __call__(self, theta: Tensor, draw: Draw) -> tuple[Tensor, Tensor]:
        X, Y = draw()
        return self.grads(theta, X, Y)
