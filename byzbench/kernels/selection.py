"""Selection by score: Krum scores from squared distances and stable smallest-k."""

from __future__ import annotations

import math

import numpy as np

INF = math.inf




def krum_scores(d2: np.ndarray, k: int) -> np.ndarray:
    """Krum score of every row: sum of its ``k`` smallest squared distances to the
    *other* rows (Blanchard et al., 2017). ``d2`` is ``[n, n]``; rows/columns set to
    ``+inf`` are thereby excluded as neighbours."""
    d = d2.copy()
    np.fill_diagonal(d, INF)
    if k <= 0:
        return np.zeros(d.shape[0])
    part = np.partition(d, k - 1, axis=1)[:, :k]
    with np.errstate(invalid="ignore"):
        s = part.sum(axis=1)
    return np.nan_to_num(s, nan=INF)


def stable_smallest(scores: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` smallest scores, ties broken by the lower index."""
    return np.argsort(scores, kind="stable")[:m]
