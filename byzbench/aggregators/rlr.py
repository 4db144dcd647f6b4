"""RLR, the robust learning rate (Ozdayi et al., AAAI 2021)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

BELOW = ("flip", "zero")


class RLR(Rule):
    r"""The mean of the finite rows G with a per-coordinate learning-rate sign: where
    fewer than :math:`\theta` rows agree on the sign the coordinate's step is reversed,

    .. math:: u_j = \eta_j \frac{1}{|G|} \sum_{i \in G} x_{ij}, \quad
        \eta_j = \begin{cases} +1 & |\sum_{i \in G} \mathrm{sign}(x_{ij})| \ge \theta \\
        -1 & \text{otherwise} \end{cases}

    (``below: flip``, the paper's :math:`-\eta`; ``below: zero`` sets those coordinates
    to 0 instead). The magnitude is the mean's: RLR is not robust to a large row.

    Args:
        n: injected.
        f: injected declared Byzantine count.
        threshold: theta, an integer >= 0, or null = f + 1 (more than the f Byzantine
            rows can agree on alone; BackFed's default is 4).
        below: flip | zero.

    ``last_weights [n]`` is ``1/|G|`` on the finite rows (the sign is per coordinate);
    ``last_stats["rlr_flipped"]`` the fraction of coordinates below the threshold.

    Reference: M. S. Ozdayi, M. Kantarcioglu, Y. R. Gel, "Defending against Backdoors in
    Federated Learning with Robust Learning Rate", AAAI 2021.
    """

    def __init__(self, n: int = 0, f: int = 0, threshold: int | None = None,
                 below: str = "flip"):
        require(threshold is None or (isinstance(threshold, int) and threshold >= 0),
                "agg.threshold", threshold, "an integer >= 0 or null (f + 1)")
        require(below in BELOW, "agg.below", below, f"one of {BELOW}")
        self.n, self.f, self.below = n, f, below
        self.threshold = f + 1 if threshold is None else int(threshold)
        self.last_weights: Tensor | None = None
        self.last_stats: dict[str, float] = {}

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        _, bad = kernels.norms.row_norms(x)
        if bad.all():
            self.last_weights = None
            return x.mean(0)
        w = kernels.norms.finite_mean_weights(bad)
        self.last_weights = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        good = x if not bad.any() else x[torch.as_tensor(np.flatnonzero(~bad), device=x.device)]
        agree = torch.sign(good).sum(0).abs() >= self.threshold
        low = -1.0 if self.below == "flip" else 0.0
        self.last_stats = {"rlr_flipped": float((~agree).double().mean())}
        return kernels.combine(x, w, bad) * torch.where(agree, 1.0, low).to(x.dtype)
