"""Shared ``n x n`` helpers for the catalogue-II rules (float64 numpy, from one Gram
matrix of the ``[n, d]`` rows): squared row norms, pairwise distances, the centered
Gram matrix and cosine distances.

Bad rows (any non-finite entry) follow ``_ops``: they are flagged in a mask, their
Gram rows/columns are zero, and callers exclude them. Distances go through the
package's distance primitive (``kernels.pairwise``: centered on a central row when the
raw Gram matrix would lose precision), so they are exact relative to the rows' spread.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench.kernels import distances
from byzbench.kernels.rows import to_np

_NORM_ELEMS = 1 << 19  # float64 elements per chunk of the norm accumulation (4 MB)


def row_sq_norms(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(||x_i||^2 [n], bad [n])`` accumulated in float64 over column chunks (exact
    for float32 rows whose norms differ by less than float32's resolution, as close
    rows of norm 1e3 do), 0 for bad rows."""
    n, d = x.shape
    cols = max(1, _NORM_ELEMS // max(1, n))
    acc = torch.zeros(n, dtype=torch.float64, device=x.device)
    for a in range(0, d, cols):
        c = x[:, a:a + cols].to(torch.float64)
        acc += (c * c).sum(dim=1)
    sq = to_np(acc)
    bad = ~np.isfinite(sq)
    return np.where(bad, 0.0, sq), bad


def pairwise(x: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(D [n, n], G [n, n], bad [n])`` from ``kernels.pairwise``: squared distances, and
    the Gram matrix of the rows minus one central row (read only translation-invariant
    quantities from it)."""
    pw = distances.pairwise(x)
    return pw.d2, pw.gram, pw.bad


def centered_gram(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A Gram matrix of the rows minus a common vector, float64 ``[n, n]``, and the
    bad-row mask. Every covariance-type quantity of a subset S (``J_S G_S J_S``) is
    translation invariant, so this is exact in real arithmetic and free of the
    cancellation of a raw Gram matrix when rows share a large common part."""
    _, g, bad = pairwise(x)
    return g, bad


def cosine_distances(x: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(1 - cos [n, n], norms [n], bad [n])``.

    ``2 (1 - cos(x_i, x_j)) = (||x_i - x_j||^2 - (a_i - a_j)^2) / (a_i a_j)`` with
    ``a = ||x||``: the pairwise distances from ``kernels.pairwise`` (exact relative to the
    rows' spread) and float64-accumulated norms, so nearly parallel rows (``1 - cos``
    far below float32's resolution, e.g. norm 1e3 and spread 1e-2) get exact distances
    without an ``[n, d]`` temporary. A zero row has cosine 0, i.e. distance 1, with
    every other row (``torch.nn.functional.cosine_similarity``'s convention); bad rows
    are at distance 1 too (callers exclude them). The diagonal is 0.
    """
    sq, bad = row_sq_norms(x)
    norms = np.sqrt(sq)
    d2, _, bad_pw = pairwise(x)
    bad = bad | bad_pw
    zero = bad | (norms == 0)
    den = np.outer(norms, norms)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dist = 0.5 * (d2 - (norms[:, None] - norms[None, :]) ** 2) / np.where(den > 0, den, 1.0)
    dist = np.clip(np.nan_to_num(dist, nan=1.0, posinf=2.0, neginf=0.0), 0.0, 2.0)
    dist[zero, :] = 1.0
    dist[:, zero] = 1.0
    np.fill_diagonal(dist, 0.0)
    return dist, norms, bad
