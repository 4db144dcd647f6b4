"""Optimal training loss f* for convex tasks (linear models with cross-entropy or MSE),
so runs can report the optimality gap f(theta_t) - f*."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from byzbench.data.base import Dataset
from byzbench.grads import make_loss


def is_linear_model(model: nn.Module) -> bool:
    """True when the only parameterized module is one ``nn.Linear``: the training loss
    (cross-entropy or MSE) is then convex in the parameters."""
    if getattr(model, "convex", False):
        return True
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    return len(owners) == 1 and isinstance(owners[0], nn.Linear)


def full_batch_optimum(model: nn.Module, theta0: Tensor, data: Dataset, max_iter: int = 500,
                       tol: float = 1e-10) -> float:
    """min_theta of the mean training loss by full-batch L-BFGS in float64 (strong Wolfe
    line search). For separable logistic regression the infimum is 0 at infinity; the
    value returned is then the loss reached after ``max_iter`` iterations."""
    m64 = model.to(torch.float64)
    try:
        loss = make_loss(m64, data.task)
        x = data.prepare(data.x_train).to(torch.float64)
        y = data.y_train if data.task == "classification" else data.y_train.to(torch.float64)
        th = theta0.detach().to(torch.float64).clone().requires_grad_(True)
        opt = torch.optim.LBFGS([th], lr=1.0, max_iter=max_iter, tolerance_grad=tol,
                                tolerance_change=1e-14, history_size=50,
                                line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            v = loss(th, x, y)
            v.backward()
            return v

        opt.step(closure)
        with torch.no_grad():
            return float(loss(th, x, y))
    finally:
        model.to(theta0.dtype)
