"""Synthetic linear and logistic regression: exact optimum, condition number, seeding,
planted labels, bad parameters."""

from __future__ import annotations

import pytest
import torch

from byzbench import ConfigError
from byzbench.build import instantiate_component

from .helpers import DATA_DIR, build_yaml, gen, yaml_kwargs


def test_synthetic_linreg_exact_optimum():
    from byzbench.data.synthetic_linreg import build
    from byzbench.models.logreg import build as logreg

    d = build(gen(), n_samples=300, n_test=50, dim=5, cond=100.0, noise=0.3)
    assert d.task == "regression" and d.num_classes == 1 and d.input_shape == (5,)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.float32
    # Normal equations in float64: A^T A beta = A^T y with A = [X, 1].
    x, y = d.x_train.double(), d.y_train.double()
    a = torch.cat([x, torch.ones(300, 1, dtype=torch.float64)], 1)
    beta = torch.linalg.solve(a.T @ a, a.T @ y)
    assert abs(((a @ beta - y) ** 2).mean().item() - d.f_star) < 1e-10
    # The linear model at beta attains f*, and the loss is larger anywhere else.
    model = logreg(d.input_shape, 1).double()
    with torch.no_grad():
        model.linear.weight.copy_(beta[:5].view(1, 5))
        model.linear.bias.copy_(beta[5:])
    mse = lambda m: torch.nn.functional.mse_loss(m(x).squeeze(1), y).item()  # noqa: E731
    assert abs(mse(model) - d.f_star) < 1e-10
    with torch.no_grad():
        model.linear.bias.add_(0.1)
    # Moving the intercept by 0.1 adds exactly 0.1^2 (residuals have zero mean at the optimum).
    assert abs(mse(model) - d.f_star - 0.01) < 1e-10
    # noise^2 (N - d - 1) / N = 0.09 * 294 / 300 = 0.0882 is f*'s expectation.
    assert 0.06 < d.f_star < 0.12


def test_synthetic_linreg_matches_lbfgs_optimum():
    # Cross-check with the run's own full-batch L-BFGS (byzbench.optimum).
    optimum = pytest.importorskip("byzbench.optimum")
    from byzbench.data.synthetic_linreg import build
    from byzbench.grads import flat_params
    from byzbench.models.logreg import build as logreg

    d = build(gen(), n_samples=200, n_test=10, dim=5)
    model = logreg(d.input_shape, 1)
    assert abs(optimum.full_batch_optimum(model, flat_params(model), d) - d.f_star) < 1e-7


def test_synthetic_condition_number():
    from byzbench.data._synthetic import gaussian_features

    # Sample covariance of 20000 rows approaches Sigma with eigenvalues 1 .. 1/50.
    x = gaussian_features(20000, 4, 50.0, gen())
    ev = torch.linalg.eigvalsh(x.T @ x / 20000)
    assert abs(ev.max().item() - 1.0) < 0.05 and abs(ev.min().item() - 1 / 50) < 0.002


@pytest.mark.parametrize("name", ["synthetic_linreg", "synthetic_logreg"])
def test_synthetic_deterministic(name):
    a, b, c = build_yaml(name), build_yaml(name), None
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    cfg = yaml_kwargs(DATA_DIR / f"{name}.yaml")
    c = instantiate_component(cfg, "dataset", generator=gen(7))
    assert not torch.equal(a.x_train, c.x_train)


def test_synthetic_logreg_labels_follow_planted_model():
    from byzbench.data.synthetic_logreg import build

    d = build(gen(), n_samples=4000, n_test=10, dim=3, cond=1.0, noise=1.0, weight_norm=2.0)
    assert d.num_classes == 2 and d.task == "classification" and d.f_star is None
    assert set(d.y_train.unique().tolist()) == {0, 1}
    # MLE of the logistic model recovers w* (up to sampling error): fit with sklearn.
    from sklearn.linear_model import LogisticRegression

    w = LogisticRegression(C=1e6, max_iter=1000).fit(d.x_train, d.y_train).coef_
    assert abs(float((w**2).sum()) ** 0.5 - 2.0) < 0.3  # ||w_hat|| ~ ||w*|| = 2 / noise


def test_synthetic_bad_params():
    from byzbench.data import synthetic_linreg, synthetic_logreg

    with pytest.raises(ConfigError, match="dataset.cond"):
        synthetic_linreg.build(gen(), cond=0.5)
    with pytest.raises(ConfigError, match="dataset.noise"):
        synthetic_logreg.build(gen(), noise=0.0)
