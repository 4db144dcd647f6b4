"""Nearest-neighbour mixing (Allouah et al., AISTATS 2023)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import PreAggregator


def neighbour_mixing(d2: np.ndarray, m: int) -> np.ndarray:
    """``[n, n]`` weights ``1/m`` on each row's ``m`` nearest rows (itself included,
    even a bad row; ties to the lower index), from squared distances ``d2`` (its
    diagonal is set to 0 in place)."""
    n = d2.shape[0]
    np.fill_diagonal(d2, 0.0)  # a row is its own nearest neighbour, even a bad one
    nbr = np.argsort(d2, axis=1, kind="stable")[:, :m]
    mix = np.zeros((n, n))
    np.put_along_axis(mix, nbr, 1.0 / m, axis=1)
    return mix


class NNM(PreAggregator):
    r"""Nearest-neighbour mixing: every row is replaced by the average of its
    ``n - f`` nearest rows (itself included, at distance 0):

    .. math:: y_i = \frac{1}{n - f} \sum_{j \in N_i} x_j, \qquad
        N_i = \text{the } n - f \text{ rows closest to } x_i.

    Distances from one Gram matrix; the output is one ``[n, n] @ [n, d]`` product.
    Ties go to the lower row index. Non-finite rows are infinitely far from every
    row: they are nobody's neighbour (while at least n - f rows are finite) and are
    passed through unchanged (still non-finite) for the rule to discard.

    Args:
        n: rows it will receive (injected); ``n_out = n``. Needs ``f < n``.
        f: declared Byzantine count (injected).

    ``last_mixing [n, n]`` is the mixing matrix (rows sum to 1). The output buffer is
    reused across calls (valid until the next call; see ``kernels.reusable``).

    Reference: Y. Allouah, S. Farhadkhani, R. Guerraoui, N. Gupta, R. Pinot, J. Stephan,
    "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity",
    AISTATS 2023.
    """

    batch_mixing = True

    def __init__(self, n: int, f: int):
        require(f >= 0, "preagg.nnm.f", f, "f >= 0")
        require(f < n, "preagg.nnm.f", f, f"nnm needs f < n (n={n})")
        self.n, self.f = n, f
        self.n_out = n
        self.last_mixing: Tensor | None = None
        self.last_batch_mixing: Tensor | None = None

    @kernels.single_blas
    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, n, d]``: the k problems' distances computed together
        (``kernels.pairwise_batch``), then one batched ``[k, n, n] @ [k, n, d]`` product
        (per-problem calls when a problem has non-finite rows)."""
        n, f = xs.shape[1], self.f
        kernels.check_rows("nnm", n, f < n, f"f < n (f={f})")
        views = list(xs.unbind(0))
        pws = kernels.pairwise_batch(xs)
        if any(pw.bad.any() for pw in pws):
            outs, mixes = [], []
            for x, pw in zip(views, pws):
                outs.append(self(x, pw=pw).clone())
                mixes.append(self.last_mixing)
            self.last_batch_mixing = torch.stack(mixes)
            return torch.stack(outs)
        mixes = [neighbour_mixing(pw.d2, n - f) for pw in pws]
        w = torch.as_tensor(np.stack(mixes), dtype=xs.dtype).to(xs.device)
        self.last_batch_mixing = w
        return torch.bmm(w, xs)

    def line(self, fam: Any) -> Any:
        """Line path (``aggregators.line``): the same neighbours from each candidate's
        distances on the family's small Gram matrix; the output family is the mixing
        of the input one."""
        n, f = fam.n, self.f
        kernels.check_rows("nnm", n, f < n, f"f < n (f={f})")
        mixes = []
        for pw in fam.pairwise():
            mix = neighbour_mixing(pw.d2, n - f)
            bad = pw.bad
            if bad.any():  # as the call: bad rows pass through, nobody mixes them in
                mix[bad] = 0.0
                mix[bad, np.flatnonzero(bad)] = 1.0
                mix[np.ix_(~bad, bad)] = 0.0
            mixes.append(mix)
        return fam.mix(np.stack(mixes))

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [n, d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("nnm", n, f < n, f"f < n (f={f})")
        d2, _, bad, _ = kernels.pairwise(x) if pw is None else pw
        mix = neighbour_mixing(d2, n - f)
        out = kernels.reusable(self, tuple(x.shape), x)
        if bad.any():
            mix[bad] = 0.0
            mix[bad, np.flatnonzero(bad)] = 1.0
            w = mix.copy()
            w[:, bad] = 0.0
            kernels.combine(x, w, bad, out=out)
            rows = torch.as_tensor(np.flatnonzero(bad), device=x.device)
            out[rows] = x[rows]
        else:
            kernels.combine(x, mix, out=out)
        self.last_mixing = torch.as_tensor(mix, dtype=x.dtype).to(x.device)
        return out
