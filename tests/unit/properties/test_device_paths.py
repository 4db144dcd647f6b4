"""The same numbers on every device path, for every rule, pre-aggregator, attack and
model (auto-discovered from conf/).

Paths: ``cpu`` (float32 numpy kernels where byzbench.kernels has them), ``cpu-torch`` (the same
float32 tensors forced through the torch kernels that other devices use, so the GPU's
code path is exercised on every machine), and ``cuda`` when present
(scripts/gpu_check.sh runs ``-k cuda``). Each is compared with a float64 CPU
reference: deterministic stages to 1e-4 relative (float32 against float64 on
well-separated rows, no near ties), randomized ones (they draw from a generator on the
device, whose stream differs across devices) for shape, device and finiteness.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import conf_options
from omegaconf import OmegaConf

from byzbench import kernels
from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import RoundContext
from byzbench.build import build_attack, instantiate_component
from byzbench.config import cluster_spec
from byzbench.grads import flat_params, loop_grads, make_grad_fn

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf"
PATHS = ["cpu", "cpu-torch"] + (["cuda"] if torch.cuda.is_available() else [])
STAGES = [("agg", p) for p in conf_options("agg")] + \
    [("preagg", p) for p in conf_options("preagg")]
ATTACKS = conf_options("attack")
MODELS = sorted((CONF / "model").glob("*.yaml"))
N, F, D = 15, 3, 40  # every rule accepts n = 15, f = 3 (bulyan: 4f + 3 = 15)


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """The device of the path (``cpu-torch`` also disables the numpy kernels)."""
    if request.param == "cpu-torch":
        monkeypatch.setattr(kernels.coordinatewise, "numpy_ok", lambda x: False)
    return torch.device("cuda" if request.param == "cuda" else "cpu")


def rows(seed: int = 1, n: int = N, d: int = D) -> torch.Tensor:
    """Honest rows around 1 and F Byzantine rows far off (no near ties)."""
    g = torch.Generator().manual_seed(seed)
    x = 1.0 + torch.randn(n, d, generator=g, dtype=torch.float64)
    x[:F] = x[F:].mean(0) + 6.0
    return x


def build_stage(group: str, yaml: Path, device: torch.device, seed: int = 0):
    node = OmegaConf.to_container(OmegaConf.load(yaml))
    if group == "preagg":
        node = node[yaml.stem]
    gen = torch.Generator(device=device).manual_seed(seed)
    return instantiate_component(node, f"{group}={yaml.stem}", n=N, f=F, generator=gen)


def randomized(make, x: torch.Tensor) -> bool:
    """Whether the output depends on the generator seed (CPU, float64)."""
    return not torch.equal(make(0)(x), make(1)(x))


@pytest.mark.parametrize("group, yaml", STAGES, ids=[f"{g}-{p.stem}" for g, p in STAGES])
def test_stage_same_numbers_on_every_path(group, yaml, path):
    x = rows()
    ref = build_stage(group, yaml, torch.device("cpu"))(x)
    out = build_stage(group, yaml, path)(x.float().to(path))
    assert out.device.type == path.type and out.dtype == torch.float32
    assert out.shape == ref.shape and torch.isfinite(out).all()
    if not randomized(lambda s: build_stage(group, yaml, torch.device("cpu"), s), x):
        scale = ref.abs().max()
        torch.testing.assert_close(out.double().cpu(), ref, rtol=1e-4, atol=1e-5 * scale)


def _ctx(honest: torch.Tensor, seed: int) -> RoundContext:
    dev = honest.device
    rule = instantiate_component({"_target_": "byzbench.aggregators.median.Median"}, "agg",
                                 n=N, f=F)
    return RoundContext(t=3, n=N, f=F, f_declared=F, pipeline=Pipeline([], rule),
                        prev_aggregate=honest.mean(0) * 0.9, byz_grads=honest[:F] + 0.5,
                        generator=torch.Generator(device=dev).manual_seed(seed))


@pytest.mark.parametrize("yaml", ATTACKS, ids=[p.stem for p in ATTACKS])
def test_attack_same_numbers_on_every_path(yaml, path):
    spec = cluster_spec(N, F / N)
    node = OmegaConf.to_container(OmegaConf.load(yaml), resolve=True)
    honest = rows()[F:]

    def run(h: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return build_attack(node, spec, 10)(h, _ctx(h, seed))

    ref = run(honest)
    out = run(honest.float().to(path))
    assert out.shape == (F, D) and out.device.type == path.type and out.dtype == torch.float32
    if not torch.equal(ref, run(honest, seed=1)):  # randomized: streams differ by device
        return
    fin = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(out).cpu(), fin)  # inf/nan attacks stay what they are
    scale = ref[fin].abs().max() if fin.any() else 1.0
    torch.testing.assert_close(out.double().cpu()[fin], ref[fin], rtol=1e-4, atol=1e-5 * scale)


# Small inputs each model accepts (as in test_models.py); unknown models get 3x16x16.
INPUTS = {"logreg": (1, 8, 8), "mlp": (1, 8, 8), "lenet": (1, 28, 28), "resnet20": (3, 8, 8)}


@pytest.mark.parametrize("path", [p for p in PATHS if p != "cpu-torch"], indirect=True)
@pytest.mark.parametrize("yaml", MODELS, ids=[p.stem for p in MODELS])
def test_vectorized_gradients_match_loop_on_every_path(yaml, path):
    if path.type == "cpu" and yaml.stem not in ("logreg", "mlp"):
        pytest.skip("CPU: tests/unit/models/test_models.py checks every model (seconds each here)")
    shape = INPUTS.get(yaml.stem, (3, 16, 16))
    torch.manual_seed(0)
    model = instantiate_component(OmegaConf.to_container(OmegaConf.load(yaml)), "model",
                                  input_shape=shape, num_classes=10).to(path)
    theta = flat_params(model)
    g = torch.Generator().manual_seed(2)
    X = torch.randn(3, 4, *shape, generator=g).to(path)
    Y = torch.randint(0, 10, (3, 4), generator=g).to(path)
    G, losses = make_grad_fn(model)(theta, X, Y)
    G_ref, l_ref = loop_grads(model, theta, X, Y)
    assert G.device.type == path.type and G.shape == (3, theta.numel())
    torch.testing.assert_close(G, G_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses, l_ref, rtol=1e-5, atol=1e-6)
