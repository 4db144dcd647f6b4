"""Shared generator for the synthetic convex tasks (not an option itself)."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require


def check_sizes(n_samples: int, n_test: int, dim: int, cond: float) -> None:
    """One-line ConfigErrors for the parameters both synthetic tasks share."""
    for name, v in (("n_samples", n_samples), ("n_test", n_test), ("dim", dim)):
        require(isinstance(v, int) and v >= 1, f"dataset.{name}", v, "a positive integer")
    require(isinstance(cond, (int, float)) and cond >= 1, "dataset.cond", cond, "a number >= 1")


def gaussian_features(n: int, dim: int, cond: float, generator: torch.Generator) -> Tensor:
    """``X [n, dim]`` float64 with rows ~ N(0, Sigma), ``Sigma = Q diag(lam) Q^T``.

    ``lam_j = cond^(-j / (dim - 1))`` for j = 0..dim-1 (from 1 down to 1/cond), so the
    population Hessian of least squares, 2 Sigma, has condition number ``cond``; Q is a
    random rotation (QR of a Gaussian matrix, signs fixed so Q is unique).
    """
    j = torch.arange(dim, dtype=torch.float64)
    lam = float(cond) ** (-j / max(dim - 1, 1))
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    z = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return (z * lam.sqrt()) @ q.T
