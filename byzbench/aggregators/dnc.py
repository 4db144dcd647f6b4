"""Divide-and-conquer (DnC; Shejwalkar & Houmansadr, NDSS 2021)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule


class DnC(Rule):
    r"""Divide-and-conquer: repeatedly score rows by their squared projection on the
    top singular direction of the centered, coordinate-subsampled inputs, keep the
    ``n - c f`` lowest-scoring rows, intersect the kept sets and average them.

    For each of ``niters`` iterations: draw ``b`` coordinates r uniformly without
    replacement (the run's seeded generator), :math:`\bar x = \mathrm{mean}_i x_{i,r}`,
    :math:`v` the top right singular vector of :math:`(x_{i,r} - \bar x)_i`,
    :math:`s_i = ((x_{i,r} - \bar x)^\top v)^2`, and
    :math:`\mathcal{G} \leftarrow \mathcal{G} \cap \{n - \lfloor c f \rfloor
    \text{ lowest } s_i\}`. Output :math:`\frac{1}{|\mathcal{G}|}\sum_{i\in\mathcal G} x_i`.

    The scores come from the ``n x n`` centered Gram matrix K of the subsample:
    :math:`s_i = \lambda u_i^2` for its top eigenpair :math:`(\lambda, u)` (identical to
    the SVD route). Ties keep the lower row index. If the intersection is empty (the
    paper does not say what to do) the first iteration's set is used
    (``on_empty: first``), or the union of the iterations' sets (``on_empty: union``,
    FL-Byzantine-Library's choice). Rows non-finite
    on the sampled coordinates score ``+inf`` (removed first); a selected row that is
    non-finite elsewhere is dropped from the average afterwards. The subsample is drawn
    from the generator's stream so results are reproducible given the seed. With
    ``b >= d`` all coordinates are used and no randomness is consumed.

    Args:
        n: rows it will receive (injected). Needs ``n > c f``.
        f: declared Byzantine count (injected).
        niters: iterations, >= 1.
        c: filtering fraction: ``floor(c f)`` rows removed per iteration, > 0.
        b: subsampled dimension, >= 1.
        on_empty: ``first`` | ``union``, when the intersection is empty.
        generator: seeded torch.Generator (injected); ``None`` uses a private one
            seeded 0.

    ``last_weights [n]`` is ``1/|G|`` on the averaged rows.

    Reference: V. Shejwalkar, A. Houmansadr, "Manipulating the Byzantine: Optimizing
    Model Poisoning Attacks and Defenses for Federated Learning", NDSS 2021
    (Algorithm 2). Defaults b = 10000, niters = 5, c = 1.
    """

    generator_keys = ("generator",)


    def __init__(self, n: int, f: int, niters: int = 5, c: float = 1.0, b: int = 10000,
                 on_empty: str = "first", generator: torch.Generator | None = None):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(niters >= 1, "agg.niters", niters, "niters >= 1")
        require(c > 0, "agg.c", c, "c > 0")
        require(b >= 1, "agg.b", b, "b >= 1")
        require(on_empty in ("first", "union"), "agg.on_empty", on_empty, "first or union")
        self.on_empty = on_empty
        require(n > int(c * f), "agg.f", f, f"dnc needs n > floor(c f) (n={n}, c={c})")
        self.n, self.f, self.niters, self.c, self.b = n, f, niters, c, b
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator
        self.last_weights: Tensor | None = None

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        remove = int(self.c * self.f)
        kernels.check_rows("dnc", n, n > remove, f"n > floor(c f) = {remove}")
        good_set = np.ones(n, dtype=bool)
        union = np.zeros(n, dtype=bool)
        first = None
        # With b >= d every iteration sees the same coordinates: one is enough.
        for _ in range(self.niters if self.b < d else 1):  # n x n work on a subsample
            # Rows non-finite on the sample score +inf; rows non-finite elsewhere are
            # caught after the average (one pass over x is saved when there are none).
            # The [n, b] sample is small: numpy float64, no torch thread hand-offs.
            if self.b >= d:
                a = kernels.to_np(x)
            else:
                cols = kernels.sample_columns(d, self.b, self.generator, x.device)
                a = kernels.gather_cols(x, cols)
            bad_s = ~np.isfinite(a.sum(axis=1))
            scores = np.full(n, np.inf)
            if not bad_s.all():
                y = a[~bad_s]
                y = y - y.mean(axis=0)
                evals, evecs = np.linalg.eigh(y @ y.T)
                scores[~bad_s] = max(float(evals[-1]), 0.0) * evecs[:, -1] ** 2
            kept = np.zeros(n, dtype=bool)
            kept[kernels.stable_smallest(scores, n - remove)] = True
            kept &= ~bad_s
            first = kept if first is None else first
            good_set &= kept
            union |= kept
        if not good_set.any():
            good_set = first if self.on_empty == "first" else union
        out = self._average(x, good_set, None)
        if not kernels.all_finite(out):  # a selected row is non-finite off the sample
            bad = ~np.isfinite(kernels.to_np(x.sum(dim=1)))
            good_set = good_set & ~bad
            out = self._average(x, good_set, bad)
        return out

    def _average(self, x: Tensor, rows: np.ndarray, bad: np.ndarray | None) -> Tensor:
        n = x.shape[0]
        idx = np.flatnonzero(rows)
        w = np.zeros(n)
        w[idx] = 1.0 / max(1, len(idx))
        self.last_weights = kernels.one_hot(n, idx, x)
        return kernels.combine(x, w, bad)
