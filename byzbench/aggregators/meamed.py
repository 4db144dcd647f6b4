"""Mean-around-median (Xie, Koyejo, Gupta, 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class MeaMed(Rule):
    r"""Mean around the median: per coordinate, the average of the ``n - f`` values
    closest to the coordinate-wise median:

    .. math:: u_k = \frac{1}{n - f} \sum_{i \in N_k} x_{ik}, \qquad
        N_k = \text{the } n - f \text{ indices with smallest } |x_{ik} - \mathrm{med}_k|.

    Exact and vectorized: the ``n - f`` values nearest to the median are a contiguous
    window of the sorted column (see ``kernels.mean_around``; ties go to the lower
    window). Non-finite entries sort as extremes and are the farthest from the median.
    ``f = 0`` is the mean.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected). Needs 2f < n.

    Reference: C. Xie, O. Koyejo, I. Gupta, "Generalized Byzantine-tolerant SGD",
    arXiv:1802.10116, 2018.
    """

    def __init__(self, n: int, f: int):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(2 * f < n, "agg.f", f, f"meamed needs 2f < n (n={n})")
        self.n, self.f = n, f

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        return kernels.columnwise(self._block(x.shape[0]), x).to(x.dtype)

    def _block(self, n: int):
        f = self.f
        kernels.check_rows("meamed", n, 2 * f < n, f"2f < n (f={f})")

        def block(xc: kernels.Array) -> kernels.Array:
            s = kernels.sort0(xc)
            return kernels.mean_around(s, kernels.median_sorted(s), n - f)

        return block

    batch_weights = True  # coordinate-wise: never any row weights

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the same window mean on the merged sorted
        columns, read from order statistics (no sort; bit-identical)."""
        self._block(fam.n)
        return line.window_mean(fam, self.f, kernels.median_sorted, self.batch)

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, d]``: the k problems as the ``k * d`` columns of one
        call (columns are independent)."""
        return kernels.columnwise_batch(self._block(xs.shape[1]), xs).to(xs.dtype)
