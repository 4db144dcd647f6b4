"""GTS-RG: robust gossip with the generalized trimmed sum (Gaucher et al., ICML 2025)."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.aggregators.gossip.base import GossipRule, differences, weighted_quantile_sorted

BOUNDARIES = ("paper", "reference")


class GTSRG(GossipRule):
    r"""Robust gossip with the GTS summand: node i drops the ``b_i`` of weight held by
    the rows farthest from it and sums the rest,
    :math:`x_i^+ = x_i - \eta \sum_j c_j (x_i - x_j)` with ``c`` the weights of the
    rows sorted by ``d_j = ||x_i - x_j||`` (itself at 0, with its self weight) cut at a
    cumulative weight of ``sum_j W_ij - b_i``.

    ``boundary`` (the row where the cut falls, at sorted position ``idx``, the first
    whose cumulative weight reaches the target):

    * ``paper`` (default): it keeps the part of its weight below the cut,
      ``target - cum_{idx-1}`` (kept weight exactly ``sum_j W_ij - b_i``);
    * ``reference``: the reference code's ``gts`` (``aggregators/robust_gossip.py``):
      rows before ``idx`` in full and row idx with weight ``cum_idx - target`` (the part
      *above* the cut; 0 when the cumulative weight equals the target), so the kept
      weight differs from ``sum_j W_ij - b_i`` unless the cut halves the row.

    Args:
        step: communication step eta (1 by default).
        boundary: ``paper`` | ``reference``.

    Reference: R. Gaucher, A. Dieuleveut, H. Hendrikx, "Unified Breakdown Analysis for
    Byzantine Robust Gossip", ICML 2025.
    """

    _name = "gts_rg"

    def __init__(self, n: int = 0, f: int = 0, step: float = 1.0, boundary: str = "paper"):
        super().__init__(n, f)
        require(isinstance(step, (int, float)) and step > 0, "agg.step", step, "a number > 0")
        require(boundary in BOUNDARIES, "agg.boundary", boundary, ", ".join(BOUNDARIES))
        self.step, self.boundary = float(step), boundary

    def coefficients(self, dist: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """``[k, m]`` the weight each row keeps."""
        k, m = dist.shape
        order, _, ws, cum, target, idx = weighted_quantile_sorted(dist, w, b)
        pos = torch.arange(m, device=dist.device).unsqueeze(0)
        at = idx.clamp(max=m - 1).unsqueeze(1)
        c_at = torch.gather(cum, 1, at).squeeze(1)
        if self.boundary == "paper":
            prev = torch.where(idx >= 1, torch.gather(cum, 1, (at - 1).clamp(min=0))
                               .squeeze(1), torch.zeros_like(c_at))
            part = (target - prev).clamp_min(0)
        else:
            part = torch.where(c_at > target, c_at - target, torch.zeros_like(c_at))
        keep = torch.where(pos < idx.unsqueeze(1), ws, torch.zeros_like(ws))
        keep = torch.where((pos == idx.unsqueeze(1)), part.unsqueeze(1).expand(k, m), keep)
        return torch.zeros_like(keep).scatter_(1, order, keep)

    def mix(self, xs: Tensor, w: Tensor, b: Tensor):
        diff, dist = differences(xs)
        c = self.step * self.coefficients(dist, w, b)
        c[:, 0] = 0.0
        out = xs[:, 0] + torch.einsum("km,kmd->kd", c, diff)
        c[:, 0] = 1.0 - c[:, 1:].sum(1)
        return out, c
