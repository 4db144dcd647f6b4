"""BRIDGE-T: coordinate-wise trimmed mean per node (Yang & Bajwa, 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.aggregators.gossip.base import GossipRule


class Bridge(GossipRule):
    r"""BRIDGE-T screening at node i: per coordinate, drop the ``b`` largest and the
    ``b`` smallest values among the m - 1 **neighbours'** (the node's own value is
    always kept) and average the rest with its own,

    .. math:: x_{i,k}^+ = \frac{1}{m - 2b} \Big(x_{i,k} + \sum_{j \in N_i^{(b)}(k)}
        x_{j,k}\Big),

    unweighted (the mixing weights are not used), ``b`` = the node's declared Byzantine
    count (``topology.declared_f``); needs ``2b <= m - 1``. Non-finite values sort as
    extremes (torch.sort: nan last), so up to b per side are trimmed.

    Reference: Z. Yang, W. U. Bajwa, "ByRDiE / BRIDGE: Byzantine-Resilient Decentralized
    Learning", IEEE Transactions on Signal and Information Processing over Networks
    5(4), 2019 (BRIDGE-T).
    """

    _name = "bridge"

    def __init__(self, n: int = 0, f: int = 0):
        super().__init__(n, f)
        require(n == 0 or 2 * f <= n - 1, "agg.f", f,
                f"bridge trims f per side of the node's {max(n - 1, 0)} neighbours: "
                "needs 2f <= degree")

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, m, d] -> [k, d]`` (no mixing weights needed)."""
        m, b = xs.shape[1], self.f
        nb = torch.sort(xs[:, 1:], dim=1).values[:, b:m - 1 - b]
        self.last_node_weights = None
        return (xs[:, 0] + nb.sum(1)) / (m - 2 * b)
