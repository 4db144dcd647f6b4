"""Weak differential privacy: norm bounding plus Gaussian noise (Sun et al., 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import kernels
from byzbench.aggregators.norm_bound import NormBound


class WeakDP(NormBound):
    r"""Norm bounding (:class:`~byzbench.aggregators.norm_bound.NormBound`) followed by
    Gaussian noise on the aggregate, :math:`u + \mathcal N(0, \sigma_t^2 I)`, drawn from
    the stage's seeded generator. :math:`\sigma_t` = ``sigma`` times the round's bound M
    (``unit: bound``, scale-free, the default) or ``sigma`` itself (``unit: absolute``,
    the paper's and BackFed's: clipping_norm 5, std_dev 0.025).

    Args:
        n, f: injected (unused).
        bound: M > 0, or median.
        sigma: noise level >= 0.
        unit: bound | absolute.
        generator: injected seeded generator (noise).

    Reference: Z. Sun, P. Kairouz, A. T. Suresh, H. B. McMahan, "Can You Really Backdoor
    Federated Learning?", 2019 (arXiv:1911.07963), weak differential privacy. Variant:
    FLPoison (``NormClipping`` with ``weakDP``) adds the noise to each client's clipped
    update instead, i.e. std ``sigma / sqrt(n)`` on the aggregate.
    """

    generator_keys = ("generator",)


    def __init__(self, n: int = 0, f: int = 0, bound: float | str = "median",
                 sigma: float = 0.01, unit: str = "bound",
                 generator: torch.Generator | None = None):
        super().__init__(n, f, bound)
        kernels.norms.check_noise(sigma, unit)
        self.sigma, self.unit = float(sigma), unit
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        u = self.clipped_mean(x)
        std = self.sigma * (self.last_bound or 0.0) if self.unit == "bound" else self.sigma
        return u + kernels.norms.gaussian(x.shape[1], std, self.generator, u) if std > 0 else u
