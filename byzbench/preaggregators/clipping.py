"""Static norm clipping."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import PreAggregator


class Clipping(PreAggregator):
    r"""Static clipping: every row is scaled to norm at most ``threshold``:

    .. math:: y_i = x_i \min\Big(1, \frac{C}{\|x_i\|}\Big).

    Row-preserving. Non-finite rows stay non-finite (clipping cannot give them a
    direction); the rule downstream discards them.

    Args:
        n: rows it will receive (injected); ``n_out = n``.
        f: declared Byzantine count (injected; unused).
        threshold: C, > 0. Scale-dependent: choose it for your model's gradient norms.

    ``last_mixing`` is None (row i out comes from row i in). The output buffer is
    reused across calls (valid until the next call; see ``kernels.reusable``).

    Reference: the static pre-aggregation clipping studied by Allouah et al.,
    "Adaptive Gradient Clipping for Robust Federated Learning" (ICLR 2025,
    arXiv:2405.14432), as the baseline ARC improves on.
    """

    def __init__(self, n: int = 0, f: int = 0, threshold: float = 1.0):
        require(threshold > 0, "preagg.clipping.threshold", threshold, "threshold > 0")
        self.n, self.f, self.threshold = n, f, threshold
        self.n_out = n
        self.last_mixing: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [n, d]``."""
        norms = torch.linalg.vector_norm(x, dim=1)
        scale = torch.clamp(self.threshold / norms, max=1.0)
        return torch.mul(x, scale.unsqueeze(1), out=kernels.reusable(self, tuple(x.shape), x))

    batch_mixing = True  # row-preserving

    def line(self, fam: Any) -> Any:
        """Line path (``aggregators.line``): row norms from the family's Gram matrix
        (quadratics in the scale), the rows scaled."""
        with np.errstate(divide="ignore"):
            return fam.scale_rows(np.minimum(self.threshold / np.sqrt(fam.sq_norms()), 1.0))

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, n, d]`` (a new tensor)."""
        norms = torch.linalg.vector_norm(xs, dim=-1, keepdim=True)
        return xs * torch.clamp(self.threshold / norms, max=1.0)
