"""Relocated orthogonal perturbation (ROP) of Ozfatura et al."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import alie_z_max, check_unit, empty_rows, length_unit, unit
from byzbench.attacks.base import Attack, RoundContext, repeat_rows


class ROP(Attack):
    """Perturb orthogonally to the server's history, from a location relocated towards
    the previous aggregate m = ``ctx.prev_aggregate`` (0 at t = 0):

    * reference ``r = lam * m + (1 - lam) * mu`` (r = mu at t = 0), mu the honest mean;
    * location ``a = pi * m + (1 - pi) * mu``;
    * direction: ``v = 1 - (<1, r>/|r|^2) r`` (the all-ones vector minus its projection on
      r: orthogonal to r), rotated towards r by ``angle`` degrees from r
      (``p = sin(angle) v/|v| + cos(angle) r/|r|``; 90 = orthogonal);
    * ``b = a + z * L * p / |p|`` for all f rows (z = ALIE's z_max with the
      honest-fraction formula, as in the authors' code, or given; L the length unit:
      ``spread`` (default, scale-free) = mean distance of the honest gradients to
      their mean, ``pivot_norm`` = ||r||, ``absolute`` = 1, FLB's ``attacks/rop.py``,
      where z is an absolute norm).

    Since the previous aggregate is the centre of centered clipping, the Byzantine
    vectors sit at distance z from it in a direction clipping cannot undo.

    Args:
        z: perturbation norm (None = ALIE z_max, ``honest`` formula).
        lam: reference mixing in [0, 1] (default 0.9).
        pi: location mixing in [0, 1] (default 1: at the previous aggregate).
        angle: degrees in [0, 360) from the reference towards v (90 = orthogonal;
            FLB's current config uses 270, i.e. -v).
        unit: ``spread | pivot_norm | absolute``.
        n, f: injected (for z_max validation).

    Reference: Ozfatura, Ozfatura, Kupcu, Gunduz, "Byzantines Can Also Learn From
    History: Fall of Centered Clipping in Federated Learning", IEEE TIFS 2024
    (arXiv:2208.09894); defaults follow the authors' code as we read it.
    """

    scale_param = "z"
    scale_range = (0.01, 100.0)

    def __init__(self, z: float | None = None, lam: float = 0.9, pi: float = 1.0,
                 angle: float = 90.0, unit: str = "spread",
                 n: int | None = None, f: int | None = None):
        require(0 <= lam <= 1, "attack.lam", lam, "in [0, 1]")
        require(0 <= pi <= 1, "attack.pi", pi, "in [0, 1]")
        require(0 <= angle < 360, "attack.angle", angle, "degrees in [0, 360)")
        check_unit(unit)
        self.unit = unit
        self.z = None if z is None else float(z)
        self.lam, self.pi, self.angle = float(lam), float(pi), float(angle)
        if z is None and n is not None and f:
            alie_z_max(n, f, "honest")

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        mu = honest.mean(dim=0)
        if ctx.prev_aggregate is None:
            m, ref = torch.zeros_like(mu), mu
        else:
            m = ctx.prev_aggregate.to(dtype=honest.dtype, device=honest.device)
            ref = self.lam * m + (1 - self.lam) * mu
        loc = self.pi * m + (1 - self.pi) * mu
        ones = torch.ones_like(mu)
        v = ones - (ones @ ref) / (ref @ ref).clamp_min(1e-30) * ref
        a = math.radians(self.angle)
        p = math.sin(a) * unit(v) + math.cos(a) * unit(ref)
        z = self.z if self.z is not None else alie_z_max(ctx.n, ctx.f, "honest")
        return repeat_rows(loc + z * length_unit(honest, self.unit, ref) * unit(p), ctx.f)
