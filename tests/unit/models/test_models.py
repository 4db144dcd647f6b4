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
from byzbench.grads import (
    choose_grad_path,
    flat_params,
    has_batch_norm,
    loop_grads,
    make_grad_fn,
    make_grads,
)

MODEL_DIR = pathlib.Path(byzbench.__file__).parent / "conf" / "model"
YAMLS = sorted(MODEL_DIR.glob("*.yaml"))

BATCH_NORM = {"resnet20_bn"}  # running statistics: loop path only (test_batch_norm_*)


def build(path: pathlib.Path, input_shape, num_classes=10) -> nn.Module:
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    return instantiate_component(cfg, "model", input_shape=input_shape, num_classes=num_classes)


def test_every_option_is_tested(model_shapes):
    assert {p.stem for p in YAMLS} <= set(model_shapes)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_forward_shape_and_vmap_safe_modules(path, model_shapes):
    shape = model_shapes[path.stem]
    torch.manual_seed(0)
    model = build(path, shape, num_classes=7)
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7)
    if path.stem not in BATCH_NORM:
        assert list(model.buffers()) == []  # vmap over grad: no running statistics
    assert (path.stem in BATCH_NORM) == has_batch_norm(model)
    for m in model.modules():
        assert not getattr(m, "inplace", False)


@pytest.mark.parametrize("path", [p for p in YAMLS if p.stem not in BATCH_NORM],
                         ids=lambda p: p.stem)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_vmap_grads_equal_loop(path, task, model_shapes):
    shape = model_shapes[path.stem]
    torch.manual_seed(0)
    num_classes = 4 if task == "classification" else 1
    # eval(): dropout (epfml_cnn) off, so both paths compute the same deterministic function
    model = build(path, shape, num_classes=num_classes).double().eval()
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
        # projection shortcuts add conv1x1 16*32 + 32*64 = 2560 and BN affine 2*(32+64) = 192.
        ("resnet20_bn", (3, 32, 32), 269722 + 2560 + 192),
        # conv1 1*32*9+32 = 320; conv2 32*64*9+64 = 18496; fc1 9216*128+128 = 1179776;
        # fc2 128*10+10 = 1290 -> 1199882 (epfml's Net: 9216 = 64 x 12 x 12).
        ("epfml_cnn", (1, 28, 28), 1199882),
        # conv1 1*20*25+20 = 520; conv2 20*50*25+50 = 25050; fc1 800*500+500 = 400500;
        # fc2 500*10+10 = 5010 -> 431080 (ByzFL cnn_mnist).
        ("byzfl_cnn_mnist", (1, 28, 28), 431080),
        # 784*100+100 = 78500; 100*10+10 = 1010 -> 79510 (ByzFL fc_mnist).
        ("byzfl_fc_mnist", (1, 28, 28), 79510),
    ],
)
def test_parameter_counts(name, shape, expected):
    model = build(MODEL_DIR / f"{name}.yaml", shape)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("name", ["lenet", "cnn", "resnet20", "epfml_cnn", "byzfl_cnn_mnist"])
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


def _module_loop(model: nn.Module, theta, X, Y):
    """Reference: the published simulators' loop, one shared module in train mode, each
    worker ``zero_grad -> model(x_i) -> loss.backward()`` in turn."""
    vector_to_parameters(theta, model.parameters())
    model.train()
    gs = []
    for i in range(X.shape[0]):
        model.zero_grad()
        nn.functional.cross_entropy(model(X[i]), Y[i]).backward()
        gs.append(parameters_to_vector(p.grad for p in model.parameters()).clone())
    return torch.stack(gs)


def test_batch_norm_chosen_path_equals_module_loop():
    """resnet20_bn: the chosen path (the per-worker loop, on every device) gives each
    worker's gradient under its own batch statistics, and leaves the same running
    statistics as the shared-module loop of the published code (updated worker after
    worker, momentum 0.1)."""
    import copy

    torch.manual_seed(0)
    cfg = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / "resnet20_bn.yaml"))
    cfg["width"] = 4  # same layers (BatchNorm, projection shortcuts), fewer channels
    model = instantiate_component(cfg, "model", input_shape=(3, 8, 8), num_classes=10).double()
    ref = copy.deepcopy(model)
    assert choose_grad_path(model, torch.device("cpu")) == "loop"
    assert choose_grad_path(model, torch.device("cuda")) == "loop"
    theta = flat_params(model)
    n, B = 3, 4
    X = torch.randn(n, B, 3, 8, 8, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.5]).view(
        3, 1, 1, 1, 1).double()  # workers' batches differ in scale: batch statistics differ
    Y = torch.randint(0, 10, (n, B))
    G, _ = make_grads(model, "classification", "loop")(theta, X, Y)
    G_ref = _module_loop(ref, theta, X, Y)
    assert torch.allclose(G, G_ref, atol=1e-10, rtol=1e-8)
    bufs = dict(model.named_buffers())
    for name, b in ref.named_buffers():
        assert torch.allclose(bufs[name].double(), b.double(), atol=1e-12), name
    # num_batches_tracked counts one update per worker; the first BN's running mean is
    # the 0.1-momentum EMA of the three workers' batch means, from 0.
    bn = model.norm
    assert int(bn.num_batches_tracked) == n
    stem = nn.functional.conv2d(X.flatten(0, 1), model.conv.weight.double(), padding=1)
    means = stem.view(n, B, *stem.shape[1:]).mean(dim=(1, 3, 4))  # [n, C]
    ema = torch.zeros_like(means[0])
    for i in range(n):
        ema = 0.9 * ema + 0.1 * means[i]
    assert torch.allclose(bn.running_mean.double(), ema, atol=1e-12)
    # A worker's gradient depends on its own batch only (per-worker statistics).
    G1, _ = make_grads(copy.deepcopy(ref), "classification", "loop")(theta, X[1:2], Y[1:2])
    assert torch.allclose(G1[0], G[1], atol=1e-10, rtol=1e-8)


def test_batch_norm_refuses_vmap_in_one_line():
    model = build(MODEL_DIR / "resnet20_bn.yaml", (3, 8, 8))
    with pytest.raises(ConfigError, match="grad_path='vmap'") as e:
        choose_grad_path(model, torch.device("cpu"), "vmap")
    assert "\n" not in str(e.value)


def test_batch_norm_eval_uses_running_statistics():
    """evaluate(): model.eval() (running statistics, no update), then back to train."""
    from byzbench.data.base import Dataset
    from byzbench.loop import evaluate

    torch.manual_seed(0)
    model = build(MODEL_DIR / "resnet20_bn.yaml", (3, 8, 8))
    with torch.no_grad():
        model.norm.running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in model.named_buffers()}
    x = torch.randn(6, 3, 8, 8)
    y = torch.randint(0, 10, (6,))
    data = Dataset(x_train=x, y_train=y, x_test=x, y_test=y, num_classes=10)
    res = evaluate(model, flat_params(model), data, "test")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    model.eval()
    acc = (model(x).argmax(-1) == y).double().mean()
    assert float(res["accuracy"]) == pytest.approx(float(acc))


def test_epfml_cnn_dropout_is_per_worker_and_off_in_eval():
    torch.manual_seed(0)
    model = build(MODEL_DIR / "epfml_cnn.yaml", (1, 28, 28))
    x = torch.randn(2, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(1)
    assert torch.equal(a, model(x))  # the seeded stream decides the masks
    assert not torch.equal(a, model(x))
    # vmap path: each worker draws its own masks (identical batches, different rows).
    theta = flat_params(model)
    X = x[:1].expand(2, 1, 1, 28, 28).contiguous()
    G, _ = make_grad_fn(model, "classification")(theta, X, torch.zeros(2, 1, dtype=torch.long))
    assert not torch.allclose(G[0], G[1])
    from byzbench.models.epfml_cnn import build as epfml

    off = epfml((1, 28, 28), 10, dropout=False)
    off.load_state_dict(model.state_dict())
    off.train()
    assert torch.equal(off(x), model.eval()(x))
