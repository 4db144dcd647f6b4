"""Properties over every conf/attack YAML (shape, dtype, f = 0, determinism) and
hand-computed values for none / sign_flip / gaussian."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from conftest import conf_options
from omegaconf import OmegaConf

from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import RoundContext

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf" / "attack"
YAMLS = conf_options("attack")
N, F, D, C = 9, 3, 6, 10  # 10 classes: the backdoors target label 6 (FLPoison)


def instantiate_attack(cfg: dict, n: int = N, f: int = F):
    """Instantiate an attack config like build.py does (``tune`` popped, injection by
    signature)."""
    cfg = dict(cfg)
    tune = cfg.pop("tune", None)
    cfg.pop("server_randomness", None)
    inject = dict(n=n, f=f, f_declared=f, num_classes=C)
    try:
        from byzbench.build import instantiate_component
    except ImportError:  # build.py not there yet
        from hydra.utils import get_object, instantiate

        params = inspect.signature(get_object(cfg["_target_"])).parameters
        attack = instantiate(cfg, **{k: v for k, v in inject.items() if k in params})
    else:
        attack = instantiate_component(cfg, "attack", **inject)
    if tune:
        from byzbench.attacks.tuning import Tuned

        attack = Tuned(attack, **(tune if isinstance(tune, dict) else {}))
    return attack


def load(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def median_rule(x: torch.Tensor) -> torch.Tensor:
    return x.median(dim=0).values


def make_ctx(honest: torch.Tensor, f: int, t: int = 0, seed: int = 0, rule=median_rule, **kw):
    g = torch.Generator().manual_seed(seed)
    byz = kw.pop("byz_grads", None)
    if byz is None and f > 0:
        byz = honest[:f] + 0.5
    return RoundContext(t=t, n=honest.shape[0] + f, f=f, f_declared=f,
                        pipeline=Pipeline([], rule), prev_aggregate=honest.mean(0) * 0.9,
                        byz_grads=byz if f > 0 else None, generator=g, **kw)


def honest_grads(h: int = N - F, d: int = D, dtype=torch.float32, seed: int = 1):
    return torch.randn(h, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
                       ).to(dtype) + 0.3


def test_every_attack_has_a_yaml_and_header():
    assert len(YAMLS) >= 6
    for p in YAMLS:
        text = p.read_text()
        assert text.startswith("#"), f"{p.name} needs a header comment"
        cfg = load(p)
        mod = cfg["_target_"].split(".")[2]
        assert mod == p.stem or p.stem == "directional_deviation", p.name


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_f0_determinism(path, dtype):
    cfg = load(path)
    honest = honest_grads(dtype=dtype)
    for tune in (False, True):
        if tune and "tune" not in cfg:
            continue
        c = {**cfg, "tune": {"budget": 6} if tune else False}
        outs = []
        for _ in range(2):
            attack = instantiate_attack(c)
            ctx = make_ctx(honest, F, t=3)
            outs.append(attack(honest, ctx))
        b = outs[0]
        assert b.shape == (F, D) and b.dtype == dtype and b.device == honest.device
        assert torch.equal(outs[0], outs[1]) or torch.isnan(b).all(), "not deterministic"
        attack = instantiate_attack(c, f=0)
        b0 = attack(honest_grads(h=N, dtype=dtype), make_ctx(honest_grads(h=N, dtype=dtype), 0))
        assert b0.shape == (0, D) and b0.dtype == dtype


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_does_not_modify_inputs(path):
    honest = honest_grads()
    before = honest.clone()
    ctx = make_ctx(honest, F, t=1)
    byz_before = ctx.byz_grads.clone()
    instantiate_attack(load(path))(honest, ctx)
    assert torch.equal(honest, before) and torch.equal(ctx.byz_grads, byz_before)


def test_none_returns_own_gradients():
    from byzbench.attacks.none import NoAttack

    honest = honest_grads()
    own = torch.arange(F * D, dtype=torch.float32).reshape(F, D)
    a = NoAttack()
    assert a.local is True
    assert torch.equal(a(honest, make_ctx(honest, F, byz_grads=own)), own)


def test_sign_flip_hand_computed():
    from byzbench.attacks.sign_flip import SignFlip

    honest = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    # mean = ((1+3)/2, (-2+4)/2) = (2, 1) -> b = (-2, -1) on both rows
    b = SignFlip()(honest, make_ctx(honest, 2))
    assert torch.equal(b, torch.tensor([[-2.0, -1.0], [-2.0, -1.0]]))


def test_gaussian_uses_ctx_generator():
    from byzbench.attacks.gaussian import Gaussian

    honest = honest_grads()
    b = Gaussian(mean=1.0, std=3.0)(honest, make_ctx(honest, F, seed=7))
    z = torch.randn(F, D, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(b, 1.0 + 3.0 * z)
    assert not torch.equal(b[0], b[1])  # per-worker draws
