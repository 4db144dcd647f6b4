"""Model builders: every conf/model YAML builds, is vmap-safe, and per-worker
gradients from torch.func (vmap over grad) equal a plain autograd loop."""

from __future__ import annotations

import pathlib

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import byzbench
from byzbench import ConfigError
from byzbench.build import instantiate_component
from byzbench.grads import flat_params, loop_grads, make_grad_fn

MODEL_DIR = pathlib.Path(byzbench.__file__).parent / "conf" / "model"
YAMLS = sorted(MODEL_DIR.glob("*.yaml"))

# Input shape used to test each model option (the dataset injects it in a run).
SHAPES = {
    "logreg": (1, 8, 8),
    "mlp": (64,),
    "lenet": (1, 28, 28),
    "cnn": (3, 32, 32),
    "resnet20": (3, 16, 16),
}


def build(path: pathlib.Path, input_shape, num_classes=10) -> nn.Module:
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    return instantiate_component(cfg, "model", input_shape=input_shape, num_classes=num_classes)


def test_every_option_is_tested():
    assert {p.stem for p in YAMLS} <= set(SHAPES)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_forward_shape_and_vmap_safe_modules(path):
    shape = SHAPES[path.stem]
    torch.manual_seed(0)
    model = build(path, shape, num_classes=7)
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7)
    assert list(model.buffers()) == []  # vmap over grad: no running statistics
    for m in model.modules():
        assert not isinstance(m, nn.modules.batchnorm._BatchNorm)
        assert not getattr(m, "inplace", False)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_vmap_grads_equal_loop(path, task):
    shape = SHAPES[path.stem]
    torch.manual_seed(0)
    num_classes = 4 if task == "classification" else 1
    model = build(path, shape, num_classes=num_classes).double()
    theta = flat_params(model)
    n, B = 3, 5
    X = torch.randn(n, B, *shape, dtype=torch.float64)
    if task == "classification":
        Y = torch.randint(0, num_classes, (n, B))
    else:
        Y = torch.randn(n, B, dtype=torch.float64)
    G, losses = make_grad_fn(model, task)(theta, X, Y)
    G_ref, losses_ref = loop_grads(model, theta, X, Y, task)
    assert G.shape == (n, theta.numel())
    assert torch.allclose(G, G_ref, atol=1e-10, rtol=1e-8)
    assert torch.allclose(losses, losses_ref, atol=1e-12)
    # Rows differ: each worker's gradient comes from its own batch.
    assert not torch.allclose(G[0], G[1])


def test_flat_and_image_inputs_give_same_linear_model():
    # logreg/mlp flatten [1, 8, 8] to 64 features, so both layouts build the same model.
    torch.manual_seed(0)
    a = build(MODEL_DIR / "mlp.yaml", (64,))
    torch.manual_seed(0)
    b = build(MODEL_DIR / "mlp.yaml", (1, 8, 8))
    x = torch.randn(4, 64)
    assert torch.equal(a(x), b(x.view(4, 1, 8, 8)))


def test_logreg_is_affine():
    # logits = W vec(x) + b: hand-set W = [[1, 2], [0, -1]], b = [0.5, 0]; x = (3, 4)
    # -> (1*3 + 2*4 + 0.5, 0*3 - 1*4 + 0) = (11.5, -4).
    model = build(MODEL_DIR / "logreg.yaml", (2,), num_classes=2)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        model.linear.bias.copy_(torch.tensor([0.5, 0.0]))
    assert torch.equal(model(torch.tensor([[3.0, 4.0]])), torch.tensor([[11.5, -4.0]]))


def test_mlp_parameter_count():
    # hidden [64] on 64 inputs, 10 classes: (64*64 + 64) + (64*10 + 10) = 4160 + 650 = 4810.
    model = build(MODEL_DIR / "mlp.yaml", (64,))
    assert sum(p.numel() for p in model.parameters()) == 4810


def test_bad_activation_is_one_line_config_error():
    from byzbench.models.mlp import build as mlp

    with pytest.raises(ConfigError, match="model.activation") as e:
        mlp((64,), 10, activation="swishy")
    assert "\n" not in str(e.value)
