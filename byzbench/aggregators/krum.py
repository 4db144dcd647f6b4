"""Krum (Blanchard et al., NeurIPS 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class Krum(Rule):
    r"""Krum: the row with the smallest sum of squared distances to its ``n - f - 2``
    nearest other rows:

    .. math:: s(i) = \sum_{j \in N_i} \|x_i - x_j\|^2, \qquad u = x_{i^*},\;
        i^* = \arg\min_i s(i),

    where :math:`N_i` are the ``n - f - 2`` rows closest to :math:`x_i` (excluding i).
    Ties go to the lowest row index. Distances come from one Gram matrix. Non-finite
    rows are at infinite distance from every row: their score is ``+inf`` and they are
    never anyone's neighbour while at most ``f`` rows are non-finite.

    Args:
        n: rows it will receive (injected). Needs ``n >= 2f + 3``.
        f: declared Byzantine count (injected).
        k_offset: neighbours scored = ``n - f - k_offset``: 2 (the paper, Flower, epfml,
            FLB) or 1 (ByzFL's ``sort(...)[:, 1:n-f]``, ByzantineMomentum).

    ``last_weights [n]`` is one-hot on the selected row.

    Reference: P. Blanchard, E. M. El Mhamdi, R. Guerraoui, J. Stainer, "Machine
    Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017.
    """

    def __init__(self, n: int, f: int, k_offset: int = 2):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(n >= 2 * f + 3, "agg.f", f, f"krum needs n >= 2f + 3 (n={n})")
        require(k_offset in (1, 2), "agg.k_offset", k_offset, "1 (ByzFL, BM) or 2 (paper)")
        self.n, self.f, self.k_offset = n, f, k_offset
        self.last_weights: Tensor | None = None
        self.last_batch_weights: Tensor | None = None

    # Batched queries (Pipeline.query_batch): the k problems' distances computed
    # together (one Gram product for those needing no centering), the n x n part per k.
    batch = kernels.batch_by_pairwise
    batch_weights = True

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same selection on each candidate's
        distances from the family's small Gram matrix."""
        kernels.check_rows("krum", fam.n, fam.n >= 2 * self.f + 3, f"n >= 2f + 3 (f={self.f})")
        return line.by_weights(fam, self._weights)

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("krum", n, n >= 2 * f + 3, f"n >= 2f + 3 (f={f})")
        i = int(np.argmax(self._weights(kernels.pairwise(x) if pw is None else pw)))
        self.last_weights = kernels.one_hot(n, [i], x)
        return x[i].clone()

    def _weights(self, pw: kernels.Pairwise) -> np.ndarray:
        """One-hot ``[n]`` on the row with the smallest score."""
        n = pw.d2.shape[0]
        w = np.zeros(n)
        w[int(np.argmin(kernels.krum_scores(pw.d2, n - self.f - self.k_offset)))] = 1.0
        return w
