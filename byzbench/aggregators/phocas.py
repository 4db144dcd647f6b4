"""Phocas (Xie, Koyejo, Gupta, 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class Phocas(Rule):
    r"""Phocas: per coordinate, the average of the ``n - f`` values closest to the
    coordinate-wise trimmed mean (``f`` trimmed on each side):

    .. math:: u_k = \frac{1}{n - f} \sum_{i \in N_k} x_{ik}, \qquad
        N_k = \text{the } n - f \text{ indices with smallest }
        |x_{ik} - \mathrm{TrMean}_f(x_{\cdot k})|.

    One sort per coordinate gives both the trimmed mean and the nearest window (see
    ``kernels.mean_around``). Non-finite entries are trimmed / farthest. ``f = 0`` is the
    mean.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected), also the trimming parameter b of the
            paper. Needs 2f < n.

    Reference: C. Xie, O. Koyejo, I. Gupta, "Phocas: dimensional Byzantine-resilient
    stochastic gradient descent", arXiv:1805.09682, 2018.
    """

    def __init__(self, n: int, f: int):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(2 * f < n, "agg.f", f, f"phocas needs 2f < n (n={n})")
        self.n, self.f = n, f

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        return kernels.columnwise(self._block(x.shape[0]), x).to(x.dtype)

    def _block(self, n: int):
        f = self.f
        kernels.check_rows("phocas", n, 2 * f < n, f"2f < n (f={f})")

        def block(xc: kernels.Array) -> kernels.Array:
            s = kernels.sort0(xc)
            return kernels.mean_around(s, s[f: n - f].mean(0), n - f)

        return block

    batch_weights = True  # coordinate-wise: never any row weights

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same window mean on the merged sorted
        columns, read from order statistics (no sort; bit-identical)."""
        n, f = fam.n, self.f
        self._block(n)
        return line.window_mean(fam, f, lambda s: s[f: n - f].mean(0), self.batch)

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, d]``: the k problems as the ``k * d`` columns of one
        call (columns are independent)."""
        return kernels.columnwise_batch(self._block(xs.shape[1]), xs).to(xs.dtype)
