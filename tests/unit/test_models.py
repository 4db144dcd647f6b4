"""Model builders: every conf/model YAML builds, is vmap-safe, and per-worker
gradients from torch.func (vmap over grad) equal a plain autograd loop."""

from __future__ import annotations

import pathlib

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

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
    "cnn": (3, 16, 16),
    "resnet20": (3, 8, 8),
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
    # Independent reference: the module's own parameters and loss.backward(), per worker.
    vector_to_parameters(theta, model.parameters())
    crit = nn.functional.cross_entropy if task == "classification" else (
        lambda out, y: nn.functional.mse_loss(out.squeeze(1), y))
    for i in range(n):
        model.zero_grad()
        crit(model(X[i]), Y[i]).backward()
        g = parameters_to_vector(p.grad for p in model.parameters())
        assert torch.allclose(G[i], g, atol=1e-10, rtol=1e-8)
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


@pytest.mark.parametrize(
    "name, shape, expected",
    [
        # conv1 1*6*25+6 = 156; conv2 6*16*25+16 = 2416; fc1 (16*5*5)*120+120 = 48120;
        # fc2 120*84+84 = 10164; fc3 84*10+10 = 850 -> 61706 (LeNet-5 on 28x28).
        ("lenet", (1, 28, 28), 61706),
        # convs 3*32*9+32 = 896, 32*64*9+64 = 18496, 64*128*9+128 = 73856; GN affine
        # 2*(32+64+128) = 448; fc1 (128*4*4)*128+128 = 262272; fc2 128*10+10 = 1290.
        ("cnn", (3, 32, 32), 896 + 18496 + 73856 + 448 + 262272 + 1290),
        # He et al.'s 0.27M: stem 432+32; stage1 3*(2*2304+64) = 14016; stage2
        # (4608+9216+128) + 2*(2*9216+128) = 51072; stage3 (18432+36864+256) +
        # 2*(2*36864+256) = 203520; fc 650 -> 269722 (same count as with BatchNorm).
        ("resnet20", (3, 32, 32), 269722),
    ],
)
def test_parameter_counts(name, shape, expected):
    model = build(MODEL_DIR / f"{name}.yaml", shape)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", ["lenet", "cnn", "resnet20"])
def test_conv_models_reject_flat_inputs_in_one_line(name):
    with pytest.raises(Exception) as e:
        build(MODEL_DIR / f"{name}.yaml", (64,))
    err = e.value
    while not isinstance(err, ConfigError) and err.__cause__ is not None:
        err = err.__cause__  # hydra wraps the builder's error
    assert isinstance(err, ConfigError)
    assert "input_shape=(64,)" in str(err) and "\n" not in str(err)


def test_resnet_shortcut_zero_pads_channels():
    # Option A: a stride-2 16->32 block's shortcut is x[..., ::2, ::2] with 8 zero
    # channels before and 8 after. With zero conv weights the residual branch is 0
    # (GroupNorm of a constant map returns its bias, 0), so out = relu(shortcut).
    from byzbench.models.resnet20 import BasicBlock

    block = BasicBlock(16, 32, 2, 8)
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
    x = torch.rand(2, 16, 8, 8)
    out = block(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.equal(out[:, :8], torch.zeros(2, 8, 4, 4))
    assert torch.equal(out[:, 24:], torch.zeros(2, 8, 4, 4))


def test_digits_image_layout_works_with_cnn():
    model = build(MODEL_DIR / "cnn.yaml", (1, 8, 8))
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
