"""Flat parameter vector <-> module parameters, and per-worker gradients in one
vectorized pass.

The model's parameters live as one flat vector ``theta [d]``; ``unflatten`` views it
back as the module's named tensors for ``torch.func.functional_call``. Honest (and,
for local threat models, Byzantine) gradients come from one vectorized pass over the
worker axis: ``X [n, B, ...], Y [n, B] -> G [n, d]`` (see ``make_grad_fn``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from byzbench import ConfigError


def flat_params(model: nn.Module) -> Tensor:
    """The module's parameters concatenated into one detached vector ``[d]``."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def make_unflatten(model: nn.Module) -> Callable[[Tensor], dict[str, Tensor]]:
    """``theta [..., d] -> {name: view [..., *shape]}`` with the module's parameter
    names and shapes (leading dimensions, e.g. one row per worker, are kept)."""
    names, shapes, sizes = [], [], []
    for name, p in model.named_parameters():
        names.append(name)
        shapes.append(p.shape)
        sizes.append(p.numel())

    def unflatten(theta: Tensor) -> dict[str, Tensor]:
        lead = theta.shape[:-1]
        parts = torch.split(theta, sizes, dim=-1)
        return {n: t.view(*lead, *s) for n, t, s in zip(names, parts, shapes)}

    return unflatten


def per_sample_loss_fn(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Unreduced loss ``[B]``: cross-entropy on logits (classification) or squared
    error on ``[B, 1]`` outputs (regression)."""
    if task == "classification":
        return lambda out, y: F.cross_entropy(out, y, reduction="none")
    if task == "regression":
        return lambda out, y: (out.reshape(y.shape) - y).square()
    raise ValueError(f"dataset.task={task!r} is invalid: classification or regression")


def loss_fn(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Mean of ``per_sample_loss_fn(task)``: cross-entropy or MSE."""
    per_sample = per_sample_loss_fn(task)
    return lambda out, y: per_sample(out, y).mean()


def make_loss(model: nn.Module, task: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``loss(theta [d], x [B, ...], y [B]) -> scalar`` through ``functional_call``."""
    unflatten = make_unflatten(model)
    crit = loss_fn(task)

    def loss(theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return crit(functional_call(model, unflatten(theta), (x,)), y)

    return loss


REPLICATE_MAX_PARAMS = 20_000


def make_grad_fn(
    model: nn.Module, task: str = "classification", replicate: bool | None = None
) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Per-worker gradients in one vectorized pass.

    Returns ``fn(theta [d] or [n, d], X [n, B, ...], Y [n, B]) -> (G [n, d], losses [n])``
    where ``G[i] = grad loss(theta; X[i], Y[i])`` (one shared theta) or
    ``grad loss(theta[i]; X[i], Y[i])`` (one theta per worker, e.g. FedAvg's local
    steps). Two exact formulations, chosen by
    size (``replicate=None``: replicate when d <= REPLICATE_MAX_PARAMS):

    * ``vmap(grad(loss))`` over workers: the forward keeps theta unbatched (one large
      matmul over all n*B samples), only the weight gradients are batched. Fastest for
      larger models (784-256-128-10 MLP: 16 ms vs 24 ms per round, 1 thread).
    * replicate: theta copied into ``P [n, d]``, ``vmap(functional_call)`` over rows of
      P and X, and one ordinary backward of ``sum_i loss_i`` w.r.t. P (loss_i depends
      only on row i). Far less per-op overhead, so fastest for small models (digits
      MLP, d=4810: 1.1 ms vs 1.7 ms). Crossover measured near d = 20k
      (scripts/bench_round.py).
    """
    if replicate is None:
        replicate = sum(p.numel() for p in model.parameters()) <= REPLICATE_MAX_PARAMS
    if not replicate:
        # randomness="different": each worker draws its own dropout masks.
        gv = grad_and_value(make_loss(model, task))
        shared = vmap(gv, in_dims=(None, 0, 0), randomness="different")
        own = vmap(gv, in_dims=(0, 0, 0), randomness="different")
        return lambda theta, X, Y: (shared if theta.dim() == 1 else own)(theta.detach(), X, Y)
    per_sample = per_sample_loss_fn(task)
    unflatten = make_unflatten(model)

    def forward(params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, params, (x,))

    batched_forward = vmap(forward, randomness="different")

    def fn(theta: Tensor, X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
        n = X.shape[0]
        with torch.enable_grad():
            P = theta.detach().expand(n, -1).clone().requires_grad_(True)
            out = batched_forward(unflatten(P), X)  # [n, B, ...]
            losses = per_sample(out.flatten(0, 1), Y.flatten(0, 1)).view(n, -1).mean(1)
            (G,) = torch.autograd.grad(losses.sum(), P)
        return G, losses.detach()

    return fn


GRAD_PATHS = ("auto", "vmap", "loop")

# grad_path=auto: the faster formulation per device type and model class, measured with
# scripts/bench_models.py (n = 20 workers, B = 32, the models' datasets' input shapes; CPU
# with 1 thread, this repo's 2-core machine; CUDA on one H200: scripts/gpu_check.sh). A
# model class missing from the table is measured once on first use (time_grad_paths).
# docs/PERFORMANCE.md has the numbers behind every entry.
MEASURED_GRAD_PATHS: dict[str, dict[str, str]] = {
    "cpu": {"LogReg": "vmap", "MLP": "vmap", "LeNet": "vmap", "CNN": "loop",
            "ResNet20": "vmap"},
    # One H200, torch 2.11: vmap 7-15x faster than the loop for every model.
    "cuda": {"LogReg": "vmap", "MLP": "vmap", "LeNet": "vmap", "CNN": "vmap",
             "ResNet20": "vmap"},
}
# EpfmlCNN (epfml_cnn): loop 6.5 s vs vmap 9.4 s per round at n = 25, B = 32 (docs/REPRODUCE.md).
MEASURED_GRAD_PATHS["cpu"]["EpfmlCNN"] = "loop"
_MEASURED_ON_USE: dict[tuple, str] = {}


def has_batch_norm(model: nn.Module) -> bool:
    """True when the model has BatchNorm layers (batch statistics, running buffers)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

def time_grad_paths(model: nn.Module, X: Tensor, Y: Tensor, task: str = "classification",
                    repeats: int = 2) -> dict[str, float]:
    """Best wall time (s) of each path on ``X [n, B, ...], Y [n, B]`` after a warm-up."""
    import time

    theta = flat_params(model).to(X.device)
    sync = torch.cuda.synchronize if X.device.type == "cuda" else (lambda: None)
    out = {}
    for path in ("vmap", "loop"):
        fn = make_grads(model, task, path)
        fn(theta, X, Y)
        best = float("inf")
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            fn(theta, X, Y)
            sync()
            best = min(best, time.perf_counter() - t0)
        out[path] = best
    return out


def choose_grad_path(model: nn.Module, device: torch.device, path: str = "auto",
                     example: Callable[[], tuple[Tensor, Tensor]] | None = None,
                     task: str = "classification") -> str:
    """The per-worker gradient formulation: ``path`` itself unless ``auto``; then the
    measured winner for (device type, model class) from MEASURED_GRAD_PATHS, else (a
    model or device not in the table) the faster path on ``example()`` - one batch
    ``(X [n, B, ...], Y [n, B])`` of the run's shape - timed once per process and
    shape. Both paths give the same gradients up to float rounding; pin ``grad_path``
    for bit-identical runs across machines. Without ``example``: vmap. Models with
    BatchNorm always take the loop (per-worker batch statistics, running statistics
    updated in place worker after worker); ``vmap`` is refused for them."""
    if path not in GRAD_PATHS:
        raise ValueError(f"grad_path={path!r} is invalid: one of {', '.join(GRAD_PATHS)}")
    if has_batch_norm(model):
        # Per-worker batch statistics and in-place running-statistics updates, worker
        # after worker, as in the published code (one shared module): only the loop.
        if path == "vmap":
            raise ConfigError("grad_path='vmap' is invalid for a model with BatchNorm: its "
                              "running statistics are updated in place; use auto or loop")
        return "loop"
    if path != "auto":
        return path
    name = type(model).__name__
    table = MEASURED_GRAD_PATHS.get(device.type, {})
    if name in table:
        return table[name]
    if example is None:
        return "vmap"
    X, Y = example()
    key = (device.type, name, sum(p.numel() for p in model.parameters()), tuple(X.shape))
    if key not in _MEASURED_ON_USE:
        times = time_grad_paths(model, X, Y, task)
        _MEASURED_ON_USE[key] = min(times, key=times.get)
    return _MEASURED_ON_USE[key]


def make_grads(
    model: nn.Module, task: str, path: str
) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``fn(theta, X, Y) -> (G [n, d], losses [n])`` by the chosen path (same numbers)."""
    if path == "vmap":
        return make_grad_fn(model, task)
    return lambda theta, X, Y: loop_grads(model, theta, X, Y, task)


def loop_grads(model: nn.Module, theta: Tensor, X: Tensor, Y: Tensor, task: str = "classification"):
    """Reference implementation: a plain autograd loop over workers (tests, benchmarks);
    ``theta`` is ``[d]`` (shared) or ``[n, d]`` (one per worker)."""
    loss = make_loss(model, task)
    gs, ls = [], []
    for i in range(X.shape[0]):
        th = (theta if theta.dim() == 1 else theta[i]).detach().clone().requires_grad_(True)
        value = loss(th, X[i], Y[i])
        (g,) = torch.autograd.grad(value, th)
        gs.append(g)
        ls.append(value.detach())
    return torch.stack(gs), torch.stack(ls)
