"""Minimum-diameter averaging (El Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule

TIES = ("search", "first")


class MDA(Rule):
    r"""Minimum-diameter averaging: the mean of the ``n - f`` rows whose diameter is
    smallest:

    .. math:: S^\star \in \arg\min_{|S| = n - f} \max_{i, j \in S} \|x_i - x_j\|,
        \qquad u = \frac{1}{n - f} \sum_{i \in S^\star} x_i.

    Exact, by branch and bound over which f rows to remove (instead of enumerating
    all :math:`\binom{n}{f}` subsets): the farthest remaining pair (u, v) must lose u
    or v for the diameter to shrink, so each node branches two ways (at most
    :math:`2^{f+1} - 1` nodes); a node is pruned when it cannot beat the best diameter
    found so far: rows in conflict (distance >= best) with more than k others are
    forced out, and a conflict graph with more than k * max-degree edges has no
    vertex cover of size k.

    Ties between subsets of exactly equal diameter (equal computed squared distances;
    e.g. rows on a line at equal spacing), ``ties``:

    * ``search`` (default): the first minimizer the search reaches. It removes, of the
      farthest remaining pair, first the endpoint with the larger distance sum, and the
      pair's first row (in row order) when the sums are equal too. So on exact ties the
      result depends on row order: rows (1,2,3), (4,5,6), (7,8,9) with f = 1 give the
      mean of the last two, and the same rows reversed the mean of the (new) last two.
    * ``first`` (ByzFL's ``MDA``): the first minimizer in ``itertools.combinations``
      order of kept row indices (lexicographic), as ByzFL's enumeration keeps it: the
      mean of the first two in either order above. Computed without enumeration: the
      minimum diameter from the search, then kept rows chosen greedily in index order,
      each one kept if some completion to ``n - f`` rows within that diameter remains
      (a vertex cover of size <= f of the conflict graph, by the same branching:
      at most n more searches of at most ``2^(f+1) - 1`` nodes each).

    Without exact ties the minimizer is unique and both give it, in any row order.

    Never hangs: the constructor refuses f when the worst case ``2^(f+1) - 1`` exceeds
    ``max_nodes`` (default 65536, i.e. f <= 15), naming the limit. The search works
    on the ``n x n`` distance matrix from one Gram matrix; only the final mean touches
    the ``[n, d]`` data. Non-finite rows are infinitely far from everything and are
    removed first.

    Args:
        n: rows it will receive (injected). Needs ``2f < n``.
        f: declared Byzantine count (injected).
        max_nodes: search-tree node budget per search (the never-hang limit).
        ties: ``search | first`` (exact ties of the diameter, above).

    ``last_weights [n]`` is ``1/(n - f)`` on the selected rows.

    Reference: E. M. El Mhamdi, R. Guerraoui, A. Guirguis, L. N. Hoang, S. Rouault,
    "Genuinely Distributed Byzantine Machine Learning", PODC 2020 (MDA, after Rousseeuw's
    minimum-volume idea). ByzFL enumerates all subsets; byzbench returns the same
    minimum diameter without enumeration.
    """

    def __init__(self, n: int, f: int, max_nodes: int = 65536, ties: str = "search"):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(ties in TIES, "agg.ties", ties, f"one of {', '.join(TIES)}")
        require(2 * f < n, "agg.f", f, f"mda needs 2f < n (n={n})")
        require(max_nodes >= 1, "agg.max_nodes", max_nodes, "max_nodes >= 1")
        worst = 2 ** (f + 1) - 1
        require(worst <= max_nodes, "agg.f", f,
                f"mda's exact search may visit 2^(f+1) - 1 = {worst} nodes, over the limit "
                f"agg.max_nodes={max_nodes} (lower f or raise max_nodes)")
        self.n, self.f, self.max_nodes, self.ties = n, f, max_nodes, ties
        self.last_weights: Tensor | None = None
        self.last_nodes = 0

    def subset(self, d2: np.ndarray) -> np.ndarray:
        """Boolean mask ``[n]`` of a minimum-diameter subset of ``n - f`` rows."""
        n, f = d2.shape[0], self.f
        best = [np.inf, None]
        nodes = [0]

        def visit(alive: np.ndarray, k: int) -> None:
            nodes[0] += 1
            if nodes[0] > self.max_nodes:
                raise RuntimeError(f"mda search exceeded agg.max_nodes={self.max_nodes}")
            idx = np.flatnonzero(alive)
            sub = d2[np.ix_(idx, idx)]
            flat = int(np.argmax(sub))
            iu, iv = divmod(flat, len(idx))
            diam = sub[iu, iv]
            if k == 0:
                if diam < best[0] or best[1] is None:
                    best[0], best[1] = diam, alive.copy()
                return
            if diam >= best[0] and best[1] is not None:
                conflict = sub >= best[0]
                deg = conflict.sum(axis=1)
                forced = deg > k
                nf = int(forced.sum())
                if nf > k:
                    return
                if nf:
                    nxt = alive.copy()
                    nxt[idx[forced]] = False
                    visit(nxt, k - nf)
                    return
                if deg.sum() // 2 > k * deg.max():
                    return
            su, sv = sub[iu].sum(), sub[iv].sum()
            order = (iu, iv) if su >= sv else (iv, iu)
            for r in order:
                nxt = alive.copy()
                nxt[idx[r]] = False
                visit(nxt, k - 1)

        visit(np.ones(n, dtype=bool), f)
        self.last_nodes = nodes[0]
        if self.ties == "first" and f > 0:
            return self.first_within(d2, float(d2[best[1]][:, best[1]].max()))
        return best[1]

    def first_within(self, d2: np.ndarray, diam: float) -> np.ndarray:
        """The lexicographically first ``n - f`` subset (``itertools.combinations``
        order) whose squared diameter is at most ``diam``; one must exist."""
        n, m = d2.shape[0], d2.shape[0] - self.f
        conflict = d2 > diam
        keep = np.zeros(n, dtype=bool)
        free = np.ones(n, dtype=bool)  # rows still allowed: not skipped, no conflict
        for i in range(n):
            need = m - int(keep.sum())
            if need == 0:
                break
            if not free[i]:
                continue
            cand = free.copy()
            cand[: i + 1] = False
            cand &= ~conflict[i]
            # keep i if `need - 1` more rows without conflict exist among cand: an
            # independent set of that size = a vertex cover of size |cand| - (need - 1)
            if _has_cover(conflict, cand, int(cand.sum()) - (need - 1)):
                keep[i] = True
                free &= ~conflict[i]
            free[i] = False
        return keep

    # Batched queries (Pipeline.query_batch): the k problems' distances computed
    # together (one Gram product for those needing no centering), the n x n part per k.
    batch = kernels.batch_by_pairwise

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same selection on each candidate's
        distances from the family's small Gram matrix."""
        kernels.check_rows("mda", fam.n, 2 * self.f < fam.n, f"2f < n (f={self.f})")
        return line.by_weights(fam, self._weights)

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]`` (``pw``: ``kernels.pairwise(x)`` when the caller has it)."""
        n, f = x.shape[0], self.f
        kernels.check_rows("mda", n, 2 * f < n, f"2f < n (f={f})")
        pw = kernels.pairwise(x) if pw is None else pw
        w = self._weights(pw)
        self.last_weights = kernels.one_hot(n, np.flatnonzero(w), x)
        return kernels.combine(x, w, pw.bad)

    def _weights(self, pw: kernels.Pairwise) -> np.ndarray:
        """``1/(n - f)`` on a minimum-diameter subset."""
        # Squared distances order subsets like distances; a huge finite stand-in for inf
        # keeps the distance sums used for branch ordering finite.
        idx = np.flatnonzero(self.subset(np.where(np.isinf(pw.d2), 1e300, pw.d2)))
        w = np.zeros(pw.d2.shape[0])
        w[idx] = 1.0 / len(idx)
        return w


def _has_cover(conflict: np.ndarray, alive: np.ndarray, k: int) -> bool:
    """Whether the conflict graph restricted to ``alive`` rows has a vertex cover of at
    most ``k`` rows: a row with more than k conflicts is in every cover; otherwise branch
    on the row u of highest degree (u in the cover, or all of u's neighbours), at most
    ``2^(k+1) - 1`` calls."""
    if k < 0:
        return False
    idx = np.flatnonzero(alive)
    sub = conflict[np.ix_(idx, idx)]
    deg = sub.sum(axis=1)
    if not deg.any():
        return True
    if k == 0 or deg.sum() // 2 > k * deg.max():
        return False
    forced = deg > k
    if forced.any():
        nxt = alive.copy()
        nxt[idx[forced]] = False
        return _has_cover(conflict, nxt, k - int(forced.sum()))
    u = int(np.argmax(deg))
    without_u = alive.copy()
    without_u[idx[u]] = False
    if _has_cover(conflict, without_u, k - 1):
        return True
    without_nb = alive.copy()
    without_nb[idx[sub[u]]] = False
    return _has_cover(conflict, without_nb, k - int(deg[u]))
