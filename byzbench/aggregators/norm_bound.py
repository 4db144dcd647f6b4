"""Norm bounding (Sun et al., 2019): clip every update, then average."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import kernels
from byzbench.stages import Rule


class NormBound(Rule):
    r"""Every row is scaled to norm at most M, then the rows are averaged:

    .. math:: u = \frac{1}{|G|} \sum_{i \in G} x_i \min\Big(1, \frac{M}{\|x_i\|}\Big),

    G the finite rows (a row with a non-finite entry has no direction and is dropped).
    M is fixed (``bound: <number>``, the paper's norm threshold, scale-dependent) or
    median-adaptive (``bound: median``, the default: the median norm of the finite
    rows, scale-free, as FLAME's clipping step).

    Args:
        n, f: injected (unused by the rule).
        bound: M > 0, or median.

    ``last_weights [n]`` is ``min(1, M/||x_i||)/|G|`` on the finite rows.

    Reference: Z. Sun, P. Kairouz, A. T. Suresh, H. B. McMahan, "Can You Really Backdoor
    Federated Learning?", 2019 (arXiv:1911.07963), norm bounding; FLPoison's
    ``NormClipping`` (norm_threshold 3) and BackFed's ``NormClippingServer``
    (clipping_norm 5) use a fixed bound.
    """

    def __init__(self, n: int = 0, f: int = 0, bound: float | str = "median"):
        kernels.norms.check_bound(bound)
        self.n, self.f, self.bound = n, f, bound
        self.last_weights: Tensor | None = None
        self.last_bound: float | None = None

    def clipped_mean(self, x: Tensor) -> Tensor:
        """The clipped mean (sets ``last_weights`` and ``last_bound``)."""
        norms, bad = kernels.norms.row_norms(x)
        if bad.all():
            self.last_weights = None
            return x.mean(0)
        m = kernels.norms.resolve_bound(self.bound, norms, bad)
        w = kernels.norms.finite_mean_weights(bad) * kernels.norms.clip_scale(norms, m)
        self.last_weights = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        self.last_bound = m
        return kernels.combine(x, w, bad)

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        return self.clipped_mean(x)
