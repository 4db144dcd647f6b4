"""Shared ``n x n`` helpers for the catalogue-II rules: cosine distances, row norms and
the centered Gram matrix, all float64 numpy from one Gram matrix of ``[n, d]`` rows.

Bad rows (any non-finite entry) follow ``_ops``: they are flagged in a mask, their
Gram rows/columns are zero, and callers exclude them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench.aggregators import _ops


def finite_rows(x: Tensor) -> np.ndarray:
    """Mask ``[n]`` of rows whose entries are all finite (and whose squared norm does
    not overflow)."""
    _, bad = _ops.sq_norms(x)
    return ~bad


def cosine_from_gram(g: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Cosine similarities ``[n, n]`` from a Gram matrix. A zero row has cosine 0 with
    every row (``torch.nn.functional.cosine_similarity``'s convention with its eps),
    itself included; bad rows get cosine 0 too (callers exclude them)."""
    sq = np.diagonal(g).copy()
    norm = np.sqrt(np.where(bad | (sq <= 0), 0.0, sq))
    den = norm[:, None] * norm[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(den > 0, g / np.where(den > 0, den, 1.0), 0.0)
    return np.clip(cos, -1.0, 1.0)


def cosine_distances(x: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(1 - cos [n, n], norms [n], bad [n])`` from one Gram matrix; the diagonal of
    good nonzero rows is exactly 0."""
    g, bad = _ops.gram(x)
    cos = cosine_from_gram(g, bad)
    dist = 1.0 - cos
    sq = np.diagonal(g)
    np.fill_diagonal(dist, np.where(sq > 0, 0.0, 1.0))
    norms = np.sqrt(np.maximum(np.where(bad, 0.0, sq), 0.0))
    return dist, norms, bad


def centered_gram(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrix of the rows minus the mean of the finite rows, float64 ``[n, n]``,
    and the bad-row mask.

    Why centered first: every covariance-type quantity of a subset S
    (``J_S G_S J_S``) is translation invariant, so subtracting any common vector is
    exact in real arithmetic; subtracting the mean before the product removes the
    cancellation a raw Gram matrix suffers when rows share a large common part.
    """
    good = finite_rows(x)
    if good.any() and not good.all():
        keep = torch.as_tensor(np.flatnonzero(good), device=x.device)
        c = x.index_select(0, keep).mean(0)
    else:
        c = x.mean(0) if good.any() else torch.zeros_like(x[0])
    return _ops.gram(x - c)
