"""Clipped clustering (Li, Ngai, Voigt, IEEE TBD 2023; Blades ``clippedclustering.py``)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import cut_tree, linkage
from scipy.spatial.distance import squareform
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

LINKAGES = ("average", "single")
AGGS = ("mean", "median")


class ClippedClustering(Rule):
    r"""Clipped clustering: clip, split in two by cosine distance, average the larger
    part.

    1. Every row's norm joins a history of all norms seen so far (stateful); the
       threshold is :math:`\tau_t = \mathrm{median}(\text{history})` (capped at
       ``max_tau`` if given) and rows are clipped,
       :math:`\tilde x_i = x_i \min(1, \tau_t / \|x_i\|)`.
    2. Agglomerative clustering into two clusters on cosine distances
       :math:`1 - \cos(x_i, x_j)` (clipping does not change them), ``average``
       linkage by default (scipy's hierarchical clustering; the last merge of the
       dendrogram is the two-cluster cut, as scikit-learn's ``n_clusters=2``).
    3. Output the mean (or coordinate-wise median) of the clipped rows of the larger
       cluster. Equal sizes: Blades takes whichever label the clustering called 0;
       byzbench takes the cluster holding the lowest row index (deterministic).

    Non-finite rows never enter the history or the clustering and get weight 0; with
    fewer than two finite rows they are all kept.

    Variants: ``linkage: single``; ``max_tau`` (Blades' ``max_tau``, default 1e5 in
    Blades, an absolute cap: byzbench's default ``null`` keeps the rule scale-free);
    ``agg: median`` (Blades' ``agg``). Blades' ``signguard=True`` add-on (a KMeans
    on sign statistics intersected with the cluster) is not included.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; unused by the rule).
        linkage: ``average | single``.
        max_tau: optional absolute cap on the clipping threshold (null = none).
        agg: ``mean | median`` over the selected clipped rows.

    ``last_weights [n]`` (``mean`` only) is ``min(1, tau/||x_i||)/|S|`` on the
    selected rows.

    Reference: S. Li, E. Ngai, T. Voigt, "An Experimental Study of Byzantine-Robust
    Aggregation Schemes in Federated Learning", IEEE Trans. Big Data 2023
    (doi:10.36227/techrxiv.19560325); code: lishenghui/blades
    ``aggregators/clippedclustering.py``.
    """

    state_keys = ("norm_history",)


    def __init__(self, n: int = 1, f: int = 0, linkage: str = "average",
                 max_tau: float | None = None, agg: str = "mean"):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(linkage in LINKAGES, "agg.linkage", linkage, f"one of {LINKAGES}")
        require(max_tau is None or max_tau > 0, "agg.max_tau", max_tau, "> 0 or null")
        require(agg in AGGS, "agg.agg", agg, f"one of {AGGS}")
        self.n, self.f, self.linkage, self.max_tau, self.agg = n, f, linkage, max_tau, agg
        self.norm_history = np.zeros(0)
        self.last_weights: Tensor | None = None
        self.last_tau: float | None = None

    def two_clusters(self, dist: np.ndarray) -> np.ndarray:
        """Mask of the larger of the two clusters of a cosine-distance matrix."""
        m = dist.shape[0]
        if m < 2:
            return np.ones(m, dtype=bool)
        d = np.clip(0.5 * (dist + dist.T), 0.0, 2.0)
        np.fill_diagonal(d, 0.0)
        z = linkage(squareform(d, checks=False), method=self.linkage)
        labels = cut_tree(z, n_clusters=2).ravel()
        size1 = int(labels.sum())
        if size1 * 2 == m:  # tie: the cluster of row 0
            return labels == labels[0]
        return labels == (1 if size1 * 2 > m else 0)

    def batch(self, xs: Tensor) -> Tensor:
        """``[k, n, d] -> [k, d]``: each problem from the same norm history (a loop of
        calls; the state after is that of the last problem, as after one call)."""
        hist, outs = self.norm_history, []
        for x in xs:
            self.norm_history = hist
            outs.append(self(x))
        return torch.stack(outs)

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n = x.shape[0]
        dist, norms, bad = kernels.similarity.cosine_distances(x)
        good = np.flatnonzero(~bad)
        self.norm_history = np.concatenate([self.norm_history, norms[good]])
        tau = float(np.median(self.norm_history)) if len(self.norm_history) else 0.0
        if self.max_tau is not None:
            tau = min(tau, float(self.max_tau))
        self.last_tau = tau
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(norms > tau, tau / np.where(norms > 0, norms, 1.0), 1.0)
        sel = np.zeros(n, dtype=bool)
        if len(good) >= 2:
            sel[good[self.two_clusters(dist[np.ix_(good, good)])]] = True
        else:
            sel[good] = True
        if not sel.any():  # every row non-finite: let nan show
            self.last_weights = None
            return x.mean(0)
        w = np.where(sel, scale, 0.0) / sel.sum()
        if self.agg == "median":
            self.last_weights = None
            idx = np.flatnonzero(sel)
            rows = x[torch.as_tensor(idx, device=x.device)] * x.new_tensor(scale[idx])[:, None]
            return kernels.columnwise(kernels.median_block, rows).to(x.device)
        self.last_weights = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        return kernels.combine(x, w, bad)
