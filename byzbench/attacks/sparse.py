"""Sparse attack (FL-Byzantine-Library): ALIE with a larger shift on a sparse mask."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import alie_z_max, empty_rows, honest_std
from byzbench.attacks.base import Attack, RoundContext, repeat_rows
from byzbench.kernels import sample_columns

SIGNS = ("ones", "mean")


class Sparse(Attack):
    """``b = mu - sigma * s * (mask * scale + (1 - mask) * z)`` (all f rows equal): an
    ALIE shift of z honest standard deviations on every coordinate, replaced by
    ``scale`` standard deviations on a sparse set of coordinates (``mask``). mu, sigma:
    honest coordinate-wise mean and unbiased std (omniscient, as FLB's
    ``omniscient_callback``). Scale-free: b - mu is in units of sigma.

    The mask: ``ceil(density * d)`` coordinates drawn uniformly at random from the
    attack's generator at the first round and then kept fixed (FLB passes a fixed
    mask). FLB builds its mask from network pruning (``prune_method=force``,
    ``pruning_factor=0.005``), which needs the model's layer structure; byzbench
    draws uniform coordinates at the same default density instead (documented
    difference). s: ``ones`` (FLB's default ``sparse_sign=inv_std``) or ``mean``
    (``sign(mu)``, FLB's other setting). z: given, or z_max with FLB's formula
    (``z_formula: honest``, Phi^-1((n - f - s)/(n - f))) by default.

    Args:
        density: fraction of coordinates in the mask, in (0, 1] (default 0.005).
        scale: shift on the mask in honest stds (FLB ``sparse_scale``, default 1.5).
        z: shift elsewhere; None = z_max.
        z_formula: ``paper | honest`` (see alie).
        sign: ``ones | mean``.
        n, f: injected (to validate that z_max exists).

    Reference: CRYPTO-KU/FL-Byzantine-Library, ``attacks/sparse*.py`` (Sparse /
    sparse); the ALIE base: Baruch et al., NeurIPS 2019.
    """

    state_keys = ("mask",)


    scale_param = "scale"
    scale_range = (0.01, 100.0)

    def __init__(self, density: float = 0.005, scale: float = 1.5, z: float | None = None,
                 z_formula: str = "honest", sign: str = "ones",
                 n: int | None = None, f: int | None = None):
        require(0 < density <= 1, "attack.density", density, "0 < density <= 1")
        require(z_formula in ("paper", "honest"), "attack.z_formula", z_formula, "paper or honest")
        require(sign in SIGNS, "attack.sign", sign, f"one of {SIGNS}")
        self.density, self.scale, self.sign = float(density), float(scale), sign
        self.z = None if z is None else float(z)
        self.z_formula = z_formula
        if z is None and n is not None and f:
            alie_z_max(n, f, z_formula)
        self.mask: Tensor | None = None

    def get_mask(self, d: int, honest: Tensor, ctx: RoundContext) -> Tensor:
        """The fixed mask ``[d]`` (drawn at the first call)."""
        if self.mask is None or self.mask.numel() != d:
            gen = ctx.generator or torch.Generator().manual_seed(0)
            k = max(1, int(-(-self.density * d // 1)))
            idx = sample_columns(d, k, gen, honest.device)
            mask = torch.zeros(d, dtype=honest.dtype, device=honest.device)
            self.mask = mask.index_fill(0, idx, 1.0)
        return self.mask.to(dtype=honest.dtype, device=honest.device)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        mu, sigma = honest.mean(dim=0), honest_std(honest)
        z = self.z if self.z is not None else alie_z_max(ctx.n, ctx.f, self.z_formula)
        mask = self.get_mask(honest.shape[1], honest, ctx)
        mult = mask * self.scale + (1 - mask) * z
        s = torch.sign(mu) if self.sign == "mean" else 1.0
        return repeat_rows(mu - sigma * mult * s, ctx.f)
