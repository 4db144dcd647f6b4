"""Coordinate-wise median (Yin et al., ICML 2018)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from byzbench import kernels, require
from byzbench.aggregators import line
from byzbench.stages import Rule


class Median(Rule):
    r"""Coordinate-wise median: :math:`u_k = \mathrm{median}(x_{1k}, \dots, x_{nk})`.

    For even ``n`` the median is the mean of the two middle values (the usual
    definition, used by Yin et al.); ``torch.median`` would return the lower one.
    Non-finite entries sort as extremes (nan after ``+inf``), so up to
    ``ceil(n/2) - 1`` non-finite rows leave the output finite.

    Kernel: numpy partition along the worker axis on CPU (chunked over columns on a
    thread pool), torch sort on other devices.

    Args:
        n: rows it will receive (injected; needs ``n >= 1``).
        f: declared Byzantine count (injected; the rule tolerates ``f < n/2`` without
            being told f).

    Reference: D. Yin, Y. Chen, K. Ramchandran, P. Bartlett, "Byzantine-Robust
    Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
    """

    def __init__(self, n: int = 1, f: int = 0):
        require(n >= 1, "agg.n", n, "median needs n >= 1")
        require(f >= 0, "agg.f", f, "f >= 0")
        self.n, self.f = n, f

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        return kernels.columnwise(self._block(x.shape[0]), x).to(x.dtype)

    def _block(self, n: int):
        kernels.check_rows("median", n, n >= 1, "n >= 1")
        return kernels.median_block

    batch_weights = True  # coordinate-wise: never any row weights

    def line(self, fam: Any) -> Tensor:
        """Line path (``aggregators.line``): the middle order statistics of the merged
        columns, without a sort (bit-identical)."""
        self._block(fam.n)
        h = fam.n // 2

        def reduce(stat, n):
            return stat(h) if n % 2 else (stat(h - 1) + stat(h)) * stat(h).dtype.type(0.5)

        return line.coordinatewise(fam, reduce, self.batch)

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, d]``: the k problems as the ``k * d`` columns of one
        call (columns are independent)."""
        return kernels.columnwise_batch(self._block(xs.shape[1]), xs).to(xs.dtype)
