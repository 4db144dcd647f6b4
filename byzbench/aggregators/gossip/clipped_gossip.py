"""ClippedGossip / self-centred clipping (He, Karimireddy, Jaggi, 2022)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzbench import require
from byzbench.aggregators.gossip.base import (
    GossipRule,
    clip_scale,
    clipped_combination,
    differences,
    weighted_quantile_sorted,
)

TAUS = ("he", "second_largest")


class ClippedGossip(GossipRule):
    r"""Self-centred clipping: node i clips what it received around its own
    parameters and gossips the result,

    .. math:: x_i^+ = \sum_j W_{ij} \big(x_i + \mathrm{clip}_{\tau_i}(x_j - x_i)\big)
        = x_i + \sum_{j \ne i} W_{ij}\, \mathrm{clip}_{\tau_i}(x_j - x_i),

    :math:`\mathrm{clip}_\tau(v) = v \min(1, \tau / \|v\|)` (rows of W sum to 1).

    ``tau`` (the clipping radius of node i):

    * ``he`` (default): the paper's adaptive radius in the practical form of Gaucher et
      al.'s ``CShe_RG`` (ICML 2025 code): rows sorted by distance ``d_j = ||x_j - x_i||``
      with their weights, ``idx`` the first position where the cumulative weight reaches
      ``sum_j W_ij - b_i``; :math:`\tau_i = \sqrt{\sum_{l < idx} W_l d_l^2 / b_i}`
      (0 if idx = 0; infinite if b_i = 0 or no position reaches it). He et al.'s
      Theorem uses the same ratio with the honest neighbours only (oracle).
    * ``second_largest``: the second largest neighbour distance (the largest with one
      neighbour), epfml's ``SelfCenteredClipping`` with ``tau=None``.
    * a number > 0 (fixed radius, epfml's ``--agg scp{tau}``), or ``.inf``: no
      clipping, i.e. plain gossip (``gossip_avg``).

    ``last_node_weights``: each row's coefficient in the output (self: the remaining
    mass). Non-finite rows are clipped to nothing. ``last_stats``:
    ``clipped_gossip_clipped`` (fraction of neighbour rows clipped).

    Reference: L. He, S. P. Karimireddy, M. Jaggi, "Byzantine-Robust Decentralized
    Learning via ClippedGossip", arXiv:2202.01545, 2022 (code:
    epfml/byzantine-robust-decentralized-optimizer, ``codes/aggregator.py``).
    """

    _name = "clipped_gossip"

    def __init__(self, n: int = 0, f: int = 0, tau: float | str = "he"):
        super().__init__(n, f)
        require(tau in TAUS or (isinstance(tau, (int, float)) and tau > 0), "agg.tau", tau,
                "he, second_largest, a number > 0 or .inf")
        self.tau = tau
        self.last_stats: dict[str, float] = {}

    def radius(self, dist: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """``tau [k]`` from the distances ``[k, m]`` (column 0: self, 0)."""
        k, m = dist.shape
        if not isinstance(self.tau, str):
            return dist.new_full((k,), float(self.tau))
        if self.tau == "second_largest":
            nb = dist[:, 1:]
            if nb.shape[1] == 0:
                return dist.new_full((k,), math.inf)
            top = torch.sort(nb, dim=1, descending=True).values
            return top[:, 1] if nb.shape[1] >= 2 else top[:, 0]
        _, ds, ws, cum, _, idx = weighted_quantile_sorted(dist, w, b)
        part = torch.cumsum(ws * torch.nan_to_num(ds, posinf=0.0) ** 2, dim=1)
        acc = torch.gather(part, 1, (idx - 1).clamp(0, m - 1).unsqueeze(1)).squeeze(1)
        tau = torch.sqrt(acc / b.clamp_min(torch.finfo(dist.dtype).tiny))
        tau = torch.where(idx == 0, torch.zeros_like(tau), tau)
        return torch.where((b == 0) | (idx >= m), torch.full_like(tau, math.inf), tau)

    def mix(self, xs: Tensor, w: Tensor, b: Tensor):
        diff, dist = differences(xs)
        scale = clip_scale(dist, self.radius(dist, w, b))
        if xs.shape[1] > 1:
            self.last_stats = {"clipped_gossip_clipped": float((scale[:, 1:] < 1).double()
                                                               .mean())}
        return clipped_combination(xs, diff, w, scale)
