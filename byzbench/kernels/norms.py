"""Shared by the norm-based backdoor defenses (norm_bound, weak_dp, crfl): row norms,
the fixed or median-adaptive bound, clipping scales, seeded Gaussian noise."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import require

NOISE_UNITS = ("bound", "absolute")


def check_bound(bound: float | str, key: str = "agg.bound") -> None:
    """A number > 0 or ``median``."""
    require(bound == "median" or (isinstance(bound, (int, float)) and bound > 0), key, bound,
            "a number > 0 or median (the median norm of the finite rows)")


def check_noise(sigma: float, unit: str) -> None:
    require(isinstance(sigma, (int, float)) and sigma >= 0, "agg.sigma", sigma, ">= 0")
    require(unit in NOISE_UNITS, "agg.unit", unit, f"one of {NOISE_UNITS}")


def row_norms(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(norms [n], bad [n])`` in float64 numpy; bad: a row with a non-finite entry."""
    norms = torch.linalg.vector_norm(x.double(), dim=1).cpu().numpy()
    return norms, ~np.isfinite(norms)


def finite_mean_weights(bad: np.ndarray) -> np.ndarray:
    """``1/|G|`` on the finite rows G, 0 on the others (G non-empty)."""
    return np.where(bad, 0.0, 1.0) / (~bad).sum()


def resolve_bound(bound: float | str, norms: np.ndarray, bad: np.ndarray) -> float:
    """The bound M: fixed, or the median norm of the finite rows (numpy's median, the
    mean of the two middle values for an even count; 0 without a finite row)."""
    if bound != "median":
        return float(bound)
    good = norms[~bad]
    return float(np.median(good)) if good.size else 0.0


def clip_scale(norms: np.ndarray, m: float) -> np.ndarray:
    """``min(1, M / ||x_i||)`` (1 for a zero row; bad rows get any value, never used)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms > m, m / np.where(norms > 0, norms, 1.0), 1.0)


def gaussian(d: int, std: float, generator: torch.Generator, like: Tensor) -> Tensor:
    """``N(0, std^2 I_d)`` drawn from the stage's seeded ``generator`` (its device),
    in ``like``'s dtype and device."""
    z = torch.randn(d, generator=generator, dtype=like.dtype, device=generator.device)
    return (std * z).to(like.device)
