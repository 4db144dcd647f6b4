"""Every option of conf/dataset builds what its YAML says; prepared data pickles."""

from __future__ import annotations

import pickle

import pytest
import torch

from .helpers import DATA_DIR, build_yaml, gen, yaml_kwargs


@pytest.mark.parametrize("path", sorted(DATA_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_yaml_matches_its_builder(path):
    # Every key is a parameter of the target, and the builder takes the generator.
    import inspect

    from hydra.utils import get_object

    cfg = yaml_kwargs(path)
    sig = inspect.signature(get_object(cfg.pop("_target_")))
    sig.bind(generator=gen(), **cfg)
    assert path.read_text().startswith("#")


def test_prepare_is_picklable():
    d = build_yaml("digits")
    f = pickle.loads(pickle.dumps(d.prepare))
    assert torch.equal(f(d.x_test[:3]), d.x_test[:3])
