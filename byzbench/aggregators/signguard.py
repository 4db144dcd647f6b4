"""SignGuard (Xu, Huang, Song, Lan, ICDCS 2022)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule


class SignGuard(Rule):
    r"""SignGuard: norm filter, sign-statistics clustering, then clipped averaging.

    1. Norm filter: with :math:`M = \mathrm{median}_i \|x_i\|`, keep
       :math:`S_1 = \{i : L \le \|x_i\| / M \le R\}`.
    2. Sign clustering: on a random subset of ``ceil(frac * d)`` coordinates (the run's
       seeded generator; ``sampling: block``: one contiguous block at a random start,
       as the authors' code does), each row's features are the fractions of positive,
       zero and negative entries (``normalize``: each feature divided by its maximum
       over the rows, as the authors' code does); MeanShift (bandwidth estimated from
       the features, bin seeding, as in the authors' code with sklearn; re-implemented
       here in numpy, see :func:`mean_shift`) clusters the rows and :math:`S_2` is the
       largest cluster.
    3. Output :math:`\frac{1}{|S|} \sum_{i \in S} x_i \min(1, M / \|x_i\|)` with
       :math:`S = S_1 \cap S_2`.

    Features are 3-dimensional, so the clustering is an ``n x 3`` CPU problem; only the
    norms, the coordinate gather and the final combination touch ``[n, d]``. If S is
    empty (not covered by the paper) the norm-filtered set :math:`S_1` is used, and if
    that is empty too, every finite row. If all features coincide (bandwidth 0) every
    row forms one cluster. Non-finite rows fail the norm filter and are excluded from
    the clustering.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; SignGuard does not use it).
        lower: L, the lower norm ratio, >= 0.
        upper: R, the upper norm ratio, > L.
        frac: fraction of coordinates used for the sign statistics, in (0, 1].
        sampling: ``random`` (the paper: a random subset) | ``block`` (authors' code).
        normalize: divide each sign feature by its maximum over rows (authors' code).
        generator: seeded torch.Generator (injected); ``None`` uses a private one
            seeded 0.

    ``last_weights [n]`` holds each row's coefficient ``min(1, M/||x_i||)/|S|`` (they
    sum to at most 1).

    Reference: J. Xu, S.-L. Huang, L. Song, T. Lan, "Byzantine-robust Federated
    Learning through Collaborative Malicious Gradient Filtering", ICDCS 2022
    (arXiv:2109.05872). Defaults L = 0.1, R = 3.0, frac = 0.1.
    """

    generator_keys = ("generator",)


    def __init__(self, n: int = 1, f: int = 0, lower: float = 0.1, upper: float = 3.0,
                 frac: float = 0.1, sampling: str = "random", normalize: bool = False,
                 generator: torch.Generator | None = None):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(lower >= 0, "agg.lower", lower, "lower >= 0")
        require(upper > lower, "agg.upper", upper, f"upper > lower (lower={lower})")
        require(0 < frac <= 1, "agg.frac", frac, "0 < frac <= 1")
        require(sampling in ("random", "block"), "agg.sampling", sampling, "random or block")
        self.sampling, self.normalize = sampling, bool(normalize)
        self.n, self.f, self.lower, self.upper, self.frac = n, f, lower, upper, frac
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator
        self.last_weights: Tensor | None = None

    @staticmethod
    def _largest_cluster(feat: np.ndarray) -> np.ndarray:
        """Mask of the largest MeanShift cluster of ``feat [m, 3]``."""
        if len(feat) < 2:
            return np.ones(len(feat), dtype=bool)
        labels = mean_shift(feat, estimate_bandwidth(feat))
        ids, counts = np.unique(labels[labels >= 0], return_counts=True)
        if len(ids) == 0:
            return np.ones(len(feat), dtype=bool)
        # Ties: the lowest label, i.e. the densest centre (labels follow intensity).
        return labels == ids[np.argmax(counts)]

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        norms_t = torch.linalg.vector_norm(x, dim=1)
        norms = norms_t.detach().to("cpu", torch.float64).numpy()
        finite = np.isfinite(norms)
        if not finite.any():
            self.last_weights = None
            return x.mean(dim=0)
        med = float(np.median(norms[finite]))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = norms / med if med > 0 else np.where(norms > 0, np.inf, 1.0)
        s1 = finite & (ratio >= self.lower) & (ratio <= self.upper)
        k = max(1, int(np.ceil(self.frac * d)))
        if self.sampling == "block":  # authors' code: one contiguous block at a random start
            gen = self.generator
            start = int(torch.randint(0, max(1, d - k + 1), (1,), generator=gen,
                                      device=gen.device))
            cols = torch.arange(start, min(d, start + k), device=x.device)
        else:
            cols = kernels.sample_columns(d, k, self.generator, x.device)
        a = kernels.gather_cols(x, cols)
        pos = np.count_nonzero(a > 0, axis=1) / k
        zero = np.count_nonzero(a == 0, axis=1) / k
        feat = np.stack([pos, zero, 1.0 - pos - zero], axis=1)  # nan compares False
        if self.normalize:  # authors' code: each feature divided by its maximum over rows
            top = feat[finite].max(axis=0)
            feat = feat / np.where(top > 0, top, 1.0)
        s2 = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(finite)
        s2[rows] = self._largest_cluster(feat[rows])
        s = s1 & s2
        if not s.any():
            s = s1 if s1.any() else finite
        with np.errstate(divide="ignore"):
            clip = np.where(norms > 0, np.minimum(1.0, med / norms), 1.0)
        w = np.where(s, clip, 0.0) / s.sum()
        self.last_weights = torch.as_tensor(w, dtype=x.dtype).to(x.device)
        return kernels.combine(x, w, ~finite)


def estimate_bandwidth(feat: np.ndarray, quantile: float = 0.5) -> float:
    """Mean over points of the distance to their ``int(m * quantile)``-th nearest point
    (the point itself counting as the first), as ``sklearn.cluster.estimate_bandwidth``."""
    m = len(feat)
    k = max(1, int(m * quantile))
    dist = np.sqrt(((feat[:, None, :] - feat[None, :, :]) ** 2).sum(-1))  # m x m x 3, tiny
    return float(np.sort(dist, axis=1)[:, k - 1].mean())


def mean_shift(feat: np.ndarray, bandwidth: float, max_iter: int = 300) -> np.ndarray:
    """Flat-kernel MeanShift with bin seeding, unassigned points labelled -1.

    Same algorithm as ``sklearn.cluster.MeanShift(bandwidth, bin_seeding=True,
    cluster_all=False)`` (seeds at occupied grid bins of side ``bandwidth``; every seed
    moves to the mean of the points within ``bandwidth`` until it moves less than
    ``1e-3 * bandwidth``; centres sorted by the number of points within reach, then
    de-duplicated within ``bandwidth``; points join the nearest centre within
    ``bandwidth``), vectorized over seeds: sklearn's per-call overhead (~0.2 s for a
    few dozen points) would dominate SignGuard.
    """
    m = len(feat)
    if not np.isfinite(bandwidth) or bandwidth <= 1e-12:
        return np.zeros(m, dtype=np.int64)
    bins, counts = np.unique(np.round(feat / bandwidth), axis=0, return_counts=True)
    seeds = feat.copy() if len(bins) == m else bins * bandwidth
    active = np.ones(len(seeds), dtype=bool)
    reach = np.zeros(len(seeds), dtype=np.int64)
    for _ in range(max_iter):  # iterations of all seeds at once
        d2 = ((seeds[:, None, :] - feat[None, :, :]) ** 2).sum(-1)
        within = d2 <= bandwidth**2
        reach = within.sum(axis=1)
        new = np.where(reach[:, None] > 0, within @ feat / np.maximum(reach, 1)[:, None], seeds)
        moved = np.sqrt(((new - seeds) ** 2).sum(-1))
        seeds = np.where(active[:, None], new, seeds)
        active &= (reach > 0) & (moved > 1e-3 * bandwidth)
        if not active.any():
            break
    keep = reach > 0
    centres, intensity = seeds[keep], reach[keep]
    # sort by intensity, then by centre coordinates, both descending (sklearn's order)
    order = np.lexsort(tuple(-centres[:, j] for j in reversed(range(centres.shape[1])))
                       + (-intensity,))
    centres = centres[order]
    unique = np.ones(len(centres), dtype=bool)
    for i in range(len(centres)):  # de-duplicate centres (few, O(seeds^2))
        if unique[i]:
            near = ((centres - centres[i]) ** 2).sum(-1) <= bandwidth**2
            unique[near] = False
            unique[i] = True
    centres = centres[unique]
    d2 = ((feat[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    labels = d2.argmin(axis=1)
    labels[d2[np.arange(m), labels] > bandwidth**2] = -1
    return labels
