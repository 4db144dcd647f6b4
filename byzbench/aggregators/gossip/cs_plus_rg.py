"""CS+-RG: robust gossip with the clipped sum CS+ (Gaucher et al., ICML 2025)."""

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


class CSPlusRG(GossipRule):
    r"""Robust gossip (RG) with the CS+ summand:
    :math:`x_i^+ = x_i - \eta \sum_j W_{ij}\, \mathrm{clip}_{\tau_i}(x_i - x_j)`, with
    the clipping threshold the weighted distance quantile that leaves ``2 b_i`` of
    weight above it: rows sorted by ``d_j = ||x_i - x_j||`` (the node itself at
    distance 0, with its self weight), ``idx`` the first position whose cumulative
    weight reaches ``sum_j W_ij - 2 b_i``; :math:`\tau_i = d_{(idx)}` if the cumulative
    weight equals the target there, else :math:`d_{(idx - 1)}` (0 at idx = 0); no
    clipping when ``b_i = 0`` or no position reaches the target. As the reference
    code's ``cs_plus`` (``aggregators/robust_gossip.py``), exact comparisons included.

    Args:
        step: the communication step eta (the code's ``communication_step``, 1 by
            default; with ``topology.weights=laplacian`` the step is in the weights).

    Reference: R. Gaucher, A. Dieuleveut, H. Hendrikx, "Unified Breakdown Analysis for
    Byzantine Robust Gossip", ICML 2025 (code: renaudgaucher/Byzantine-Robust-Gossip).
    """

    _name = "cs_plus_rg"

    def __init__(self, n: int = 0, f: int = 0, step: float = 1.0):
        super().__init__(n, f)
        require(isinstance(step, (int, float)) and step > 0, "agg.step", step, "a number > 0")
        self.step = float(step)

    def radius(self, dist: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """``tau [k]`` from the distances ``[k, m]``."""
        m = dist.shape[1]
        _, ds, _, cum, target, idx = weighted_quantile_sorted(dist, w, b, 2.0)
        at = idx.clamp(max=m - 1).unsqueeze(1)
        c_at = torch.gather(cum, 1, at).squeeze(1)
        d_at = torch.gather(ds, 1, at).squeeze(1)
        d_before = torch.gather(ds, 1, (at - 1).clamp(min=0)).squeeze(1)
        tau = torch.where(c_at == target, d_at,
                          torch.where(idx >= 1, d_before, torch.zeros_like(d_at)))
        return torch.where((b == 0) | (idx >= m), torch.full_like(tau, math.inf), tau)

    def mix(self, xs: Tensor, w: Tensor, b: Tensor):
        diff, dist = differences(xs)
        return clipped_combination(xs, diff, w, clip_scale(dist, self.radius(dist, w, b)),
                                   self.step)
