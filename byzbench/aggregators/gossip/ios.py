"""IOS: iterative outlier scissor (Wu, Chen, Ling, IEEE TSP 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.aggregators.gossip.base import GossipRule


class IOS(GossipRule):
    r"""Iterative outlier scissor at node i: starting from every row with positive
    mixing weight (itself included), ``f`` times: compute the weighted average of the
    trusted rows, :math:`\bar x = \sum_{j \in T} W_{ij} x_j / \sum_{j \in T} W_{ij}`,
    and remove from T the neighbour row farthest from it (never the node itself; the
    first farthest on ties; non-finite rows are infinitely far). Output: the weighted
    average of what remains. ``f``: the node's declared Byzantine count
    (``topology.declared_f``); needs f <= the number of neighbours.

    ``last_node_weights``: the normalized weights of the kept rows.

    Reference: Z. Wu, T. Chen, Q. Ling, "Byzantine-Resilient Decentralized Stochastic
    Optimization With Robust Aggregation Rules", IEEE Transactions on Signal
    Processing 71, 2023 (codes: Zhaoxian-Wu/IOS; Gaucher et al.'s ``aggregators/ios.py``).
    """

    _name = "ios"

    def __init__(self, n: int = 0, f: int = 0):
        super().__init__(n, f)
        require(n == 0 or f <= n - 1, "agg.f", f,
                f"ios removes f neighbours: needs f <= {max(n - 1, 0)} (the node's degree)")

    def mix(self, xs: Tensor, w: Tensor, b: Tensor):
        k, m, _ = xs.shape
        finite = torch.isfinite(xs).all(2)
        x0 = torch.where(finite.unsqueeze(2), xs, torch.zeros_like(xs))
        trusted = w > 0
        col = torch.arange(m, device=xs.device).unsqueeze(0)
        for _ in range(min(self.f, m - 1)):
            wt = torch.where(trusted & finite, w, torch.zeros_like(w))
            avg = (wt.unsqueeze(2) * x0).sum(1) / wt.sum(1, keepdim=True).clamp_min(1e-300)
            dist = torch.linalg.vector_norm(x0 - avg.unsqueeze(1), dim=2)
            dist = torch.where(finite, dist, torch.full_like(dist, float("inf")))
            cand = trusted & (col > 0)
            dist = torch.where(cand, dist, torch.full_like(dist, -1.0))
            drop = torch.argmax(dist, dim=1)  # the first maximum
            has = cand.any(1)
            trusted = trusted & ~((col == drop.unsqueeze(1)) & has.unsqueeze(1))
        wt = torch.where(trusted, w, torch.zeros_like(w))
        c = wt / wt.sum(1, keepdim=True).clamp_min(1e-300)
        xs_kept = torch.where(trusted.unsqueeze(2), xs, torch.zeros_like(xs))
        return (c.unsqueeze(2) * xs_kept).sum(1), c
