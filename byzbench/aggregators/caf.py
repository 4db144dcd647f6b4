"""Covariance-bound agnostic filter (CAF; Allouah, Guerraoui, Stephan, 2025)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

EIGEN = ("exact", "power1")


class CAF(Rule):
    r"""Covariance-bound agnostic filter: iteratively down-weight the rows that deviate
    most along the top eigenvector of the weighted covariance, and return the weighted
    mean with the smallest top eigenvalue seen.

    With weights :math:`c_i` (initially 1), while :math:`\sum_i c_i > n - 2f`:

    .. math:: \mu_c = \frac{\sum_i c_i x_i}{\sum_i c_i}, \quad
        \Sigma_c = \frac{\sum_i c_i (x_i - \mu_c)(x_i - \mu_c)^\top}{\sum_i c_i}, \quad
        (\lambda, v) = \text{top eigenpair of } \Sigma_c,

    .. math:: \tau_i = ((x_i - \mu_c)^\top v)^2, \qquad
        c_i \leftarrow c_i \Big(1 - \frac{\tau_i}{\max_{j: c_j > 0} \tau_j}\Big);

    output the :math:`\mu_c` whose :math:`\lambda` was smallest. Each round zeroes at
    least one weight, so there are at most n rounds; ``f = 0`` is the mean.

    ``eigen: exact`` (default, the paper's definition): the exact top eigenpair.
    :math:`\Sigma_c` has the same
    non-zero spectrum as the ``n x n`` matrix
    :math:`D^{1/2} K D^{1/2}` (:math:`D = \mathrm{diag}(c)/\sum c`, K the centered
    Gram matrix), so ``numpy.linalg.eigh`` on that matrix gives :math:`\lambda` and the
    projections :math:`(x_i - \mu_c)^\top v = (K D^{1/2} u)_i / \sqrt{\lambda}` exactly;
    no random start is needed, so the rule is deterministic without a generator (the
    paper and ByzFL use a randomly started power method that approximates the same
    eigenpair). The normalizing max runs over rows still in play
    (:math:`c_j > 0`). The loop stops early when :math:`\lambda \le 10^{-12}
    \mathrm{tr}\,\Sigma_1` (:math:`\Sigma_1` the first round's covariance: the rows
    in play coincide up to rounding; relative, so the rule is the same at every
    gradient scale). The Gram matrix is the centered one of
    ``kernels.pairwise`` (exact for close rows). Non-finite rows start with weight 0.

    ``eigen: power1`` (ByzFL 0.0.11's ``CAF``, the estimate its published results
    use): each round, one power iteration from a random unit start :math:`v_0`
    (Gaussian, from the run's seeded ``generator``; ByzFL's is unseeded):
    :math:`w = \Sigma_c v_0`, :math:`\lambda \approx \|w\|`, :math:`v = w / \|w\|`;
    computed from the Gram matrix and one ``[n, d] x [d, n]`` projection on all rounds'
    starts (:math:`\|w\|^2 = a^\top K a`, :math:`a_i = p_i (x_i - \mu_c)^\top v_0`).
    It underestimates :math:`\lambda` by a random factor, so it may keep a different
    mean than ``exact``; the queries of one round share its draws.

    Args:
        n: rows it will receive (injected). Needs ``2f < n``.
        f: declared Byzantine count (injected).
        eigen: ``exact | power1``.
        generator: seeded torch.Generator (injected; ``power1`` only, ``None`` uses a
            private one seeded 0).

    ``last_weights [n]`` holds the normalized weights :math:`c / \sum c` of the output.

    Reference: Y. Allouah, R. Guerraoui, J. Stephan, "Towards Trustworthy Federated
    Learning with Untrusted Participants", ICML 2025 (CAF, used inside CafCor); see
    also ByzFL's ``CAF`` (the definition followed here).
    """

    generator_keys = ("generator",)  # power1 only (None for exact)


    def __init__(self, n: int, f: int, eigen: str = "exact",
                 generator: torch.Generator | None = None):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(2 * f < n, "agg.f", f, f"caf needs 2f < n (n={n})")
        require(eigen in EIGEN, "agg.eigen", eigen, f"one of {', '.join(EIGEN)}")
        self.n, self.f, self.eigen = n, f, eigen
        if eigen == "power1" and generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator if eigen == "power1" else None
        self.last_weights: Tensor | None = None
        self.last_rounds = 0

    def weights(self, g: np.ndarray, bad: np.ndarray,
                starts: np.ndarray | None = None) -> np.ndarray:
        """Normalized weights ``[n]`` of the selected weighted mean; ``starts [n, n]``:
        the rows' projections on each round's random start (``power1``), else exact."""
        n = g.shape[0]
        c = (~bad).astype(np.float64)
        if c.sum() == 0:
            return c
        best_lam, best_p = np.inf, c / c.sum()
        rounds, scale = 0, 0.0
        while c.sum() > n - 2 * self.f:  # at most n rounds: each zeroes a weight
            rounds += 1
            p = c / c.sum()
            gp = g @ p
            k = g - gp[:, None] - gp[None, :] + p @ gp  # centered Gram (x_i-mu).(x_j-mu)
            if starts is None:
                r = np.sqrt(p)
                evals, evecs = np.linalg.eigh(r[:, None] * k * r[None, :])
                lam, u = float(evals[-1]), evecs[:, -1]
                trace = float(evals.sum())
            else:  # one power iteration: w = sum_i a_i (x_i - mu), a_i = p_i (x_i - mu).v0
                q = starts[:, rounds - 1]
                a = p * (q - p @ q)
                ka = k @ a
                lam = float(math.sqrt(max(a @ ka, 0.0)))  # ||w||, ByzFL's estimate
                trace = float(p @ np.diag(k))
            if lam < best_lam:
                best_lam, best_p = lam, p
            if rounds == 1:
                scale = trace  # trace of the first covariance: the data's scale
            if not lam > 1e-12 * scale:
                break  # all rows in play coincide (relative floor: scale-free)
            if starts is None:
                tau = (k @ (r * u)) ** 2 / lam
            else:
                tau = (ka / lam) ** 2  # ((x_i - mu) . v)^2, v = w / ||w||
            tau_max = tau[c > 0].max()
            c = np.where(c > 0, c * (1.0 - tau / tau_max), 0.0)
            c = np.maximum(c, 0.0)
        self.last_rounds = rounds
        return best_p

    def batch(self, xs: Tensor) -> Tensor:
        """Batched queries (Pipeline.query_batch): the k problems' distances computed
        together; with ``power1`` every problem sees the same random starts."""
        if self.generator is None:
            return kernels.batch_by_pairwise(self, xs)
        state = self.generator.get_state()

        def one(x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
            self.generator.set_state(state)
            return self(x, pw=pw)

        return kernels.batch_by_pairwise(one, xs, rule=self)

    @kernels.single_blas
    def __call__(self, x: Tensor, pw: kernels.Pairwise | None = None) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, f = x.shape[0], self.f
        kernels.check_rows("caf", n, 2 * f < n, f"2f < n (f={f})")
        _, g, bad, _ = kernels.pairwise(x) if pw is None else pw
        starts = (None if self.generator is None
                  else kernels.random_projections(x, bad, n, self.generator))
        p = self.weights(g, bad, starts)
        if p.sum() == 0:
            self.last_weights = None
            return x.mean(dim=0)
        self.last_weights = torch.as_tensor(p, dtype=x.dtype).to(x.device)
        return kernels.combine(x, p, bad)
