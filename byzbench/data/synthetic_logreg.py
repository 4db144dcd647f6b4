"""Synthetic binary logistic-regression data from a planted model."""

from __future__ import annotations

import torch

from byzbench import require
from byzbench.data._synthetic import check_sizes, gaussian_features
from byzbench.data.base import Dataset


def build(generator: torch.Generator, n_samples: int = 2000, n_test: int = 1000,
          dim: int = 20, cond: float = 10.0, noise: float = 1.0,
          weight_norm: float = 3.0) -> Dataset:
    """Labels from a planted logistic model: ``y = 1[x^T w* + noise * eps > 0]``.

    Rows of X are N(0, Sigma) with condition number ``cond``; ``w*`` is a Gaussian
    direction scaled to ``||w*|| = weight_norm``; ``eps`` is standard logistic, so
    ``P(y = 1 | x) = sigmoid(x^T w* / noise)``. With noise > 0 and N >> dim the data
    are not separable and the (convex) cross-entropy of a linear model has a finite
    minimizer; f* is not closed-form, so ``f_star`` is None and the run computes it by
    full-batch L-BFGS. Two classes (0, 1) -> two logits.

    Args:
        generator: CPU generator (everything is drawn from it: deterministic).
        n_samples: training samples N.
        n_test: test samples from the same distribution.
        dim: features.
        cond: condition number of the feature covariance (>= 1).
        noise: logistic noise scale (> 0; larger = noisier labels).
        weight_norm: ``||w*||``, the signal strength.

    Reference: the planted logistic model of e.g. Bach, "Adaptivity of averaged
    stochastic gradient descent to local strong convexity for logistic regression",
    JMLR 2014 (Gaussian inputs, logistic labels).
    """
    check_sizes(n_samples, n_test, dim, cond)
    require(isinstance(noise, (int, float)) and noise > 0, "dataset.noise", noise,
            "a number > 0 (0 makes the data separable)")
    require(isinstance(weight_norm, (int, float)) and weight_norm >= 0,
            "dataset.weight_norm", weight_norm, "a number >= 0")
    n = n_samples + n_test
    x = gaussian_features(n, dim, cond, generator)
    w = torch.randn(dim, generator=generator, dtype=torch.float64)
    w = w * (weight_norm / w.norm().clamp_min(1e-12))
    u = torch.rand(n, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    eps = torch.log(u) - torch.log1p(-u)  # inverse CDF of the standard logistic
    y = ((x @ w + noise * eps) > 0).long()
    return Dataset(
        x_train=x[:n_samples].float(), y_train=y[:n_samples],
        x_test=x[n_samples:].float(), y_test=y[n_samples:],
        num_classes=2, name="synthetic_logreg",
    )
