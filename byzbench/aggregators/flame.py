"""FLAME (Nguyen et al., USENIX Security 2022)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule


class FLAME(Rule):
    r"""FLAME: cosine-distance HDBSCAN filter, clipping to the median norm, optional
    Gaussian noise.

    1. Pairwise cosine distances :math:`c_{ij} = 1 - \cos(x_i, x_j)`; scikit-learn's
       HDBSCAN (``metric="precomputed"``, ``min_cluster_size = floor(n/2) + 1``,
       ``min_samples = 1``, ``allow_single_cluster=True``, as in the paper's
       Algorithm 1) and the admitted rows S are the largest cluster (noise excluded).
    2. :math:`S_t = \mathrm{median}_i \|x_i\|` over all finite rows (the paper's
       median of the update norms) and every admitted row is clipped,
       :math:`\tilde x_i = x_i \min(1, S_t / \|x_i\|)`.
    3. :math:`u = \frac{1}{|S|} \sum_{i \in S} \tilde x_i + \mathcal N(0,
       (\lambda S_t)^2 I)`, the noise drawn from the run's seeded generator.

    The paper adds noise with :math:`\lambda = 0.001` (image tasks) or 0.01 (NLP) to
    remove backdoors; byzbench's default ``noise = 0`` (the issue: noise optional) so
    that the rule is deterministic; set ``agg.noise=0.001`` for the paper's setting.
    In gradient space the update :math:`W_i - G_t` of the paper is the row itself.
    If HDBSCAN labels every row as noise (not covered by the paper) all finite rows
    are admitted. Non-finite rows are excluded before clustering.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; unused by the rule).
        noise: lambda, >= 0 (0 = no noise).
        generator: injected seeded generator (noise).

    ``last_weights [n]`` is ``min(1, S_t/||x_i||)/|S|`` on the admitted rows.

    Reference: T. D. Nguyen, P. Rieger, H. Chen, H. Yalame, H. Moellering, H. Fereidooni,
    S. Marchal, M. Miettinen, A. Mirhoseini, S. Zeitouni, F. Koushanfar, A.-R. Sadeghi,
    T. Schneider, "FLAME: Taming Backdoors in Federated Learning", USENIX Security 2022.
    """

    generator_keys = ("generator",)


    def __init__(self, n: int = 1, f: int = 0, noise: float = 0.0,
                 generator: torch.Generator | None = None):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(noise >= 0, "agg.noise", noise, ">= 0")
        self.n, self.f, self.noise = n, f, float(noise)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.last_weights: Tensor | None = None
        self.last_admitted: np.ndarray | None = None

    @staticmethod
    def admitted(dist: np.ndarray) -> np.ndarray:
        """Mask of the largest HDBSCAN cluster of a precomputed distance matrix."""
        m = dist.shape[0]
        if m < 3:
            return np.ones(m, dtype=bool)
        from sklearn.cluster import HDBSCAN

        d = np.clip(0.5 * (dist + dist.T), 0.0, 2.0)
        np.fill_diagonal(d, 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = HDBSCAN(metric="precomputed", min_cluster_size=m // 2 + 1, min_samples=1,
                             allow_single_cluster=True, copy=True).fit(d).labels_
        ids, counts = np.unique(labels[labels >= 0], return_counts=True)
        if len(ids) == 0:
            return np.ones(m, dtype=bool)
        return labels == ids[np.argmax(counts)]

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n = x.shape[0]
        dist, norms, bad = kernels.similarity.cosine_distances(x)
        good = np.flatnonzero(~bad)
        if len(good) == 0:
            self.last_weights = None
            return x.mean(0)
        sel = np.zeros(n, dtype=bool)
        sel[good[self.admitted(dist[np.ix_(good, good)])]] = True
        self.last_admitted = sel
        st = float(np.median(norms[good]))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(norms > st, st / np.where(norms > 0, norms, 1.0), 1.0)
        w = np.where(sel, scale, 0.0) / sel.sum()
        self.last_weights = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        out = kernels.combine(x, w, bad)
        if self.noise > 0:
            z = torch.randn(x.shape[1], generator=self.generator, dtype=x.dtype,
                            device=self.generator.device).to(x.device)
            out = out + (self.noise * st) * z
        return out
