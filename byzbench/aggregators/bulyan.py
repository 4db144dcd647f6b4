"""Bulyan (El Mhamdi, Guerraoui, Rouault, ICML 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule


class Bulyan(Rule):
    r"""Bulyan: iterated Krum selects :math:`\theta = n - 2f` rows, then per coordinate
    the :math:`\beta = \theta - 2f` selected values closest to their median are
    averaged:

    .. math:: S \leftarrow S \cup \{\mathrm{Krum}_f(R \setminus S)\} \ (\theta\ \text{times}),
        \qquad u_k = \frac{1}{\beta} \sum_{i \in M_k} x_{ik},

    where each Krum step scores the *remaining* rows with their
    ``|R| - f - 2`` nearest remaining neighbours (as in the paper; some libraries
    score once over all n; ties, frequent in the last steps where few neighbours are
    scored, go to the row with the smallest total distance to the remaining rows), and
    :math:`M_k` holds the :math:`\beta` selected values of
    coordinate k closest to the coordinate-wise median of the selection.

    The selection loop has :math:`\theta` sequential steps by definition, each on the
    ``n x n`` distance matrix (from one Gram matrix); the coordinate phase is
    vectorized (numpy sort on CPU). Non-finite rows have infinite Krum scores and are
    never selected while at most f rows are non-finite.

    Args:
        n: rows it will receive (injected). Needs ``n >= 4f + 3``.
        f: declared Byzantine count (injected).

    ``last_weights [n]`` is ``1/theta`` on the rows selected by the Krum phase (the
    coordinate phase is not a per-row weighting).

    Reference: E. M. El Mhamdi, R. Guerraoui, S. Rouault, "The Hidden Vulnerability of
    Distributed Learning in Byzantium", ICML 2018.
    """

    def __init__(self, n: int, f: int):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(n >= 4 * f + 3, "agg.f", f, f"bulyan needs n >= 4f + 3 (n={n})")
        self.n, self.f = n, f
        self.last_weights: Tensor | None = None
        self.last_batch_weights: Tensor | None = None

    def select(self, d2: np.ndarray) -> list[int]:
        """Rows chosen by the iterated-Krum phase, in selection order."""
        n, f = d2.shape[0], self.f
        remaining = np.ones(n, dtype=bool)
        sel: list[int] = []
        for _ in range(n - 2 * f):  # sequential by definition; n x n work per step
            idx = np.flatnonzero(remaining)
            sub = d2[np.ix_(idx, idx)]
            scores = kernels.krum_scores(sub, len(idx) - f - 2)
            # Late steps score with few (at f = 1, zero) neighbours, so ties are common:
            # break them by the total distance to the remaining rows (a value, not an
            # index, so row order does not matter), then by index.
            spread = np.where(np.isinf(sub), 1e300, sub).sum(axis=1)
            j = int(idx[np.lexsort((idx, spread, scores))[0]])
            sel.append(j)
            remaining[j] = False
        return sel

    def select_batch(self, d2: np.ndarray) -> np.ndarray:
        """:meth:`select` of k problems at once (``d2 [k, n, n]`` -> ``[k, theta]``):
        every step removes one row per problem, so the remaining sets keep one size
        and each step is one set of ``[k, m, m]`` array operations."""
        k, n, _ = d2.shape
        f = self.f
        kk = np.arange(k)[:, None]
        idx = np.tile(np.arange(n), (k, 1))  # remaining rows, ascending
        sel = np.empty((k, n - 2 * f), dtype=np.int64)
        for step in range(n - 2 * f):
            m = idx.shape[1]
            sub = d2[kk[:, :, None], idx[:, :, None], idx[:, None, :]]  # [k, m, m]
            nb = m - f - 2
            if nb <= 0:
                scores = np.zeros((k, m))
            else:
                dd = sub.copy()
                dd[:, np.arange(m), np.arange(m)] = np.inf
                with np.errstate(invalid="ignore"):
                    scores = np.partition(dd, nb - 1, axis=2)[:, :, :nb].sum(axis=2)
                scores = np.nan_to_num(scores, nan=np.inf)
            spread = np.where(np.isinf(sub), 1e300, sub).sum(axis=2)
            j = np.lexsort((idx, spread, scores), axis=1)[:, 0]
            sel[:, step] = idx[np.arange(k), j]
            keep = np.ones((k, m), dtype=bool)
            keep[np.arange(k), j] = False
            idx = idx[keep].reshape(k, m - 1)
        return sel

    # Batched queries (Pipeline.query_batch): the k problems' distances computed
    # together (one Gram product for those needing no centering), the n x n part per k.
    batch = kernels.batch_by_pairwise
    batch_weights = True

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("bulyan", n, n >= 4 * f + 3, f"n >= 4f + 3 (f={f})")
        sel = self.select((kernels.pairwise(x) if pw is None else pw).d2)
        rows = np.asarray(sel)
        self.last_weights = kernels.one_hot(n, sel, x)
        return kernels.columnwise(lambda xc: self._coordinates(kernels.take_rows(xc, rows)),
                               x).to(x.dtype)

    def _coordinates(self, xc: kernels.Array) -> kernels.Array:
        """The coordinate phase on the selected rows ``xc [theta, c]``."""
        s = kernels.sort0(xc)
        return kernels.mean_around(s, kernels.median_sorted(s), xc.shape[0] - 2 * self.f)

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same iterated-Krum selection on each
        candidate's distances from the family's small Gram matrix; the coordinate
        phase on the selected rows of all candidates in one call."""
        n, f = fam.n, self.f
        kernels.check_rows("bulyan", n, n >= 4 * f + 3, f"n >= 4f + 3 (f={f})")
        sel = self.select_batch(np.stack([pw.d2 for pw in fam.pairwise()]))  # [k, theta]
        kk = np.arange(fam.k)[:, None]
        r = fam.coef.shape[2]
        xs = fam.rows(fam.coef[kk, sel].reshape(-1, r), fam.touch[kk, sel].reshape(-1, r))
        return kernels.columnwise_batch(self._coordinates, xs.reshape(*sel.shape, -1)).to(
            fam.dtype)
