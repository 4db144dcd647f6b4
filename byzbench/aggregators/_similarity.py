"""Shared ``n x n`` helpers for the catalogue-II rules (float64 numpy, from one Gram
matrix of the ``[n, d]`` rows): squared row norms, pairwise distances, the centered
Gram matrix and cosine distances.

Bad rows (any non-finite entry) follow ``_ops``: they are flagged in a mask, their
Gram rows/columns are zero, and callers exclude them. Distances go through the
package's distance primitive (``_ops.pairwise``: centered on a central row when the
raw Gram matrix would lose precision), so they are exact relative to the rows' spread.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench.aggregators import _ops


def row_sq_norms(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(||x_i||^2 [n], bad [n])``, 0 for bad rows."""
    sq, bad = _ops.sqdist_to(x)
    return np.where(bad, 0.0, sq), bad


def pairwise(x: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(D [n, n], G [n, n], bad [n])`` from ``_ops.pairwise``: squared distances, and
    the Gram matrix of the rows minus one central row (read only translation-invariant
    quantities from it)."""
    pw = _ops.pairwise(x)
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

    ``1 - cos(x_i, x_j) = ||u_i - u_j||^2 / 2`` with ``u = x / ||x||``: computed as a
    distance between the normalized rows (exact for nearly parallel rows, where
    ``1 - <u_i, u_j>`` would be rounding). A zero row has cosine 0, i.e. distance 1,
    with every other row (``torch.nn.functional.cosine_similarity``'s convention); bad
    rows are at distance 1 too (callers exclude them). The diagonal is 0.
    """
    sq, bad = row_sq_norms(x)
    norms = np.sqrt(sq)
    zero = bad | (norms == 0)
    scale = np.where(zero, 0.0, 1.0 / np.where(zero, 1.0, norms))
    u = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0) * x.new_tensor(scale)[:, None]
    d2, _, _ = pairwise(u)
    dist = np.clip(0.5 * np.nan_to_num(d2, nan=2.0, posinf=2.0), 0.0, 2.0)
    dist[zero, :] = 1.0
    dist[:, zero] = 1.0
    np.fill_diagonal(dist, 0.0)
    return dist, norms, bad
