"""Fang et al.'s full-knowledge attack on Krum."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import (
    byz_kept,
    check_unit,
    empty_rows,
    length_unit,
    line_chunk,
    query_line_weighted,
)
from byzbench.attacks.base import Attack, RoundContext, repeat_rows


class FangKrum(Attack):
    """Craft ``b = -lambda * s`` with ``s = sign(mu)`` (the direction the honest step
    would move the model, reversed) and lambda the largest value, found by halving from
    an upper bound, for which the aggregation pipeline still selects b.

    Fang et al. work on local models ``w_i = w_Re - eta g_i`` (w_Re = current global
    model) and craft ``w'_1 = w_Re - lambda s_model``; in gradient space (the model is
    the origin of the update) this is ``b = -lambda sign(mu)``. The paper's bound with
    n workers, c = f Byzantine, d coordinates and D the Euclidean distance:

    ``lambda_0 = 1/((n - 2f - 1) sqrt(d)) * min_i sum_{l in G_i} D(g_l, g_i)
    + 1/sqrt(d) * max_i D(g_i, 0)``,

    i, l honest, G_i the ``n - f - 2`` honest gradients closest to g_i (Krum's
    neighbour count, "the m - c - 2 benign local models with the smallest distance to
    w_i" in the paper; ``neighbours: paper``, default) or all ``h - 1`` other honest
    ones (``neighbours: all``, byzbench's behaviour before). lambda is halved until b is
    selected or lambda < ``threshold * L`` (L the length unit: ``spread`` by default,
    so the stopping rule is scale-free; ``unit: absolute`` gives the paper's absolute
    1e-5). "Selected" = the Byzantine rows get weight > 0 when the rule exposes
    ``last_weights``, else the aggregate equals b. All f rows are identical (the
    paper's other crafted models sit within eps of w'_1; eps -> 0 here).

    Differences from Shejwalkar & Houmansadr's public re-implementation (which many
    libraries copy): it uses D(g_i, mu) instead of D(g_i, 0) in the second term and
    ``(h - f - 1)`` with the ``h - f - 2`` nearest in the first; byzbench follows the
    paper.

    Args:
        threshold: smallest lambda tried (> 0, in units).
        max_halvings: safety cap on pipeline evaluations per round.
        neighbours: ``paper`` (n - f - 2 nearest honest) | ``all`` (h - 1).
        unit: ``spread | pivot_norm | absolute`` (of ``threshold``).
        n, f: injected; the bound needs n - 2f - 1 > 0.

    Reference: Fang, Cao, Jia, Gong, "Local Model Poisoning Attacks to Byzantine-Robust
    Federated Learning", USENIX Security 2020, sec. 3 (attack on Krum, full knowledge).
    """

    def __init__(self, threshold: float = 1e-5, max_halvings: int = 64,
                 neighbours: str = "paper", unit: str = "spread",
                 n: int | None = None, f: int | None = None):
        require(threshold > 0, "attack.threshold", threshold, "> 0")
        require(neighbours in ("paper", "all"), "attack.neighbours", neighbours, "paper or all")
        check_unit(unit)
        self.neighbours, self.unit = neighbours, unit
        require(max_halvings >= 1, "attack.max_halvings", max_halvings, ">= 1")
        if n is not None and f is not None:
            require(n - 2 * f - 1 > 0, "attack.f", f, f"fang_krum needs n - 2f - 1 > 0 (n={n})")
        self.threshold = float(threshold)
        self.max_halvings = int(max_halvings)
        self.last_lambda: float | None = None

    @staticmethod
    def lambda_upper_bound(honest: Tensor, n: int, f: int, neighbours: str = "paper") -> float:
        """The paper's lambda_0 (see class docstring)."""
        h, d = honest.shape
        require(n - 2 * f - 1 > 0, "attack.f", f, f"fang_krum needs n - 2f - 1 > 0 (n={n})")
        dist = torch.cdist(honest, honest)
        k = max(min(n - f - 2, h - 1), 0) if neighbours == "paper" else h - 1
        # row i's k nearest other honest rows: skip the zero self-distance (column 0)
        near = dist.sort(dim=1).values[:, 1 : k + 1]
        term1 = near.sum(dim=1).min() / ((n - 2 * f - 1) * math.sqrt(d))
        term2 = honest.norm(dim=1).max() / math.sqrt(d)
        return float(term1 + term2)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        h, f = honest.shape[0], ctx.f
        s = torch.where(honest.mean(dim=0) >= 0, 1.0, -1.0).to(honest.dtype)
        lam = self.lambda_upper_bound(honest, h + f, f, self.neighbours)
        floor = self.threshold * length_unit(honest, self.unit)
        zero = torch.zeros_like(s)

        def selected(lams: list[float]) -> list[bool]:
            aggs, w = query_line_weighted(ctx, honest, zero, s, [-v for v in lams])
            kept = [byz_kept(w, j, h) for j in range(len(lams))]
            return [bool(torch.equal(aggs[j], -v * s)) if kept[j] is None else kept[j]
                    for j, v in enumerate(lams)]

        self.last_lambda = halving_search(lam, floor, self.max_halvings, selected,
                                          line_chunk(ctx, honest))
        return repeat_rows(-self.last_lambda * s, f)


def halving_search(lam: float, floor: float, max_halvings: int,
                   accepts: Callable[[list[float]], list[bool]], chunk: int) -> float:
    """Halve ``lam`` until ``accepts`` it or its half is below ``floor`` (at most
    ``max_halvings`` tests; the cap reached: the last value halved), evaluating the
    tested values ``chunk`` at a time (``accepts(values) -> [bool]``): the same result
    as testing them one by one."""
    lams = [lam]
    while len(lams) < max_halvings and not lams[-1] / 2 < floor:
        lams.append(lams[-1] / 2)
    for i in range(0, len(lams), chunk):
        part = lams[i:i + chunk]
        for v, ok in zip(part, accepts(part)):
            if ok:
                return v
    last = lams[-1]
    return last if last / 2 < floor else last / 2
