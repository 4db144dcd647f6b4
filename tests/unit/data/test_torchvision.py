"""MNIST-like and CIFAR-10 from fake files: parsing, seeded subsets, normalization,
long-tailed test split, missing files in one line, download by default."""

from __future__ import annotations

import pathlib
import pickle

import pytest
import torch
from omegaconf import OmegaConf

from byzbench import ConfigError
from byzbench.data._fake import write_fake_mnist

from .helpers import DATA_DIR, build_yaml, gen, yaml_kwargs


def fake_mnist(root: pathlib.Path, folder: str, n_train: int = 12, n_test: int = 5):
    files = write_fake_mnist(root, folder, n_train, n_test, seed=11)
    return ({s: x for s, (x, _) in files.items()}, {s: y for s, (_, y) in files.items()})


def fake_cifar(root: pathlib.Path, per_batch: int = 4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = gen(12)
    data = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x = torch.randint(0, 256, (per_batch, 3072), generator=g, dtype=torch.uint8).numpy()
        labels = [(i + j) % 10 for j in range(per_batch)]
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": x, "labels": labels}, fh)
        data[name] = (x, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)]}, fh)
    return data


@pytest.fixture
def cifar_without_md5(monkeypatch):
    """torchvision's CIFAR10 checks each file's md5 against the real archive; fake files
    cannot match. Blank the checksums for this test only (check_integrity(path, None)
    is then a plain existence check); everything else runs the real loading code."""
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[f, None] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[f, None] for f, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": None})


@pytest.mark.parametrize("name, folder, mean, std", [
    ("mnist", "MNIST", 0.1307, 0.3081),
    ("fashion_mnist", "FashionMNIST", 0.2860, 0.3530),
])
def test_mnist_like_from_fake_idx_files(tmp_path, name, folder, mean, std):
    xs, ys = fake_mnist(tmp_path, folder)
    d = build_yaml(name, root=str(tmp_path), download=False)
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_train.dtype == torch.uint8
    assert torch.equal(d.x_train[:, 0], xs["train"]) and torch.equal(d.y_test, ys["t10k"])
    assert d.y_train.dtype == torch.long and d.num_classes == 10 and d.name == name
    # prepare: pixel 0 -> (0 - mean) / std, pixel 255 -> (1 - mean) / std.
    px = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2)
    out = d.prepare(px)
    assert out.dtype == torch.float32
    assert torch.allclose(out.flatten(), torch.tensor([-mean / std, (1 - mean) / std]))
    f = pickle.loads(pickle.dumps(d.prepare))
    assert torch.equal(f(d.x_test), d.prepare(d.x_test))


def test_mnist_seeded_subsets(tmp_path):
    xs, _ = fake_mnist(tmp_path, "MNIST")
    d = build_yaml("mnist", root=str(tmp_path), download=False, max_train=4, max_test=100)
    assert len(d.y_train) == 4 and len(d.y_test) == 5  # max_test above N keeps all
    rows = {bytes(r.numpy()) for r in xs["train"]}
    assert all(bytes(r[0].numpy()) in rows for r in d.x_train)


def test_cifar10_from_fake_pickled_batches(tmp_path, cifar_without_md5):
    raw = fake_cifar(tmp_path)
    d = build_yaml("cifar10", root=str(tmp_path), download=False)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.x_train.dtype == torch.uint8 and d.input_shape == (3, 32, 32)
    # CIFAR rows are 1024 R, then 1024 G, then 1024 B values in row-major 32x32 order.
    x0, labels0 = raw["data_batch_1"]
    assert torch.equal(d.x_train[0], torch.from_numpy(x0[0]).view(3, 32, 32))
    assert d.y_train[:4].tolist() == labels0
    assert torch.equal(d.x_test.reshape(4, -1), torch.from_numpy(raw["test_batch"][0]))
    # Channel-wise normalization: a pixel of 255 in channel c maps to (1 - mean_c) / std_c.
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    out = d.prepare(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten()
    assert torch.allclose(out, torch.tensor([(1 - m) / s for m, s in zip(mean, std)]))


@pytest.mark.parametrize("name, folder", [
    ("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"),
    ("cifar10", "cifar-10-batches-py"),
])
def test_missing_files_one_line_error(tmp_path, name, folder):
    from hydra.utils import get_object

    cfg = yaml_kwargs(DATA_DIR / f"{name}.yaml")
    builder = get_object(cfg["_target_"])
    with pytest.raises(ConfigError) as e:
        builder(gen(), root=str(tmp_path), download=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / folder) in msg and "dataset.download=true" in msg


def test_torchvision_yamls_download_by_default():
    for name in ("mnist", "fashion_mnist", "cifar10"):
        assert OmegaConf.load(DATA_DIR / f"{name}.yaml").download is True


def test_mnist_long_tailed_test_split(tmp_path):
    # 50 test samples, labels j % 10 -> 5 per class in file order; beta = 0.5 keeps
    # floor(5 * 0.5^c) = 5, 2, 1, 0, ... of class c: the first ones in file order.
    fake_mnist(tmp_path, "MNIST", n_train=12, n_test=50)
    d = build_yaml("mnist", root=str(tmp_path), download=False, test_long_tail=0.5)
    assert torch.bincount(d.y_test, minlength=10).tolist() == [5, 2, 1, 0, 0, 0, 0, 0, 0, 0]
    assert d.y_test.tolist() == [0, 1, 2, 0, 1, 0, 0, 0]  # file order kept
    assert len(d.y_train) == 12  # training split untouched
    with pytest.raises(ConfigError, match="dataset.test_long_tail"):
        build_yaml("mnist", root=str(tmp_path), download=False, test_long_tail=0.0)


def test_cifar10_normalization_constants(tmp_path, cifar_without_md5):
    fake_cifar(tmp_path)
    d = build_yaml("cifar10", root=str(tmp_path), download=False, std=[0.2023, 0.1994, 0.2010])
    px = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    want = (1 - torch.tensor([0.4914, 0.4822, 0.4465])) / torch.tensor([0.2023, 0.1994, 0.2010])
    assert torch.allclose(d.prepare(px).flatten(), want)
    with pytest.raises(ConfigError, match="dataset.std"):
        build_yaml("cifar10", root=str(tmp_path), download=False, std=[1.0, 2.0])
