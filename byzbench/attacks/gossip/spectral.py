"""Topology-aware attacks of Gaucher et al. (ICML 2025): spectral and Laplacian
dissensus directions from the recipient's position in the honest graph."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks import search
from byzbench.attacks._ops import empty_rows, query_candidates
from byzbench.attacks.base import Attack, RoundContext, repeat_rows
from byzbench.topology.context import node_context

DIRECTIONS = ("fiedler", "laplacian")


class TopologyAware(Attack):
    r"""Every Byzantine neighbour of node i sends :math:`z_i = x_i + s\, v_i` with

    * ``fiedler`` (the *spectral* attack): :math:`v_i = u_i \sum_j u_j x_j`, u the
      Fiedler vector of the honest subgraph (all honest nodes' parameters: omniscient,
      topology-aware), which pushes the two sides of the graph's sparsest cut apart;
    * ``laplacian`` (Gaucher et al.'s *dissensus*): :math:`v_i = (L x)_i = \sum_{j \in
      N_i^h} (x_i - x_j)`, L the honest subgraph's Laplacian (unit weights).

    ``scale``: a number s, or ``auto`` (default): s maximizes the distance between
    node i's aggregate and its honest-only gossip target :math:`x_i + \sum_{j \in
    N_i^h} W_{ij} (x_j - x_i)`, over a log-spaced scan of ``budget`` candidates in
    ``[lo, hi]`` through the node's real rule (``attacks.search``, batched queries).
    ``negative``: use -s. The reference code's scan (``tools.line_maximize``, 16
    evaluations) measures ``aggregated.dot(aggregated)`` because its ``sub`` is not in
    place (the squared norm of the aggregate, not its distance to the target):
    byzbench uses the distance the code's comment describes.

    Reference: R. Gaucher, A. Dieuleveut, H. Hendrikx, "Unified Breakdown Analysis for
    Byzantine Robust Gossip", ICML 2025 (code: ``attacks/identical_sparse.py``,
    ``spectral`` and ``dissensus``).
    """

    topologies = frozenset({"gossip"})

    def __init__(self, direction: str = "fiedler", scale: float | str = "auto",
                 negative: bool = False, lo: float = 1e-3, hi: float = 1e3, budget: int = 16):
        require(direction in DIRECTIONS, "attack.direction", direction, ", ".join(DIRECTIONS))
        require(scale == "auto" or isinstance(scale, (int, float)), "attack.scale", scale,
                "auto or a number")
        search.check_search("scan", lo, hi, budget)
        self.direction, self.scale, self.negative = direction, scale, bool(negative)
        self.lo, self.hi, self.budget = float(lo), float(hi), int(budget)
        self.last_scale = math.nan

    def vector(self, honest: Tensor, ctx) -> Tensor:
        if self.direction == "laplacian":
            return (honest[0] - honest[1:]).sum(0)
        u = ctx.fiedler.to(honest)
        return u[ctx.node] * (u.unsqueeze(1) * ctx.honest_all.to(honest)).sum(0)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        option = {"fiedler": "spectral", "laplacian": "dissensus_rg"}[self.direction]
        ctx = node_context(ctx, option)
        if ctx.f == 0:
            return empty_rows(honest)
        v = self.vector(honest, ctx)
        sign = -1.0 if self.negative else 1.0
        if self.scale != "auto":
            s = float(self.scale)
        else:
            h = honest.shape[0]
            w = ctx.weights.to(honest)
            target = honest[0] + (w[1:h].unsqueeze(1) * (honest[1:] - honest[0])).sum(0)

            def objective(xs: Tensor) -> Tensor:
                vals = [float(x) for x in xs]
                agg = query_candidates(ctx, honest, lambda s: repeat_rows(
                    honest[0] + sign * s * v, ctx.f), vals)
                d2 = ((agg - target) ** 2).sum(1).to(torch.float64)
                return torch.nan_to_num(d2, nan=-math.inf)

            s = search.maximize(objective, self.lo, self.hi, self.budget).x
        self.last_scale = s
        return repeat_rows(honest[0] + sign * s * v, ctx.f)
