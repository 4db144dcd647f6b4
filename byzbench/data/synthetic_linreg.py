"""Synthetic least-squares regression with a closed-form optimum."""

from __future__ import annotations

import torch

from byzbench import require
from byzbench.data._synthetic import check_sizes, gaussian_features
from byzbench.data.base import Dataset


def build(generator: torch.Generator, n_samples: int = 2000, n_test: int = 1000,
          dim: int = 20, cond: float = 10.0, noise: float = 0.5) -> Dataset:
    """Linear-Gaussian data ``y = X w* + noise * eps`` and its exact optimum f*.

    Rows of X are N(0, Sigma) with condition number ``cond`` (see
    ``gaussian_features``), ``w* ~ N(0, I_dim)``, ``eps ~ N(0, 1)``. With the MSE loss
    ``f(w, b) = (1/N) sum_i (w^T x_i + b - y_i)^2`` the minimizer over the linear model
    with bias (``model=logreg``) is the least-squares solution of ``[X, 1] beta = y``
    (``torch.linalg.lstsq``, float64), and ``f_star = (1/N) ||[X, 1] beta - y||^2``
    (about ``noise^2 (N - dim - 1) / N``).

    Args:
        generator: CPU generator (everything is drawn from it: deterministic).
        n_samples: training samples N.
        n_test: test samples from the same distribution.
        dim: features.
        cond: condition number of the feature covariance (>= 1).
        noise: standard deviation of the label noise (0: interpolation, f* = 0).

    Reference: the standard linear-Gaussian least-squares model (e.g. Hastie,
    Tibshirani & Friedman, "The Elements of Statistical Learning", Sec. 3.2).
    """
    check_sizes(n_samples, n_test, dim, cond)
    require(isinstance(noise, (int, float)) and noise >= 0, "dataset.noise", noise,
            "a number >= 0")
    x = gaussian_features(n_samples + n_test, dim, cond, generator)
    w = torch.randn(dim, generator=generator, dtype=torch.float64)
    y = x @ w + noise * torch.randn(n_samples + n_test, generator=generator,
                                    dtype=torch.float64)
    # f* of the data as stored (float32), solved in float64.
    x, y = x.float().double(), y.float().double()
    xt, yt = x[:n_samples], y[:n_samples]
    a = torch.cat([xt, torch.ones(n_samples, 1, dtype=torch.float64)], 1)
    beta = torch.linalg.lstsq(a, yt.unsqueeze(1), driver="gelsd").solution
    f_star = float(((a @ beta).squeeze(1) - yt).square().mean())
    return Dataset(
        x_train=xt.float(), y_train=yt.float(),
        x_test=x[n_samples:].float(), y_test=y[n_samples:].float(),
        num_classes=1, task="regression", name="synthetic_linreg", f_star=f_star,
    )
