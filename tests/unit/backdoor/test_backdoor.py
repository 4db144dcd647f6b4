"""Backdoor threat model: triggers against hand-built inputs of every shape, the
poisoned batch, the ASR of a hand-built model, model replacement's identity under the
mean, Neurotoxin's mask by hand, every backdoor attack against every rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import conf_options
from hydra.utils import get_object
from omegaconf import OmegaConf
from torch import nn

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.mean import Mean
from byzbench.attacks.base import RoundContext
from byzbench.attacks.model_replacement import ModelReplacement
from byzbench.attacks.neurotoxin import Neurotoxin, least_used_mask
from byzbench.backdoor import triggers as T
from byzbench.backdoor.asr import AttackSuccessRate
from byzbench.backdoor.poison import Backdoor, TriggerSet
from byzbench.build import instantiate_component
from byzbench.data.base import Dataset
from byzbench.grads import flat_params

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf"
f64 = torch.float64


def test_pixel_trigger_on_8x8_digits_image():
    x = torch.zeros(1, 8, 8)
    out = T.pixel_trigger((1, 8, 8), 2, 5.0).apply(x)
    ref = torch.zeros(1, 8, 8)
    ref[0, 6:8, 6:8] = 5.0
    assert torch.equal(out, ref) and torch.equal(x, torch.zeros(1, 8, 8))


def test_pixel_trigger_on_28x28_mnist_with_margin_and_batch_dims():
    x = torch.full((2, 3, 1, 28, 28), -1.0)
    out = T.pixel_trigger((1, 28, 28), 5, 2.5, "bottom_right", margin=1).apply(x)
    ref = x.clone()
    ref[..., 0, 22:27, 22:27] = 2.5
    assert torch.equal(out, ref)


def test_pixel_trigger_on_32x32_cifar_per_channel_values():
    x = torch.ones(3, 32, 32)
    out = T.pixel_trigger((3, 32, 32), 3, torch.tensor([1.0, 2.0, 3.0]), "top_left").apply(x)
    ref = torch.ones(3, 32, 32)
    for c in range(3):
        ref[c, :3, :3] = c + 1.0
    assert torch.equal(out, ref)
    out = T.pixel_trigger((3, 32, 32), 2, 0.0, "top_right").apply(x)
    assert out[:, :2, 30:].abs().sum() == 0 and out.sum() == 3 * (32 * 32 - 4)


def test_pixel_trigger_on_1d_inputs_and_2d_images():
    x = torch.arange(64.0)
    end = T.pixel_trigger((64,), 4, -7.0).apply(x)
    assert torch.equal(end[60:], torch.full((4,), -7.0)) and torch.equal(end[:60], x[:60])
    start = T.pixel_trigger((64,), 3, 0.5, "top_left").apply(x)
    assert torch.equal(start[:3], torch.full((3,), 0.5)) and torch.equal(start[3:], x[3:])
    at = T.pixel_trigger((64,), 2, 9.0, [10]).apply(x)
    assert at[10] == at[11] == 9.0 and torch.equal(at[12:], x[12:]) and torch.equal(at[:10], x[:10])
    img = T.pixel_trigger((8, 8), 1, 4.0, "bottom_left").apply(torch.zeros(8, 8))
    assert img[7, 0] == 4.0 and img.sum() == 4.0


def test_trigger_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="attack.size"):
        T.pixel_trigger((1, 8, 8), 9, 1.0)
    with pytest.raises(ConfigError, match="attack.position"):
        T.pixel_trigger((1, 8, 8), 2, 1.0, "middle")
    with pytest.raises(ConfigError, match="attack.size"):
        T.dba_masks((1, 8, 8), 4, 4, 2)
    with pytest.raises(ConfigError, match="attack.trigger.pixel.sizes"):
        TriggerSet({"kind": "pixel", "pixel": {"sizes": 2}}, (64,), None)
    with pytest.raises(ConfigError, match="attack.trigger.kind"):
        TriggerSet({"kind": "square"}, (64,), None)
    with pytest.raises(ConfigError, match="attack.trigger.dba.position"):  # any block checked
        TriggerSet({"kind": "pixel", "dba": {"position": "top_left"}}, (64,), None)


def test_blended_trigger():
    tr = T.blended_trigger((1, 4, 4), 0.25, 0.0, 0.0)
    x = torch.full((1, 4, 4), 8.0)
    assert torch.equal(tr.apply(x), torch.full((1, 4, 4), 6.0))
    tr = T.blended_trigger((10,), 1.0, -1.0, 1.0, seed=3)
    k = tr.apply(torch.zeros(10))
    again = T.blended_trigger((10,), 1.0, -1.0, 1.0, 3).pattern
    assert (k.abs() <= 1).all() and torch.equal(k, again)


def test_dba_parts_mnist_layout_and_union():
    masks = T.dba_masks((1, 28, 28), 4, 4, 2)
    where = [torch.nonzero(m[0]).tolist() for m in masks]
    assert where[0] == [[0, c] for c in range(0, 4)]
    assert where[1] == [[0, c] for c in range(6, 10)]
    assert where[2] == [[3, c] for c in range(0, 4)]
    assert where[3] == [[3, c] for c in range(6, 10)]
    assert T.union(masks).sum() == 16
    one_d = T.dba_masks((20,), 3, 2, 1, shift=1)
    assert [torch.nonzero(m).flatten().tolist() for m in one_d] == [[1, 2], [4, 5], [7, 8]]
    ts = TriggerSet({"kind": "dba", "dba": {"parts": 2, "size": 2, "gap": 1, "value": 1.0}},
                    (1, 8, 8), None)
    rows = ts.rows(3).apply(torch.zeros(3, 1, 1, 8, 8))
    assert rows[0, 0, 0, 0, :2].sum() == 2 and rows[0].sum() == 2
    assert rows[1, 0, 0, 0, 3:5].sum() == 2 and rows[1].sum() == 2
    assert torch.equal(rows[2], rows[0])
    assert ts.full.apply(torch.zeros(1, 8, 8)).sum() == 4


def test_value_max_is_the_largest_model_input_per_channel():
    x = torch.zeros(5, 3, 2, 2, dtype=torch.uint8)
    x[1, 0, 0, 0], x[2, 1, 1, 1], x[3, 2, 0, 1] = 255, 100, 7
    data = Dataset(x, torch.zeros(5, dtype=torch.long), x, torch.zeros(5, dtype=torch.long), 10,
                   prepare=lambda v: v.float() / 255 * 2 - 1)
    lo, hi = T.input_range(data, chunk=2)
    torch.testing.assert_close(hi, torch.tensor([1.0, 100 / 255 * 2 - 1, 7 / 255 * 2 - 1]))
    assert torch.equal(lo, torch.full((3,), -1.0))


def test_transform_batch_poisons_the_first_fraction_of_each_row():
    b = Backdoor(trigger={"pixel": {"size": 1, "value": 9.0}}, target=6, poison_frac=0.5,
                 num_classes=10, input_shape=(4,))
    x = torch.zeros(2, 4, 4)
    y = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    x0, y0 = x.clone(), y.clone()
    xp, yp = b.transform_batch(x, y, 10)
    assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs untouched
    assert torch.equal(yp, torch.tensor([[6, 6, 2, 3], [6, 6, 6, 7]]))
    assert torch.equal(xp[:, :2, 3], torch.full((2, 2), 9.0)) and xp[:, 2:].abs().sum() == 0
    assert xp[:, :2, :3].abs().sum() == 0
    with pytest.raises(ConfigError, match="attack.target"):
        Backdoor(target=10, num_classes=10, input_shape=(4,))


def test_asr_of_a_hand_built_model():
    model = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]))
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [20, 0, 0, 0], [0, 1, 0, 0]])
    y = torch.tensor([0, 1, 2, 0, 1])
    data = Dataset(x, y, x, y, 3)
    asr = AttackSuccessRate(T.pixel_trigger((4,), 1, 10.0), target=2, chunk=2)
    theta = flat_params(model)
    # triggered: x3 = 10 -> class 2, except the sample with x0 = 20; the target-class
    # sample is not counted: 3 of 4.
    assert asr(model, theta, data, "test")["asr"].item() == pytest.approx(0.75)
    assert asr(model, theta, data, "train") == {}
    clean = AttackSuccessRate(T.pixel_trigger((4,), 1, 0.0), target=2)
    assert clean(model, theta, data, "test")["asr"].item() == 0.0


def _ctx(n, f, byz, prev=None):
    return RoundContext(t=1, n=n, f=f, f_declared=f, pipeline=Pipeline([], Mean(n, f)),
                        prev_aggregate=prev, byz_grads=byz)


@pytest.mark.parametrize("f", [1, 2])
def test_model_replacement_replaces_the_global_model_under_the_mean(f):
    g = torch.Generator().manual_seed(0)
    n, d, lr = 6, 7, 0.5
    theta = torch.randn(d, generator=g, dtype=f64)
    honest = torch.randn(n - f, d, generator=g, dtype=f64)
    honest -= honest.mean(0)  # benign updates cancel (the paper's assumption)
    X = torch.randn(f, d, generator=g, dtype=f64)  # the attackers' backdoored models
    attack = ModelReplacement(server_lr=lr, num_classes=10)
    byz = attack(honest, _ctx(n, f, theta - X))
    u = Mean(n, f)(torch.cat([honest, byz]))
    torch.testing.assert_close(theta - lr * u, X.mean(0), rtol=1e-12, atol=1e-12)
    # a fixed gamma is the paper's n / eta for one attacker
    fixed = ModelReplacement(gamma=n / lr, num_classes=10)(honest[:1], _ctx(n, 1, (theta - X)[:1]))
    torch.testing.assert_close(fixed, (theta - X)[:1] * n / lr)


def test_constrain_and_scale_stays_under_the_median_norm():
    from byzbench.attacks.constrain_scale import ConstrainScale

    honest = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 2.0]], dtype=f64)  # norms 5, 1, 2
    own = torch.tensor([[1.0, 0.0]], dtype=f64)
    out = ConstrainScale(num_classes=10)(honest, _ctx(4, 1, own))
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0]], dtype=f64))  # gamma 4, bound 2


def test_neurotoxin_mask_by_hand():
    prev = torch.tensor([3.0, -0.1, 0.5, -2.0, 0.0])
    assert least_used_mask(prev, 0.6, 5).tolist() == [0, 1, 1, 0, 1]
    assert least_used_mask(torch.ones(4), 0.5, 4).tolist() == [1, 1, 0, 0]  # ties: lower index
    assert least_used_mask(None, 0.5, 4) is None
    own = torch.tensor([[1.0, 2, 3, 4, 5]])
    nt = Neurotoxin(mask_ratio=0.6, num_classes=10)
    assert nt(own, _ctx(2, 1, own, prev)).tolist() == [[0, 2, 3, 0, 5]]
    assert nt(own, _ctx(2, 1, own, None)).tolist() == own.tolist()  # round 0: no estimate
    nb = Neurotoxin(mask_ratio=0.6, norm_bound=1.0, gamma=2.0, num_classes=10)
    out = nb(own, _ctx(2, 1, own, prev))
    torch.testing.assert_close(out, torch.tensor([[0, 2, 3, 0, 5]]) / 38 ** 0.5)


BACKDOORS = [p for p in conf_options("attack")
             if issubclass(get_object(OmegaConf.load(p)["_target_"]), Backdoor)]
RULES = conf_options("agg")


def test_backdoors_found():
    assert {p.stem for p in BACKDOORS} >= {"badnets", "blended", "dba", "model_replacement",
                                           "constrain_scale", "neurotoxin"}


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.stem)
@pytest.mark.parametrize("path", BACKDOORS, ids=lambda p: p.stem)
def test_every_backdoor_against_every_rule(path, rule):
    n, f, d = 15, 3, 20
    node = OmegaConf.to_container(OmegaConf.load(path))
    node["trigger"]["pixel"]["size"] = 2
    node["trigger"]["dba"].update(size=2, gap=1)
    attack = instantiate_component(node, "attack", n=n, f=f, num_classes=10,
                                   input_shape=(1, 8, 8),
                                   input_range=lambda: (torch.tensor([-1.0]), torch.tensor([3.0])))
    x, y = attack.transform_batch(torch.zeros(f, 8, 1, 8, 8), torch.zeros(f, 8, dtype=torch.long),
                                  10)
    assert (y[:, :3] == 6).all() and (y[:, 3:] == 0).all() and x[:, :3].abs().sum() > 0
    assert x[:, 3:].abs().sum() == 0
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(n - f, d, generator=g, dtype=f64)
    agg = instantiate_component(OmegaConf.load(rule), f"agg={rule.stem}", n=n, f=f,
                                generator=torch.Generator().manual_seed(1))
    ctx = RoundContext(t=2, n=n, f=f, f_declared=f, pipeline=Pipeline([], agg),
                       prev_aggregate=honest.mean(0), byz_grads=honest[:f] + 1.0)
    byz = attack(honest, ctx)
    assert byz.shape == (f, d) and torch.isfinite(byz).all()
    out = agg(torch.cat([honest, byz]))
    assert out.shape == (d,) and torch.isfinite(out).all()
    assert len(attack.evaluators()) == 1


def test_worst_case_asr_skips_attacks_that_log_none():
    import pandas as pd

    from byzbench.report.tables import higher_is_better, is_rate, worst_case

    final = pd.DataFrame({"group": "g", "rule": "mean", "attack": ["none", "badnets", "dba"],
                          "mean": [float("nan"), 0.9, 0.4], "sd": 0.0, "n_seeds": 3,
                          "n_failed": 0, "n_diverged": 0})
    w = worst_case(final, "test_asr")
    assert w["worst_attack"].tolist() == ["badnets"] and w["mean"].tolist() == [0.9]
    assert is_rate("test_asr") and not higher_is_better("test_asr")
