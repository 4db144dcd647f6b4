"""vmap(grad) over workers equals a plain per-worker autograd loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from byzbench.grads import flat_params, loop_grads, make_grad_fn, make_unflatten


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


@pytest.mark.parametrize("replicate", [True, False])
def test_vmap_equals_loop_classification(replicate):
    model = _mlp()
    theta = flat_params(model)
    X = torch.randn(7, 9, 3, 4)
    Y = torch.randint(0, 5, (7, 9))
    G, L = make_grad_fn(model, replicate=replicate)(theta, X, Y)
    G2, L2 = loop_grads(model, theta, X, Y)
    assert G.shape == (7, theta.numel())
    torch.testing.assert_close(G, G2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(L, L2)


def test_vmap_equals_autograd_on_module():
    """Independent of byzbench's loss wrapper: module autograd per worker."""
    model = _mlp()
    theta = flat_params(model)
    X = torch.randn(4, 6, 12)
    Y = torch.randint(0, 5, (4, 6))
    G, _ = make_grad_fn(model)(theta, X, Y)
    for i in range(4):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i]), Y[i]).backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(G[i], g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("replicate", [True, False])
def test_regression_loss_is_mse(replicate):
    model = nn.Linear(3, 1)
    theta = flat_params(model)
    X = torch.randn(2, 5, 3)
    Y = torch.randn(2, 5)
    G, L = make_grad_fn(model, "regression", replicate=replicate)(theta, X, Y)
    w, b = model.weight.detach()[0], model.bias.detach()[0]
    r = X[0] @ w + b - Y[0]
    # d/dw mean(r^2) = 2/B sum r x ; d/db = 2/B sum r
    torch.testing.assert_close(G[0, :3], 2 * (r[:, None] * X[0]).mean(0))
    torch.testing.assert_close(G[0, 3], 2 * r.mean())
    torch.testing.assert_close(L[0], (r**2).mean())


def test_unflatten_roundtrip():
    model = _mlp()
    theta = flat_params(model)
    parts = make_unflatten(model)(theta)
    for (name, p), v in zip(model.named_parameters(), parts.values()):
        assert parts[name].shape == p.shape
        torch.testing.assert_close(v, p.detach())


def test_grad_paths_agree_and_auto_choice():
    from byzbench.grads import choose_grad_path, make_grads

    model = _mlp()
    theta = flat_params(model)
    X, Y = torch.randn(5, 4, 12), torch.randint(0, 5, (5, 4))
    Gv, Lv = make_grads(model, "classification", "vmap")(theta, X, Y)
    Gl, Ll = make_grads(model, "classification", "loop")(theta, X, Y)
    torch.testing.assert_close(Gv, Gl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(Lv, Ll)
    cpu = torch.device("cpu")
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    assert choose_grad_path(conv, cpu, "vmap") == "vmap"
    assert choose_grad_path(conv, cpu, "loop") == "loop"


def test_auto_grad_path_from_the_measured_table_or_measured_on_use(monkeypatch):
    from byzbench import grads
    from byzbench.models.cnn import CNN
    from byzbench.models.mlp import MLP

    cpu = torch.device("cpu")
    mlp = MLP((12,), 5, [8], "relu")
    assert grads.choose_grad_path(mlp, cpu) == grads.MEASURED_GRAD_PATHS["cpu"]["MLP"]
    cnn = CNN((1, 8, 8), 3, [2, 2], 4, 0, "relu")
    assert grads.choose_grad_path(cnn, cpu) == grads.MEASURED_GRAD_PATHS["cpu"]["CNN"]
    # A class the table does not know: timed once on the run's batch shape, then cached.
    calls = []

    def fake_times(model, X, Y, task="classification"):
        calls.append(tuple(X.shape))
        return {"vmap": 2.0, "loop": 1.0}

    monkeypatch.setattr(grads, "time_grad_paths", fake_times)
    monkeypatch.setattr(grads, "_MEASURED_ON_USE", {})
    other = _mlp()
    batch = (torch.randn(5, 4, 12), torch.randint(0, 5, (5, 4)))
    assert grads.choose_grad_path(other, cpu, example=lambda: batch) == "loop"
    assert grads.choose_grad_path(other, cpu, example=lambda: batch) == "loop"
    assert calls == [(5, 4, 12)]
    assert grads.choose_grad_path(other, cpu) == "vmap"  # nothing to measure on


def test_time_grad_paths_times_both_paths():
    from byzbench.grads import time_grad_paths

    t = time_grad_paths(_mlp(), torch.randn(3, 4, 12), torch.randint(0, 5, (3, 4)), repeats=1)
    assert set(t) == {"vmap", "loop"} and all(v > 0 for v in t.values())
