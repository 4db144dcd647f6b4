"""FedAvg: each client runs K local SGD steps and sends its model update."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from byzbench import require
from byzbench.algorithms import Draw
from byzbench.grads import make_grads
from byzbench.stages import Stateful


class FedAvg(Stateful):
    """Client i starts from the global theta and runs K local SGD steps on K minibatches
    of its own shard,

        d_i^k = grad f(theta_i^k; xi_i^k) + wd theta_i^k,
        b_i^k = mu b_i^{k-1} + d_i^k  (b_i^0 = d_i^0; mu = 0: b = d),
        theta_i^{k+1} = theta_i^k - eta b_i^k,

    (``torch.optim.SGD`` semantics; the local optimizer starts fresh each round), and
    sends ``Delta_i = theta - theta_i^K``. All clients step together: step 0 uses the
    shared theta (one pass, exactly DSGD's), later steps one theta per client
    (``[m, d]``, updated in place), through the same vectorized gradient pass. With
    K = 1 the client sends ``eta b_i^0`` itself (``theta - theta_i^1`` up to the rounding
    of one subtraction), so K = 1 with server SGD lr 1 is DSGD with lr eta, bit for bit
    when eta is a power of two. The server applies the aggregate with the configured
    solver: SGD with lr 1 is FedAvg, server momentum FedAvgM, Adam FedAdam. No client
    state persists across rounds (``state_keys`` empty): each round's local optimizer
    and momentum start fresh.

    Args:
        local_steps: K >= 1.
        client_lr: eta > 0.
        client_momentum: mu in [0, 1) (0: plain local SGD).
        weight_decay: wd >= 0 (L2 on the local objective).
        model, task, grad_path: injected by build.

    Reference: McMahan et al., "Communication-Efficient Learning of Deep Networks from
    Decentralized Data", AISTATS 2017; Hsu et al., "Measuring the Effects of
    Non-Identical Data Distribution for Federated Visual Classification", 2019
    (FedAvgM); Reddi et al., "Adaptive Federated Optimization", ICLR 2021 (FedAdam).
    """

    def __init__(self, model: nn.Module, local_steps: int = 1, client_lr: float = 0.1,
                 client_momentum: float = 0.0, weight_decay: float = 0.0,
                 task: str = "classification", grad_path: str = "vmap"):
        require(isinstance(local_steps, int) and local_steps >= 1, "algorithm.local_steps",
                local_steps, "an integer >= 1")
        require(isinstance(client_lr, (int, float)) and client_lr > 0, "algorithm.client_lr",
                client_lr, "a number > 0")
        require(0.0 <= client_momentum < 1.0, "algorithm.client_momentum", client_momentum,
                "a value in [0, 1)")
        require(weight_decay >= 0.0, "algorithm.weight_decay", weight_decay, "a value >= 0")
        self.local_steps, self.client_lr = local_steps, float(client_lr)
        self.client_momentum, self.weight_decay = float(client_momentum), float(weight_decay)
        self.grads = make_grads(model, task, grad_path)

    def __call__(self, theta: Tensor, draw: Draw) -> tuple[Tensor, Tensor]:
        theta = theta.detach()
        lr, mu, wd = self.client_lr, self.client_momentum, self.weight_decay
        K = self.local_steps
        buf = losses = local = None  # local: theta_i^k, one row per client once k >= 1
        for _ in range(K):
            X, Y = draw()
            g, loss = self.grads(theta if local is None else local, X, Y)
            if losses is None:
                losses = loss  # each client's loss at the global model (as DSGD reports)
            if wd:
                g = g.add(theta if local is None else local, alpha=wd)
            if mu:
                buf = g if buf is None else buf.mul_(mu).add_(g)
                g = buf
            if K == 1:  # Delta = eta g exactly (theta - (theta - eta g) would round twice)
                return (g * lr if mu else g.mul_(lr)), losses
            # theta_i <- theta_i - eta b_i (torch.optim.SGD's update), in place after step 0
            local = torch.add(theta, g, alpha=-lr) if local is None else local.sub_(g, alpha=lr)
        return theta - local, losses
