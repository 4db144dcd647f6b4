"""CRFL (Xie et al., ICML 2021): clipping and smoothing noise on the aggregate."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import kernels
from byzbench.stages import Rule


class CRFL(Rule):
    r"""The mean of the finite rows G, clipped to norm at most :math:`\rho`, plus
    Gaussian smoothing noise:

    .. math:: u = \bar x \min\Big(1, \frac{\rho}{\|\bar x\|}\Big) + \mathcal N(0,
        \sigma_t^2 I), \quad \bar x = \frac{1}{|G|} \sum_{i \in G} x_i,

    :math:`\rho` fixed (``bound: <number>``; FLPoison's norm_threshold 3) or the median
    norm of the finite rows (``bound: median``, scale-free, the default);
    :math:`\sigma_t` = ``sigma`` times :math:`\rho` (``unit: bound``) or ``sigma``
    (``unit: absolute``; FLPoison 0.001), from the stage's seeded generator.

    Variant (named, not the paper's exactly): CRFL clips the *global model's
    parameters*, :math:`\theta \leftarrow \theta \min(1, \rho / \|\theta\|)`, and adds
    the noise to them; a rule here sees only the round's updates, not the parameters,
    so the clipping applies to the aggregated update (FLPoison's ``aggregators/crfl.py``
    does the same). The certification (randomized smoothing over noisy models at test
    time) is not implemented.

    Args: ``bound`` (rho > 0, or median), ``sigma`` (>= 0) and ``unit`` (bound |
    absolute) as ``weak_dp``; ``n``, ``f`` (unused) and ``generator`` (the noise's)
    injected.

    ``last_weights [n]`` is ``min(1, rho/||x_bar||)/|G|`` on the finite rows.

    Reference: C. Xie, M. Chen, P.-Y. Chen, B. Li, "CRFL: Certifiably Robust Federated
    Learning against Backdoor Attacks", ICML 2021.
    """

    generator_keys = ("generator",)


    def __init__(self, n: int = 0, f: int = 0, bound: float | str = "median",
                 sigma: float = 0.01, unit: str = "bound",
                 generator: torch.Generator | None = None):
        kernels.norms.check_bound(bound)
        kernels.norms.check_noise(sigma, unit)
        self.n, self.f, self.bound = n, f, bound
        self.sigma, self.unit = float(sigma), unit
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.last_weights: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        norms, bad = kernels.norms.row_norms(x)
        if bad.all():
            self.last_weights = None
            return x.mean(0)
        rho = kernels.norms.resolve_bound(self.bound, norms, bad)
        w = kernels.norms.finite_mean_weights(bad)
        mean = kernels.combine(x, w, bad)
        scale = float(kernels.norms.clip_scale(kernels.norms.row_norms(mean[None])[0], rho)[0])
        self.last_weights = torch.as_tensor(w * scale, dtype=x.dtype, device=x.device)
        u = mean * scale
        std = self.sigma * rho if self.unit == "bound" else self.sigma
        return u + kernels.norms.gaussian(x.shape[1], std, self.generator, u) if std > 0 else u
