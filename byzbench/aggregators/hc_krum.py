"""Hierarchical-clustering Krum (Yang, Luo, Dong, Li, IEEE SmartIoT 2024)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule

LINKAGES = ("average", "complete", "single", "ward")


class HCKrum(Rule):
    r"""Hierarchical-clustering Krum: agglomerative clustering of the rows (Euclidean,
    average linkage by default), each cluster represented by its mean, then Krum over
    the representatives.

    .. math:: C_1, \dots, C_k = \mathrm{Agglomerative}(x_1, \dots, x_n), \quad
        m_a = \frac{1}{|C_a|}\sum_{i \in C_a} x_i, \quad
        u = \mathrm{Krum}_{f_c}(m_1, \dots, m_k).

    How f maps onto clusters: f Byzantine rows can contaminate at most f clusters, so
    Krum over the representatives is told :math:`f_c` = ``f_clusters`` (default f,
    the worst case) and needs :math:`k \ge 2 f_c + 3`. With ``n_clusters = null`` the
    cut is the coarsest one Krum accepts, :math:`k = 2 f_c + 3` (largest clusters, so
    the most variance reduction), which makes the requirement ``n >= 2f + 3``, the same
    as Krum's. With ``distance_threshold`` the tree is cut at that distance and, when
    that leaves fewer than :math:`2 f_c + 3` clusters, at :math:`2 f_c + 3` instead.
    Non-finite rows are discarded before clustering and each counts against
    :math:`f_c` (they are Byzantine by construction).

    The seesaw paper names this defense but its equations are not available;
    this is byzbench's reading (see REFERENCE.md). Distances come from one Gram
    matrix (``kernels.pairwise``, centered); the representatives' distances are
    :math:`M G M^\top`-derived (membership rows sum to 1, so centering cancels), so the
    ``[n, d]`` data is read twice (Gram matrix and final combination).

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected).
        n_clusters: number of clusters k, or null for ``2 f_c + 3``.
        f_clusters: :math:`f_c`, Krum's f over the representatives; null means f.
        distance_threshold: cut the tree at this (Euclidean, linkage) distance instead
            of at a fixed k; null for the fixed k.
        linkage: ``average`` | ``complete`` | ``single`` | ``ward``.

    ``last_weights [n]`` is ``1/|C|`` on the rows of the selected cluster C.

    Reference: X. Yang, Y. Luo, Z. Dong, M. Li, "A Seesaw Model Attack Algorithm for
    Distributed Learning", IEEE SmartIoT 2024 (arXiv:2410.05161), HC-Krum; Krum from
    Blanchard et al., NeurIPS 2017.
    """

    def __init__(self, n: int, f: int, n_clusters: int | None = None,
                 f_clusters: int | None = None, distance_threshold: float | None = None,
                 linkage: str = "average"):
        require(f >= 0, "agg.f", f, "f >= 0")
        fc = f if f_clusters is None else f_clusters
        require(fc >= 0, "agg.f_clusters", f_clusters, "null or >= 0")
        require(linkage in LINKAGES, "agg.linkage", linkage, f"one of {', '.join(LINKAGES)}")
        require(distance_threshold is None or distance_threshold > 0, "agg.distance_threshold",
                distance_threshold, "null or > 0")
        kmin = 2 * fc + 3
        require(n >= kmin, "agg.f", f, f"hc_krum needs n >= 2f_c + 3 = {kmin} (n={n}, f_c={fc})")
        k = kmin if n_clusters is None else n_clusters
        require(kmin <= k <= n, "agg.n_clusters", n_clusters,
                f"null or 2f_c + 3 = {kmin} <= n_clusters <= n = {n}")
        self.n, self.f, self.fc, self.k = n, f, fc, k
        self.distance_threshold, self.linkage = distance_threshold, linkage
        self.last_weights: Tensor | None = None
        self.last_labels: np.ndarray | None = None

    def clusters(self, d2: np.ndarray, kmin: int) -> np.ndarray:
        """Cluster labels ``[m]`` (0..k-1) of rows with squared distances ``d2 [m, m]``."""
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        m = d2.shape[0]
        if m <= kmin:
            return np.arange(m)
        dist = np.sqrt(np.maximum(d2, 0.0))
        np.fill_diagonal(dist, 0.0)
        z = linkage(squareform(0.5 * (dist + dist.T), checks=False), method=self.linkage)
        if self.distance_threshold is not None:
            lab = fcluster(z, t=self.distance_threshold, criterion="distance")
            if lab.max() >= kmin:
                return lab - 1
        lab = fcluster(z, t=min(self.k, m), criterion="maxclust")
        return lab - 1

    # Batched queries (Pipeline.query_batch): the k problems' distances computed
    # together (one Gram product for those needing no centering), the n x n part per k.
    batch = kernels.batch_by_pairwise

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same selection on each candidate's
        distances from the family's small Gram matrix."""
        kmin = 2 * self.fc + 3
        kernels.check_rows("hc_krum", fam.n, fam.n >= kmin, f"n >= 2f_c + 3 = {kmin}")
        return line.by_weights(fam, self._weights)

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]``."""
        n = x.shape[0]
        kmin = 2 * self.fc + 3
        kernels.check_rows("hc_krum", n, n >= kmin, f"n >= 2f_c + 3 = {kmin}")
        pw = kernels.pairwise(x) if pw is None else pw
        w = self._weights(pw)
        self.last_weights = kernels.one_hot(n, np.flatnonzero(w > 0), x)
        return kernels.combine(x, w, pw.bad)

    def _weights(self, pw: kernels.Pairwise) -> np.ndarray:
        """The selected cluster's membership weights ``[n]`` (sets ``last_labels``)."""
        d2, g, bad = pw.d2, pw.gram, pw.bad
        n = d2.shape[0]
        good = np.flatnonzero(~bad)
        fc = max(0, self.fc - int(bad.sum()))
        lab = self.clusters(d2[np.ix_(good, good)], 2 * fc + 3)
        k = int(lab.max()) + 1 if len(lab) else 0
        memb = np.zeros((k, n))
        memb[lab, good] = 1.0
        memb /= memb.sum(axis=1, keepdims=True)
        if k >= 3:
            gr = memb @ g @ memb.T  # centered Gram of the cluster means
            dr = kernels.sqdist_from_gram(gr, np.zeros(k, dtype=bool))
            fc = min(fc, (k - 3) // 2)
            a = int(np.argmin(kernels.krum_scores(dr, k - fc - 2)))
        else:  # fewer than 3 finite rows: no Krum possible, take the largest cluster
            a = int(np.argmax((memb > 0).sum(axis=1))) if k else 0
        full = np.full(n, -1)
        full[good] = lab
        self.last_labels = full
        return memb[a] if k else np.zeros(n)
