"""Fang et al.'s partial-knowledge attacks (trimmed mean / median, Krum)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.attacks._ops import (
    LINE_CHUNK,
    check_unit,
    empty_rows,
    honest_std,
    length_unit,
    own_grads,
)
from byzbench.attacks.base import Attack, RoundContext, repeat_rows
from byzbench.attacks.fang_krum import FangKrum, halving_search

TARGETS = ("trmean", "krum")


class FangPartial(Attack):
    """Fang et al.'s attacks when the attacker knows only the Byzantine workers' own
    before-attack gradients (``ctx.byz_grads``, local threat model), used as estimates
    of the honest ones. Direction: ``s = sign(mu_B)``, mu_B / sigma_B the mean / unbiased
    std of the own gradients.

    * ``target: trmean`` (also used against median), the paper's partial-knowledge rule:
      per coordinate, values drawn uniformly from ``[mu_j - 4 sigma_j, mu_j - 3 sigma_j]``
      when ``s_j >= 0`` (the step would decrease theta_j; push the other way) and from
      ``[mu_j + 3 sigma_j, mu_j + 4 sigma_j]`` otherwise (the paper's model-space rule
      mirrored into gradient space, as ``fang_trmean``), independently per worker from
      ``ctx.generator``. The bounds 3 and 4 are ``low`` / ``high``.
    * ``target: krum``: ``b = -lambda s`` (all rows equal) with lambda halved from the
      paper's bound lambda_0 (``fang_krum``'s formula with the own gradients in place
      of the honest ones) until Krum, run on the attacker's view (its f own gradients
      and the f crafted copies, ``min(n - f - 2, 2f - 1)`` neighbours since the view
      has 2f rows, ties to the crafted rows), selects b, or lambda < ``threshold`` length
      units (``unit``: ``spread`` of the own gradients by default, scale-free;
      ``absolute`` = the paper's 1e-5).
      This is byzbench's reading of "use the before-attack models as the benign
      ones"; it needs f >= 2 and n - 2f - 1 > 0.

    Knowledge: ``ctx.byz_grads`` only (tested: changing the honest rows does not change
    the output). With f = 1, sigma_B = 0 (trmean: b = mu_B).

    Args:
        target: ``trmean | krum``.
        low, high: the trmean ranges in units of sigma_B (paper: 3, 4).
        threshold, max_halvings, neighbours, unit: the Krum search (as fang_krum).
        n, f: injected (Krum's bound needs n - 2f - 1 > 0).

    Reference: Fang, Cao, Jia, Gong, "Local Model Poisoning Attacks to Byzantine-Robust
    Federated Learning", USENIX Security 2020, sec. 3 (partial knowledge).
    """

    local = True

    def __init__(self, target: str = "trmean", low: float = 3.0, high: float = 4.0,
                 threshold: float = 1e-5, max_halvings: int = 64, neighbours: str = "paper",
                 unit: str = "spread", n: int | None = None, f: int | None = None):
        require(target in TARGETS, "attack.target", target, f"one of {TARGETS}")
        require(0 <= low <= high, "attack.low", low, f"0 <= low <= high (high={high})")
        require(threshold > 0, "attack.threshold", threshold, "> 0")
        require(max_halvings >= 1, "attack.max_halvings", max_halvings, ">= 1")
        require(neighbours in ("paper", "all"), "attack.neighbours", neighbours, "paper or all")
        check_unit(unit)
        self.neighbours, self.unit = neighbours, unit
        if target == "krum" and n is not None and f:
            require(n - 2 * f - 1 > 0, "attack.f", f, f"fang_partial target=krum needs "
                    f"n - 2f - 1 > 0 (n={n})")
            require(f >= 2, "attack.f", f, "fang_partial target=krum needs f >= 2")
        self.target, self.low, self.high = target, float(low), float(high)
        self.threshold, self.max_halvings = float(threshold), int(max_halvings)
        self.last_lambda: float | None = None

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        own = own_grads(honest, ctx, "fang_partial")
        if ctx.f == 0:
            return empty_rows(honest)
        mu = own.mean(dim=0)
        if self.target == "trmean":
            sigma = honest_std(own)
            down = (mu >= 0).to(own.dtype)  # +1: send values below mu
            u = torch.rand((ctx.f, own.shape[1]), generator=ctx.generator, dtype=own.dtype,
                           device=own.device)
            mag = (self.low + u * (self.high - self.low)) * sigma
            return mu + mag * (1.0 - 2.0 * down)
        return self.krum(own, mu, ctx)

    def krum(self, own: Tensor, mu: Tensor, ctx: RoundContext) -> Tensor:
        """The halving search on the attacker's view (no pipeline query: its own
        gradients stand for the honest ones), ``LINE_CHUNK`` views per batched distance
        call (``kernels.pairwise_batch``)."""
        f = ctx.f
        s = torch.where(mu >= 0, 1.0, -1.0).to(own.dtype)
        lam = FangKrum.lambda_upper_bound(own, ctx.n, f, self.neighbours)
        floor = self.threshold * length_unit(own, self.unit)
        k = max(1, min(ctx.n - f - 2, 2 * f - 1))

        def selected(lams: list[float]) -> list[bool]:
            views = torch.stack([torch.cat([repeat_rows(-v * s, f), own]) for v in lams])
            return [int(np.argmin(kernels.krum_scores(pw.d2, k))) < f
                    for pw in kernels.pairwise_batch(views)]

        self.last_lambda = halving_search(lam, floor, self.max_halvings, selected, LINE_CHUNK)
        return repeat_rows(-self.last_lambda * s, f)
