"""Flat parameter vector <-> module parameters, and per-worker gradients in one
vectorized pass.

The model's parameters live as one flat vector ``theta [d]``; ``unflatten`` views it
back as the module's named tensors for ``torch.func.functional_call``. Honest (and,
for local threat models, Byzantine) gradients are ``vmap(grad(loss))`` over the
worker axis: ``X [n, B, ...], Y [n, B] -> G [n, d]``, one batched forward/backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap


def flat_params(model: nn.Module) -> Tensor:
    """The module's parameters concatenated into one detached vector ``[d]``."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def make_unflatten(model: nn.Module) -> Callable[[Tensor], dict[str, Tensor]]:
    """``theta [d] -> {name: view}`` with the module's parameter names and shapes."""
    names, shapes, sizes = [], [], []
    for name, p in model.named_parameters():
        names.append(name)
        shapes.append(p.shape)
        sizes.append(p.numel())

    def unflatten(theta: Tensor) -> dict[str, Tensor]:
        parts = torch.split(theta, sizes)
        return {n: t.view(s) for n, t, s in zip(names, parts, shapes)}

    return unflatten


def loss_fn(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Mean cross-entropy on logits (classification) or MSE on ``[B, 1]`` outputs."""
    if task == "classification":
        return F.cross_entropy
    if task == "regression":
        return lambda out, y: F.mse_loss(out.reshape(y.shape), y)
    raise ValueError(f"dataset.task={task!r} is invalid: classification or regression")


def make_loss(model: nn.Module, task: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``loss(theta [d], x [B, ...], y [B]) -> scalar`` through ``functional_call``."""
    unflatten = make_unflatten(model)
    crit = loss_fn(task)

    def loss(theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return crit(functional_call(model, unflatten(theta), (x,)), y)

    return loss


def make_grad_fn(
    model: nn.Module, task: str = "classification"
) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Per-worker gradients in one pass.

    Returns ``fn(theta [d], X [n, B, ...], Y [n, B]) -> (G [n, d], losses [n])`` where
    ``G[i] = grad_theta loss(theta; X[i], Y[i])``.
    """
    per_worker = vmap(grad_and_value(make_loss(model, task)), in_dims=(None, 0, 0))

    def fn(theta: Tensor, X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
        return per_worker(theta.detach(), X, Y)

    return fn


def loop_grads(model: nn.Module, theta: Tensor, X: Tensor, Y: Tensor, task: str = "classification"):
    """Reference implementation: a plain autograd loop over workers (tests, benchmarks)."""
    loss = make_loss(model, task)
    gs, ls = [], []
    for i in range(X.shape[0]):
        th = theta.detach().clone().requires_grad_(True)
        value = loss(th, X[i], Y[i])
        (g,) = torch.autograd.grad(value, th)
        gs.append(g)
        ls.append(value.detach())
    return torch.stack(gs), torch.stack(ls)
