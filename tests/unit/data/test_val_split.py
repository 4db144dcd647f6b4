"""The validation split (``dataset.val_frac``): seeded, stratified, disjoint from the
training set and held out before the partition; the run logs it as split ``val``."""

from __future__ import annotations

import pytest
import torch
from conftest import conf_options
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from byzbench import ConfigError
from byzbench.build import build_experiment
from byzbench.data._common import hold_out_validation
from byzbench.data.base import Dataset
from byzbench.loop import train
from byzbench.run import CONF_DIR


def _data(task: str = "classification") -> Dataset:
    # Class sizes 40, 20, 10; row i of x_train is the value i (identifies the sample).
    y = torch.tensor([0] * 40 + [1] * 20 + [2] * 10)[torch.randperm(70, generator=_gen(9))]
    x = torch.arange(70, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    if task == "regression":
        y = y.float()
    return Dataset(x_train=x, y_train=y, x_test=x[:5], y_test=y[:5], num_classes=3, task=task)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_val_split_is_stratified_disjoint_and_complete():
    d = _data()
    v = hold_out_validation(d, 0.25, _gen(0))
    tr, va = v.x_train[:, 0].long(), v.x_val[:, 0].long()
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(70))
    # round(0.25 * 40) = 10, round(0.25 * 20) = 5, round(0.25 * 10) = 2 (2.5 rounds to even)
    assert torch.bincount(v.y_val).tolist() == [10, 5, 2]
    # labels travel with their samples
    assert torch.equal(v.y_train, d.y_train[tr]) and torch.equal(v.y_val, d.y_train[va])
    assert torch.equal(v.x_test, d.x_test)  # the test set is untouched


def test_val_split_is_seeded():
    d = _data()
    a, b = hold_out_validation(d, 0.25, _gen(0)), hold_out_validation(d, 0.25, _gen(0))
    c = hold_out_validation(d, 0.25, _gen(1))
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)


def test_val_split_regression_and_zero():
    v = hold_out_validation(_data("regression"), 0.2, _gen(0))
    assert len(v.y_val) == 14 and len(v.y_train) == 56
    assert set(v.x_train[:, 0].tolist()).isdisjoint(v.x_val[:, 0].tolist())
    d = _data()
    assert hold_out_validation(d, 0.0, _gen(0)) is d


@pytest.mark.parametrize("bad", [1.0, -0.1, "x"])
def test_bad_val_frac_is_one_line(bad):
    with pytest.raises(ConfigError, match=r"dataset.val_frac"):
        hold_out_validation(_data(), bad, _gen(0))


@pytest.mark.parametrize("path", conf_options("dataset"), ids=lambda p: p.stem)
def test_every_dataset_option_declares_val_frac(path):
    """So that ``dataset.val_frac=0.1`` works on any dataset without a ``+``."""
    assert OmegaConf.load(path).get("val_frac") == 0.0


def test_run_holds_out_val_before_partition_and_logs_it():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "dataset.val_frac=0.25", "rounds=2", "eval_every=1", "cluster.n_workers=5",
            "cluster.byz_frac=0.2", "batch_size=4", "progress=false", "model.hidden=[8]"])
    exp, info = build_experiment(cfg)
    n_val, n_train = info["dataset_val_size"], info["dataset_train_size"]
    # digits: 1797 - 359 test = 1438 training samples before the split
    assert n_val + n_train == 1438 and abs(n_val - 0.25 * 1438) <= 10
    # the partition covers the remaining training samples only
    assert int(exp.sampler.lens.sum()) == n_train and int(exp.sampler.table.max()) < n_train
    res = train(exp)
    assert 0.0 <= res.final["val_accuracy"] <= 1.0 and res.final["val_loss"] > 0
    val = [(t, m) for t, s, m, _ in exp.log.rows if s == "val"]
    assert val == [(t, m) for t in (0, 1, 2) for m in ("loss", "accuracy")]
