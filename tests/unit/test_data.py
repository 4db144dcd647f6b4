"""Dataset builders: shapes, dtypes, seeded splits, normalization, picklable prepare."""

from __future__ import annotations

import pathlib
import pickle

import pytest
import torch
from omegaconf import OmegaConf

import byzbench
from byzbench import ConfigError
from byzbench.build import instantiate_component
from byzbench.data.base import Dataset

DATA_DIR = pathlib.Path(byzbench.__file__).parent / "conf" / "dataset"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build_yaml(name: str, **override) -> Dataset:
    cfg = OmegaConf.to_container(OmegaConf.load(DATA_DIR / f"{name}.yaml"))
    cfg.update(override)
    return instantiate_component(cfg, "dataset", generator=gen())


def test_digits_default_split_shapes_and_standardization():
    d = build_yaml("digits")
    # 1797 samples; per class round(0.2 * N_c) held out. Class sizes are
    # 178,182,177,183,181,182,181,179,174,180 -> 36,36,35,37,36,36,36,36,35,36 = 359 test.
    assert d.x_train.shape == (1797 - 359, 64) and d.x_test.shape == (359, 64)
    assert d.input_shape == (64,) and d.num_classes == 10 and d.task == "classification"
    per_class = torch.tensor([36, 36, 35, 37, 36, 36, 36, 36, 35, 36])
    assert torch.equal(torch.bincount(d.y_test), per_class)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.long
    # Standardized with training statistics: per-pixel mean 0, std 1 (or 0 for blank pixels).
    assert d.x_train.mean(0).abs().max() < 1e-5
    std = d.x_train.std(0)
    assert torch.all(((std - 1).abs() < 1e-4) | (std < 1e-6))


def test_digits_image_layout_and_determinism():
    a = build_yaml("digits", flatten=False)
    b = build_yaml("digits")
    assert a.input_shape == (1, 8, 8)
    assert torch.equal(a.x_train.reshape(-1, 64), b.x_train)
    c = instantiate_component({"_target_": "byzbench.data.digits.build"}, "dataset",
                              generator=gen(1))
    assert not torch.equal(c.y_train, b.y_train)  # another seed, another split


def test_stratified_split_disjoint_complete_per_class():
    from byzbench.data._common import stratified_split

    # Class sizes 10, 5, 1: round(0.2 * 10) = 2, round(0.2 * 5) = 1, round(0.2 * 1) = 0 test.
    y = torch.tensor([0] * 10 + [1] * 5 + [2])[torch.randperm(16, generator=gen(3))]
    tr, te = stratified_split(y, 0.2, gen())
    assert torch.equal(torch.cat([tr, te]).sort().values, torch.arange(16))
    assert torch.equal(torch.bincount(y[te], minlength=3), torch.tensor([2, 1, 0]))


def test_digits_bad_test_frac():
    from byzbench.data.digits import build

    with pytest.raises(ConfigError, match="dataset.test_frac") as e:
        build(gen(), test_frac=1.5)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("path", sorted(DATA_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_yaml_matches_its_builder(path):
    # Every key is a parameter of the target, and the builder takes the generator.
    import inspect

    from hydra.utils import get_object

    cfg = OmegaConf.to_container(OmegaConf.load(path))
    sig = inspect.signature(get_object(cfg.pop("_target_")))
    sig.bind(generator=gen(), **cfg)
    assert path.read_text().startswith("#")


def test_prepare_is_picklable():
    d = build_yaml("digits")
    f = pickle.loads(pickle.dumps(d.prepare))
    assert torch.equal(f(d.x_test[:3]), d.x_test[:3])
