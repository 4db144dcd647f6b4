"""Smallest maximum eigenvalue averaging, SMEA (Allouah et al., NeurIPS 2023)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

EIGEN = ("exact", "power1")


class SMEA(Rule):
    r"""SMEA: the mean of the ``n - f`` rows whose empirical covariance has the
    smallest largest eigenvalue:

    .. math:: S^\star \in \arg\min_{|S| = n - f} \lambda_{\max}\Big(\frac{1}{|S|}
        \sum_{i \in S} (x_i - \bar x_S)(x_i - \bar x_S)^\top\Big), \qquad
        u = \bar x_{S^\star}.

    Exact: every one of the :math:`\binom{n}{f}` subsets is scored. The ``d x d``
    covariance of S and the ``|S| x |S|`` centered Gram matrix
    :math:`J G_S J / |S|` have the same nonzero eigenvalues, so each subset costs one
    small symmetric eigenvalue problem (``numpy.linalg.eigvalsh``, batched over
    subsets); only the Gram matrix touches the ``[n, d]`` data, computed after
    subtracting the rows' mean (exact by translation invariance, and free of the
    cancellation of a raw Gram matrix). Ties between subsets go to the first one in
    lexicographic order of kept row indices.

    ``eigen: exact`` (default, the paper's definition) scores every subset by its exact
    top eigenvalue. ``eigen: power1`` (ByzFL 0.0.11's ``SMEA``, the estimate its
    published results use) scores it by one power iteration from a random unit start
    :math:`v_0`: :math:`\|\Sigma_S v_0\|`, computed as
    :math:`\sqrt{q^\top J G_S J q} / |S|` with :math:`q = J (x_i \cdot v_0)_{i \in S}`.
    ByzFL draws an unseeded start per subset; here one start per call, from the run's
    seeded ``generator``, is shared by all subsets (each subset's score has ByzFL's
    distribution; the queries of one round share the draw).

    Never hangs: the constructor refuses ``binom(n, f) > max_subsets`` (default
    200000, e.g. n = 20, f <= 5 or n = 30, f <= 4), naming the limit. Subsets that
    contain a non-finite row score ``+inf`` (if more than ``f`` rows are non-finite,
    the subset with the fewest of them wins and their entries are skipped).

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected). Needs ``0 <= f < n/2``.
        max_subsets: the never-hang limit on ``binom(n, f)``.
        eigen: ``exact | power1``.
        generator: seeded torch.Generator (injected; ``power1`` only, ``None`` uses a
            private one seeded 0).

    ``last_weights [n]`` is ``1/(n - f)`` on the selected rows.

    Reference: Y. Allouah, R. Guerraoui, N. Gupta, R. Pinot, G. Rizk, "Robust
    Distributed Learning: Tight Error Bounds and Breakdown Point under Data
    Heterogeneity", NeurIPS 2023 (SMEA); ByzFL's ``SMEA`` enumerates the same subsets
    and takes the top eigenvalue of the d x d covariance (same minimizer).
    """

    generator_keys = ("generator",)  # power1 only (None for exact)


    _CHUNK = 4096  # subsets per batched eigenvalue call (bounds memory to ~chunk m^2)

    def __init__(self, n: int, f: int, max_subsets: int = 200_000, eigen: str = "exact",
                 generator: torch.Generator | None = None):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(eigen in EIGEN, "agg.eigen", eigen, f"one of {', '.join(EIGEN)}")
        require(2 * f < n, "agg.f", f, f"smea needs 2f < n (n={n})")
        require(max_subsets >= 1, "agg.max_subsets", max_subsets, "max_subsets >= 1")
        count = math.comb(n, f)
        require(count <= max_subsets, "agg.f", f,
                f"smea's exact search scores binom(n={n}, f={f}) = {count} subsets, over the "
                f"limit agg.max_subsets={max_subsets} (lower f or raise max_subsets)")
        self.n, self.f, self.max_subsets, self.eigen = n, f, max_subsets, eigen
        if eigen == "power1" and generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator if eigen == "power1" else None
        self.last_weights: Tensor | None = None
        self.last_score: float | None = None
        self.last_exact = 0  # subsets that needed an exact eigenvalue call
        self._rank = 1

    @staticmethod
    def subsets(n: int, m: int) -> np.ndarray:
        """All ``m``-subsets of ``range(n)``, lexicographic, as ``[binom(n, m), m]``."""
        return np.array(list(itertools.combinations(range(n), m)), dtype=np.int64).reshape(-1, m)

    def scores(self, g: np.ndarray, bad: np.ndarray,
               kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""``(score, n_bad)``: per subset (rows of ``kept``) of a (centered) Gram matrix
        ``g``, the largest covariance eigenvalue where it can matter and a lower bound
        elsewhere (``+inf`` for subsets with a bad row), and the number of bad rows.
        The minimum of ``score`` is exact and attained at the exact minimizer.

        Exact minimizer without an eigenvalue problem per subset: with
        :math:`C = J G_S J / m` (rank r <= min(m - 1, d)) and :math:`t = \mathrm{tr}(C)`,
        :math:`\lambda_{\max} \ge t\,(\mathrm{tr}((C/t)^{32}) / r)^{1/32}`, within a
        factor :math:`r^{1/32}` (about 1.1) of it, tight when the spectrum
        is flat). Exact ``eigvalsh`` values are computed in increasing order of the lower
        bound until the next lower bound exceeds the best exact value: no remaining
        subset can be smaller. Five batched squarings of ``m x m`` matrices replace
        most eigenvalue calls.

        Ties: a subset whose exact value equals the minimum but was never computed
        exactly cannot exist unless its lower bound equals the minimum, in which case it
        is computed (the loop continues while ``lo <= best``)."""
        m = kept.shape[1]
        lo = np.empty(len(kept))
        blocks = []
        rank = max(1, min(m - 1, self._rank))
        for a in range(0, len(kept), self._CHUNK):
            idx = kept[a:a + self._CHUNK]
            gs = g[idx[:, :, None], idx[:, None, :]]  # [k, m, m]
            r = gs.mean(axis=2, keepdims=True)
            c = (gs - r - np.swapaxes(r, 1, 2) + r.mean(axis=1, keepdims=True)) / m
            tr = np.maximum(np.trace(c, axis1=1, axis2=2), 0.0)
            p = c / np.where(tr > 0, tr, 1.0)[:, None, None]
            for _ in range(5):
                p = p @ p
            t32 = np.maximum(np.trace(p, axis1=1, axis2=2), 0.0)
            lo[a:a + self._CHUNK] = tr * (t32 / rank) ** (1 / 32)
            blocks.append(c)
        nbad = bad[kept].sum(axis=1)
        lo = np.where(nbad > 0, np.inf, lo)
        out = lo.copy()
        order = np.argsort(lo, kind="stable")
        best, done, step = np.inf, 0, 64
        c_all = blocks[0] if len(blocks) == 1 else None
        # Exact values in increasing order of the lower bound, until the next lower
        # bound exceeds the best exact value (1e-9 relative slack for the rounding of
        # the bound itself): no later subset can win.
        while done < len(order) and np.isfinite(lo[order[done]]) and \
                lo[order[done]] <= best * (1 + 1e-9) + 1e-300:
            ci = order[done:done + step]
            ci = ci[np.isfinite(lo[ci])]  # never score a subset holding a bad row
            mats = c_all[ci] if c_all is not None else np.stack(
                [blocks[i // self._CHUNK][i % self._CHUNK] for i in ci])
            out[ci] = np.linalg.eigvalsh(mats)[:, -1]
            best = min(best, float(out[ci].min()))
            done += len(ci)
            step = min(4 * step, self._CHUNK)
        self.last_exact = done
        out[nbad > 0] = np.inf
        return out, nbad

    def power1_scores(self, g: np.ndarray, bad: np.ndarray, kept: np.ndarray,
                      start: np.ndarray) -> np.ndarray:
        """Per subset (rows of ``kept``): ``||Sigma_S v0||`` from the Gram matrix ``g``
        and the rows' projections ``start [n]`` on the unit start v0; ``+inf`` for a
        subset with a bad row."""
        m = kept.shape[1]
        out = np.empty(len(kept))
        for a in range(0, len(kept), self._CHUNK):
            idx = kept[a:a + self._CHUNK]
            gs = g[idx[:, :, None], idx[:, None, :]]  # [k, m, m]
            r = gs.mean(axis=2, keepdims=True)
            c = gs - r - np.swapaxes(r, 1, 2) + r.mean(axis=1, keepdims=True)  # J G_S J
            q = start[idx]
            q = q - q.mean(axis=1, keepdims=True)
            out[a:a + self._CHUNK] = np.sqrt(np.maximum(
                np.einsum("ki,kij,kj->k", q, c, q), 0.0)) / m
        return np.where(bad[kept].any(axis=1), np.inf, out)

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("smea", n, 2 * f < n and math.comb(n, f) <= self.max_subsets,
                        f"2f < n and binom(n, f) <= {self.max_subsets} (f={f})")
        g, bad = kernels.similarity.centered_gram(x)
        self._rank = x.shape[1]
        kept = self.subsets(n, n - f)
        if self.generator is None:
            score, nbad = self.scores(g, bad, kept)
        else:
            start = kernels.random_projections(x, bad, 1, self.generator)[:, 0]
            score, nbad = self.power1_scores(g, bad, kept, start), bad[kept].sum(axis=1)
        if np.isfinite(score).any():
            best = int(np.argmin(score))
        else:  # more than f bad rows: fewest bad rows, first in order
            best = int(np.argmin(nbad))
        self.last_score = float(score[best])
        idx = kept[best]
        w = np.zeros(n)
        w[idx] = 1.0 / len(idx)
        self.last_weights = kernels.one_hot(n, idx, x)
        return kernels.combine(x, w, bad)
