"""Sign-statistics-preserving attack against SignGuard-type filters."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import empty_rows
from byzbench.attacks.alie import ALIE
from byzbench.attacks.base import Attack, RoundContext, repeat_rows
from byzbench.attacks.min_max import MinMax

BASES = ("alie", "min_max")


def match_sign_fractions(b: Tensor, honest: Tensor) -> Tensor:
    """``b [d]`` with the signs of its smallest-magnitude nonzero coordinates flipped so
    that its fraction of positive among nonzero coordinates equals the honest rows'
    average (rounded to a count). Flipping the smallest entries is the least change in
    L2 norm; zero entries stay zero (their fraction is b's own)."""
    nz = b != 0
    nnz = int(nz.sum())
    if nnz == 0:
        return b.clone()
    pos_h = (honest > 0).sum(dim=1).double()
    neg_h = (honest < 0).sum(dim=1).double()
    frac = float((pos_h / (pos_h + neg_h).clamp_min(1)).mean())
    target = int(round(frac * nnz))
    pos = int((b > 0).sum())
    out = b.clone()
    if pos == target:
        return out
    flip_pos = pos > target  # too many positives: flip the smallest positive entries
    cand = (b > 0) if flip_pos else (b < 0)
    k = abs(pos - target)
    mag = torch.where(cand, b.abs(), torch.full_like(b, float("inf")))
    idx = torch.argsort(mag, stable=True)[:k]
    out[idx] = -out[idx]
    return out


class SignguardEvasion(Attack):
    """A base attack vector (``alie``: mu - z sigma; ``min_max``: the Min-Max vector)
    whose sign statistics are then made equal to the honest ones: SignGuard (Xu et al.)
    clusters workers on the fractions of positive / zero / negative coordinates, and
    both bases keep honest-looking norms, so matching the sign fractions leaves no
    feature to filter on. The signs of b's smallest-magnitude coordinates are flipped
    (the least change in L2) until b's positive fraction among its nonzero coordinates
    equals the honest rows' average; zero coordinates are untouched. All f rows equal.

    Source: the sign-statistics-preserving adaptive attack discussed against
    SignGuard (Xu et al., ICDCS 2022, sec. on adaptive attacks) and listed by Blades;
    neither code was available to compare, so the flipping rule above is byzbench's
    definition (minimal-L2 sign matching). Knowledge: omniscient (honest gradients).

    Args:
        base: ``alie | min_max``.
        z, z_formula: for ``alie`` (see alie).
        perturbation, gamma, gamma_max, unit: for ``min_max`` (see min_max).
        n, f: injected.

    Reference: J. Xu, S.-L. Huang, L. Song, T. Lan, "Byzantine-robust Federated
    Learning through Collaborative Malicious Gradient Filtering", ICDCS 2022.
    """

    def __init__(self, base: str = "alie", z: float | None = None, z_formula: str = "paper",
                 perturbation: str = "std", gamma: float | None = None,
                 gamma_max: float | None = None, unit: str = "spread",
                 n: int | None = None, f: int | None = None):
        require(base in BASES, "attack.base", base, f"one of {BASES}")
        self.base = base
        if base == "alie":
            self.inner = ALIE(z=z, z_formula=z_formula, n=n, f=f)
        else:
            self.inner = MinMax(perturbation=perturbation, gamma=gamma, gamma_max=gamma_max,
                                unit=unit)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        b = self.inner(honest, ctx)[0]
        return repeat_rows(match_sign_fractions(b, honest), ctx.f)
