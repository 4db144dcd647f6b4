"""Dissensus attack (He, Karimireddy, Jaggi, 2022)."""

from __future__ import annotations

from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import empty_rows
from byzbench.attacks.base import Attack, RoundContext, repeat_node_rows, repeat_rows
from byzbench.topology.context import node_context


class Dissensus(Attack):
    r"""Push each honest recipient away from its honest neighbours: every Byzantine
    neighbour of node i sends

    .. math:: z_i = x_i - \varepsilon\, \frac{\sum_{j \in N_i^h} W_{ij} (x_j - x_i)}
        {\sum_{b \in N_i^b} W_{ib}},

    so that node i's plain gossip step becomes :math:`x_i + (1 - \varepsilon) \sum_{j
    \in N_i^h} W_{ij} (x_j - x_i)`: for :math:`\varepsilon > 1` it moves away from its
    neighbours (consensus breaks). Needs ``topology=gossip`` (the recipient's weights).

    Args:
        epsilon: the strength (epfml's ``--attack dissensus{epsilon}``).

    Reference: L. He, S. P. Karimireddy, M. Jaggi, "Byzantine-Robust Decentralized
    Learning via ClippedGossip", 2022 (code: epfml/byzantine-robust-decentralized-
    optimizer, ``codes/attacks.py`` ``DissensusWorker``).
    """

    topologies = frozenset({"gossip"})

    def __init__(self, epsilon: float = 1.5):
        require(isinstance(epsilon, (int, float)), "attack.epsilon", epsilon, "a number")
        self.epsilon = float(epsilon)

    batch_nodes = True

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        ctx = node_context(ctx, "dissensus")
        if ctx.f == 0:
            return empty_rows(honest)
        h = honest.shape[0]
        w = ctx.weights.to(honest)
        v = (w[1:h].unsqueeze(1) * (honest[1:] - honest[0])).sum(0)
        wb = w[h:].sum().clamp_min(1e-30)
        return repeat_rows(honest[0] - self.epsilon * v / wb, ctx.f)

    def nodes(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        """The rows for k recipients ``[k, h, d] -> [k, f, d]`` (``ctx.weights [k, n]``)."""
        ctx = node_context(ctx, "dissensus")
        h = honest.shape[1]
        w = ctx.weights.to(honest)
        v = (w[:, 1:h].unsqueeze(2) * (honest[:, 1:] - honest[:, :1])).sum(1)
        wb = w[:, h:].sum(1, keepdim=True).clamp_min(1e-30)
        return repeat_node_rows(honest[:, 0] - self.epsilon * v / wb, ctx.f)
