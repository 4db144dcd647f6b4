"""Multi-Krum (Blanchard et al., NeurIPS 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class MultiKrum(Rule):
    r"""Multi-Krum: the average of the ``m`` rows with the best Krum scores.

    .. math:: s(i) = \sum_{j \in N_i} \|x_i - x_j\|^2, \qquad
        u = \frac{1}{m} \sum_{i \in S_m} x_i,

    where :math:`N_i` are the ``n - f - 2`` rows closest to :math:`x_i` and
    :math:`S_m` the ``m`` rows with the smallest scores (scores computed once, as in the
    paper; ties go to the lower row index). ``m = 1`` is Krum; ``f = 0, m = n`` is the
    mean. Non-finite rows have score ``+inf`` and are never selected (if fewer than
    ``m`` rows are finite, the finite ones are averaged).

    Args:
        n: rows it will receive (injected). Needs ``n >= 2f + 3``.
        f: declared Byzantine count (injected).
        m: rows averaged; ``None`` means ``n - f`` (the common choice, ByzFL).
        k_offset: neighbours scored = ``n - f - k_offset``: 2 (the paper, Flower, epfml,
            FLB) or 1 (ByzFL, ByzantineMomentum).

    ``last_weights [n]`` is ``1/m`` on the selected rows.

    Reference: P. Blanchard, E. M. El Mhamdi, R. Guerraoui, J. Stainer, "Machine
    Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017.
    """

    def __init__(self, n: int, f: int, m: int | None = None, k_offset: int = 2):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(n >= 2 * f + 3, "agg.f", f, f"multikrum needs n >= 2f + 3 (n={n})")
        require(m is None or 1 <= m <= n, "agg.m", m, f"null or 1 <= m <= n (n={n})")
        require(k_offset in (1, 2), "agg.k_offset", k_offset, "1 (ByzFL, BM) or 2 (paper)")
        self.n, self.f, self.m, self.k_offset = n, f, m, k_offset
        self.last_weights: Tensor | None = None
        self.last_batch_weights: Tensor | None = None

    # Batched queries (Pipeline.query_batch): the k problems' distances computed
    # together (one Gram product for those needing no centering), the n x n part per k.
    batch = kernels.batch_by_pairwise
    batch_weights = True

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same selection on each candidate's
        distances from the family's small Gram matrix."""
        kernels.check_rows("multikrum", fam.n, fam.n >= 2 * self.f + 3, f"n >= 2f + 3 (f={self.f})")
        return line.by_weights(fam, self._weights)

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("multikrum", n, n >= 2 * f + 3, f"n >= 2f + 3 (f={f})")
        pw = kernels.pairwise(x) if pw is None else pw
        w = self._weights(pw)
        self.last_weights = kernels.one_hot(n, np.flatnonzero(w), x)
        return kernels.combine(x, w, pw.bad)

    def _weights(self, pw: kernels.Pairwise) -> np.ndarray:
        """``1/m`` on the m rows with the smallest scores."""
        n, f, bad = pw.d2.shape[0], self.f, pw.bad
        m = min(n - f if self.m is None else self.m, n)
        scores = kernels.krum_scores(pw.d2, n - f - self.k_offset)
        scores[bad] = np.inf
        idx = kernels.stable_smallest(scores, min(m, int((~bad).sum()) or m))
        w = np.zeros(n)
        w[idx] = 1.0 / len(idx)
        return w
