"""Comparative gradient elimination, CGE (Gupta, Liu, Vaidya)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

REDUCES = ("mean", "sum")


class CGE(Rule):
    r"""CGE: keep the ``n - f`` rows of smallest Euclidean norm and average them:

    .. math:: u = \frac{1}{n - f} \sum_{k=1}^{n - f} x_{(k)}, \qquad
        \|x_{(1)}\| \le \dots \le \|x_{(n)}\|.

    Norm ties go to the lower row index. Non-finite rows have norm ``+inf`` (as in BM's
    ``byznorm``) and are kept only if more than ``f`` rows are non-finite, in which
    case their entries are skipped in the combination (never ``0 * nan``).

    Variants (``reduce``): ``mean`` (default; ByzantineMomentum ``aggregators/cge.py``,
    and the "average of the n - f smallest" of the issue/PARITY) or ``sum`` (the
    papers' update direction, :math:`\sum_{k \le n - f} x_{(k)}`: the mean times
    ``n - f``, i.e. the same rule with the learning rate multiplied by ``n - f``).

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected). Needs ``0 <= f < n``.
        reduce: ``mean | sum``.

    ``last_weights [n]`` is ``1/(n - f)`` on the kept rows (``mean``; ``1`` for ``sum``
    would not sum to one, so ``sum`` reports the ``mean`` weights too).

    References: N. Gupta, S. Liu, N. H. Vaidya, "Byzantine Fault-Tolerant Distributed
    Machine Learning Using Stochastic Gradient Descent (SGD) and Norm-Based Comparative
    Gradient Elimination (CGE)", DSN-W 2021 (arXiv:1912.09528); S. Liu, N. Gupta,
    N. H. Vaidya, "Approximate Byzantine Fault-Tolerance in Distributed Optimization",
    PODC 2021; code: LPD-EPFL/ByzantineMomentum ``aggregators/cge.py``.
    """

    def __init__(self, n: int = 1, f: int = 0, reduce: str = "mean"):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(f < n, "agg.f", f, f"cge needs f < n (n={n})")
        require(reduce in REDUCES, "agg.reduce", reduce, f"one of {REDUCES}")
        self.n, self.f, self.reduce = n, f, reduce
        self.last_weights: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("cge", n, f < n, f"n > f (f={f})")
        sq, bad = kernels.similarity.row_sq_norms(x)
        order = np.lexsort((np.arange(n), sq, bad))  # finite first, then norm, then index
        idx = np.sort(order[: n - f])
        w = np.zeros(n)
        w[idx] = 1.0 / len(idx)
        self.last_weights = kernels.one_hot(n, idx, x)
        out = kernels.combine(x, w, bad)
        return out * float(n - f) if self.reduce == "sum" else out
