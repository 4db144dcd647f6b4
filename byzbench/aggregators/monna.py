"""MoNNA's nearest-neighbour averaging (Farhadkhani et al., ICML 2023)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule, SideInputs

PIVOTS = ("previous", "honest")


class MoNNA(Rule):
    r"""Nearest-neighbour averaging around a pivot: the mean of the ``n - f`` rows
    closest to the pivot :math:`p` (a pivot row itself included, at distance 0):

    .. math:: u = \frac{1}{n - f} \sum_{i \in N(p)} x_i.

    In the paper every honest worker averages the ``n - f`` neighbours of its *own*
    momentum, a vector it trusts. A server has none, so the pivot is one of:

    * ``previous`` (default): the server's previous output (zero before the first
      call): the parameter-server analogue of the paper's own-node pivot, a trusted
      vector, no oracle knowledge. Default because it is the only option that is both
      trusted and available to a real server.
    * ``honest``: the row the run names as honest (``honest_row``, set by the training
      loop after its row permutation; oracle knowledge a real server lacks). For
      parity with ByzFL, whose benchmark stacks honest rows first so its index 0 is
      always honest. Needs row identities: refused after a pre-aggregator that changes
      the row count (bucketing). Row 0 until the run names a row (an attacker's query
      in round 0 runs before the permutation is drawn; later queries see the previous
      round's index).
    * an int: that row index (ByzFL's definition taken literally; after byzbench's
      seeded row permutation it is a uniformly random worker, Byzantine in f/n of the
      rounds).

    Distances to the pivot are computed directly (``kernels.sqdist_to``): exact for
    rows close to each other relative to their norm. Ties go to the lower row index.
    Non-finite rows are infinitely far and never averaged while at most f rows are
    non-finite; a non-finite pivot row is replaced by the first finite row. Not
    permutation invariant with a row pivot.

    Args:
        n: rows it will receive (injected). Needs ``f < n``.
        f: declared Byzantine count (injected).
        pivot: ``previous`` | ``honest`` | a row index in ``[0, n)``.

    ``last_weights [n]`` is ``1/(n - f)`` on the averaged rows.

    Reference: S. Farhadkhani, R. Guerraoui, N. Gupta, L. N. Hoang, R. Pinot,
    J. Stephan, "Robust Collaborative Learning with Linear Gradient Overhead",
    ICML 2023.
    """

    state_keys = ("previous",)


    def __init__(self, n: int, f: int, pivot: int | str = "previous"):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(f < n, "agg.f", f, f"monna needs f < n (n={n})")
        ok = pivot in PIVOTS or (isinstance(pivot, int) and not isinstance(pivot, bool)
                                 and 0 <= pivot < n)
        require(ok, "agg.pivot", pivot, f"'previous', 'honest' or an int in [0, n) (n={n})")
        self.n, self.f, self.pivot = n, f, pivot
        self.previous: Tensor | None = None
        self.honest_row: int | None = None
        # The oracle pivot is a side input the round fills (knowledge a real server lacks).
        self.needs = frozenset({"honest_row"}) if pivot == "honest" else frozenset()
        self.last_weights: Tensor | None = None

    def observe(self, side: SideInputs) -> None:
        """The honest row the run names (``pivot: honest`` only)."""
        self.honest_row = side.honest_row

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        f = self.f
        kernels.check_rows("monna", n, f < n, f"f < n (f={f})")
        if self.pivot == "previous":
            v = self.previous
            if v is None or v.shape != (d,):
                v = torch.zeros(d, dtype=x.dtype, device=x.device)
            dist, bad = kernels.sqdist_to(x, v)
        else:
            if self.pivot == "honest":
                # Row 0 until the run names one (e.g. an attacker's Pipeline.query in
                # round 0, which runs before the loop's permutation is drawn).
                i = 0 if self.honest_row is None else int(self.honest_row)
            else:
                i = int(self.pivot)
            dist, bad = kernels.sqdist_to(x, x[i])
            if bad[i]:  # a non-finite pivot row: take the first finite row instead
                _, row_bad = kernels.sqdist_to(x)
                if (~row_bad).any():
                    i = int(np.flatnonzero(~row_bad)[0])
                    dist, bad = kernels.sqdist_to(x, x[i])
            dist[i] = 0.0
        idx = kernels.stable_smallest(dist, n - f)
        w = np.zeros(n)
        w[idx] = 1.0 / len(idx)
        out = kernels.combine(x, w, bad)
        if self.pivot == "previous":
            self.previous = out.detach().clone()
        self.last_weights = kernels.one_hot(n, idx, x)
        return out
