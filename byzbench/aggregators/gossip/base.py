"""Contract of a per-node gossip rule.

A gossip rule aggregates one honest node's neighbourhood problem: ``xs [k, m, d]``
holds, for each of k nodes with m - 1 neighbours, **row 0 = the node's own
parameters**, then what its m - 1 neighbours sent, in increasing node id order. Unlike
a server rule it also uses the node's row of the mixing matrix, ``weights [k, m]``
(column 0: the self weight ``W_ii``), and its declared Byzantine weight ``byz_weight
[k]`` (Gaucher et al.'s ``b_i``: byzbench takes the sum of the f_i largest neighbour
weights of node i, f_i its declared Byzantine count). The gossip round hands both over
once with :meth:`GossipRule.set_mixing` (the graph is fixed); a row of weights ``[1,
m]`` broadcasts over any number of problems (an attacker's queries of one node).

Server rules in gossip mode aggregate the same rows unweighted (the plain neighbourhood
rule, as epfml's ``DeMean``/``DeTM``/``DeCM``); gossip rules are the ones that use the
weights and the own row. Outputs after a call: ``last_weights [m]`` (single call) and
``last_node_weights [k, m]`` (batched call): each row's coefficient in the output when
the rule is a data-dependent linear combination, else None.
"""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import ConfigError, require
from byzbench.aggregators.base import Rule


class GossipRule(Rule):
    """Base of the per-node gossip rules (see the module docstring)."""

    topologies = frozenset({"gossip"})
    _name = "gossip"

    def __init__(self, n: int = 0, f: int = 0):
        require(f >= 0, "agg.f", f, "f >= 0")
        self.n, self.f = n, f
        self.weights: Tensor | None = None
        self.byz_weight: Tensor | None = None
        self.last_weights: Tensor | None = None
        self.last_node_weights: Tensor | None = None

    def set_mixing(self, weights: Tensor, byz_weight: Tensor) -> None:
        """The nodes' mixing rows ``[k, m]`` (column 0: self) and Byzantine weights
        ``[k]`` (k = 1: the same node for every problem)."""
        self.weights, self.byz_weight = weights, byz_weight

    def _mixing(self, xs: Tensor) -> tuple[Tensor, Tensor]:
        if self.weights is None:
            raise ConfigError(f"agg={self._name} is invalid with topology=server: it is a "
                              "per-node gossip rule (use topology=gossip)")
        k = xs.shape[0]
        w = self.weights.to(device=xs.device, dtype=xs.dtype)
        b = self.byz_weight.to(device=xs.device, dtype=xs.dtype)
        if w.shape[0] != k:
            w, b = w.expand(k, -1), b.expand(k)
        return w, b

    def __call__(self, x: Tensor) -> Tensor:
        """``x [m, d] -> [d]`` (row 0: the node's own parameters)."""
        out = self.batch(x.unsqueeze(0))[0]
        c = self.last_node_weights
        self.last_weights = None if c is None else c[0]
        return out

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, m, d] -> [k, d]``."""
        w, b = self._mixing(xs)
        out, coef = self.mix(xs, w, b)
        self.last_node_weights = coef
        return out

    def mix(self, xs: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(out [k, d], coefficients [k, m] or None)``: the rule itself."""
        raise NotImplementedError


def differences(xs: Tensor) -> tuple[Tensor, Tensor]:
    """``(diff [k, m, d], dist [k, m])``: ``x_j - x_0`` per problem (non-finite entries
    zeroed) and its norm (infinite for a row with a non-finite entry)."""
    diff = xs - xs[:, :1]
    dist = torch.linalg.vector_norm(diff, dim=2)
    bad = ~torch.isfinite(dist)
    dist = torch.where(bad, torch.full_like(dist, float("inf")), dist)
    return torch.nan_to_num(diff, nan=0.0, posinf=0.0, neginf=0.0), dist


def clip_scale(dist: Tensor, tau: Tensor) -> Tensor:
    """``[k, m]``: ``min(1, tau_k / d_kj)`` (1 at d = 0 or tau = inf; 0 for an
    infinitely far row, so a non-finite row contributes nothing)."""
    t = tau.unsqueeze(1).expand_as(dist)
    scale = torch.where(dist > t, t / dist.clamp_min(torch.finfo(dist.dtype).tiny),
                        torch.ones_like(dist))
    return torch.where(torch.isinf(dist), torch.zeros_like(scale), scale)


def clipped_combination(xs: Tensor, diff: Tensor, w: Tensor, scale: Tensor,
                        step: float = 1.0) -> tuple[Tensor, Tensor]:
    """``x_0 + step * sum_j w_j s_j (x_j - x_0)`` (``diff`` from :func:`differences`)
    and the rows' coefficients ``[k, m]`` (the self row gets the remaining mass ``1 -
    step * sum_{j>=1} w_j s_j``): the robust-gossip update of He et al. (2022) and
    Gaucher et al. (2025)."""
    c = step * w * scale
    c = torch.cat([torch.zeros_like(c[:, :1]), c[:, 1:]], dim=1)
    out = xs[:, 0] + torch.einsum("km,kmd->kd", c, diff)
    c = c.clone()
    c[:, 0] = 1.0 - c[:, 1:].sum(1)
    return out, c


def weighted_quantile_sorted(dist: Tensor, w: Tensor, b: Tensor, times: float = 1.0):
    """Sort rows by distance: ``(order [k, m], sorted distances, sorted weights,
    cumulative weights, target [k], idx [k])`` with ``target = total - times * b``
    (the weight kept by a rule that discards ``times`` the declared Byzantine weight;
    total = the last cumulative weight, as the reference code) and ``idx`` the first
    position whose cumulative weight reaches it (``torch.searchsorted``, left side; m
    when none)."""
    ds, order = torch.sort(dist, dim=1, stable=True)
    ws = torch.gather(w, 1, order)
    cum = torch.cumsum(ws, dim=1)
    target = cum[:, -1] - times * b
    idx = torch.searchsorted(cum.contiguous(), target.unsqueeze(1).contiguous()).squeeze(1)
    return order, ds, ws, cum, target, idx
