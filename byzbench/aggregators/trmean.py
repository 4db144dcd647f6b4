"""Coordinate-wise trimmed mean (Yin et al., ICML 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class TrMean(Rule):
    r"""Coordinate-wise trimmed mean: per coordinate, drop the ``b`` largest and ``b``
    smallest values and average the remaining ``n - 2b``:

    .. math:: u_k = \frac{1}{n - 2b} \sum_{i=b+1}^{n-b} x_{(i)k},

    with :math:`x_{(1)k} \le \dots \le x_{(n)k}` and ``b = f`` (Yin et al. trim a
    fraction beta >= f/n; byzbench trims exactly the declared f). Non-finite entries
    sort as extremes (nan after ``+inf``), so up to ``f`` non-finite rows are trimmed.
    ``f = 0`` is the mean.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected): values trimmed per side. Needs 2f < n.

    Reference: D. Yin, Y. Chen, K. Ramchandran, P. Bartlett, "Byzantine-Robust
    Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
    """

    def __init__(self, n: int, f: int):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(2 * f < n, "agg.f", f, f"trmean needs 2f < n (n={n})")
        self.n, self.f = n, f

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        return kernels.columnwise(self._block(x.shape[0]), x).to(x.dtype)

    def _block(self, n: int):
        f = self.f
        kernels.check_rows("trmean", n, 2 * f < n, f"2f < n (f={f})")
        # A selection (order statistics f .. n-f-1), not a full sort: kernels.order_mean.
        return lambda xc: kernels.order_mean(xc, f, n - f)

    batch_weights = True  # coordinate-wise: never any row weights

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): order statistics f .. n-f-1 of the merged
        columns summed in order (as ``kernels.order_mean``), without a sort."""
        self._block(fam.n)
        f = self.f

        def reduce(stat, n):
            acc = stat(f).copy()
            for m in range(f + 1, n - f):
                acc += stat(m)
            return acc / acc.dtype.type(n - 2 * f)

        return line.coordinatewise(fam, reduce, self.batch)

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, d]``: the k problems as the ``k * d`` columns of one
        call (columns are independent)."""
        return kernels.columnwise_batch(self._block(xs.shape[1]), xs).to(xs.dtype)
