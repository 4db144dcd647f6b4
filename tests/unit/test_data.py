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
from byzbench.data._fake import write_fake_mnist
from byzbench.data.base import Dataset

DATA_DIR = pathlib.Path(byzbench.__file__).parent / "conf" / "dataset"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def yaml_kwargs(path: pathlib.Path) -> dict:
    """A dataset yaml as its builder's keyword arguments: every dataset yaml declares
    ``val_frac``, which build.py handles (``hold_out_validation``), not the builder."""
    cfg = OmegaConf.to_container(OmegaConf.load(path))
    assert cfg.pop("val_frac") == 0.0
    return cfg


def build_yaml(name: str, **override) -> Dataset:
    cfg = yaml_kwargs(DATA_DIR / f"{name}.yaml")
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

    cfg = yaml_kwargs(path)
    sig = inspect.signature(get_object(cfg.pop("_target_")))
    sig.bind(generator=gen(), **cfg)
    assert path.read_text().startswith("#")


def test_prepare_is_picklable():
    d = build_yaml("digits")
    f = pickle.loads(pickle.dumps(d.prepare))
    assert torch.equal(f(d.x_test[:3]), d.x_test[:3])


# ---------------------------------------------------------------- synthetic convex tasks


def test_synthetic_linreg_exact_optimum():
    from byzbench.data.synthetic_linreg import build
    from byzbench.models.logreg import build as logreg

    d = build(gen(), n_samples=300, n_test=50, dim=5, cond=100.0, noise=0.3)
    assert d.task == "regression" and d.num_classes == 1 and d.input_shape == (5,)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.float32
    # Normal equations in float64: A^T A beta = A^T y with A = [X, 1].
    x, y = d.x_train.double(), d.y_train.double()
    a = torch.cat([x, torch.ones(300, 1, dtype=torch.float64)], 1)
    beta = torch.linalg.solve(a.T @ a, a.T @ y)
    assert abs(((a @ beta - y) ** 2).mean().item() - d.f_star) < 1e-10
    # The linear model at beta attains f*, and the loss is larger anywhere else.
    model = logreg(d.input_shape, 1).double()
    with torch.no_grad():
        model.linear.weight.copy_(beta[:5].view(1, 5))
        model.linear.bias.copy_(beta[5:])
    mse = lambda m: torch.nn.functional.mse_loss(m(x).squeeze(1), y).item()  # noqa: E731
    assert abs(mse(model) - d.f_star) < 1e-10
    with torch.no_grad():
        model.linear.bias.add_(0.1)
    # Moving the intercept by 0.1 adds exactly 0.1^2 (residuals have zero mean at the optimum).
    assert abs(mse(model) - d.f_star - 0.01) < 1e-10
    # noise^2 (N - d - 1) / N = 0.09 * 294 / 300 = 0.0882 is f*'s expectation.
    assert 0.06 < d.f_star < 0.12


def test_synthetic_linreg_matches_lbfgs_optimum():
    # Cross-check with the run's own full-batch L-BFGS (byzbench.optimum).
    optimum = pytest.importorskip("byzbench.optimum")
    from byzbench.data.synthetic_linreg import build
    from byzbench.grads import flat_params
    from byzbench.models.logreg import build as logreg

    d = build(gen(), n_samples=200, n_test=10, dim=5)
    model = logreg(d.input_shape, 1)
    assert abs(optimum.full_batch_optimum(model, flat_params(model), d) - d.f_star) < 1e-7


def test_synthetic_condition_number():
    from byzbench.data._synthetic import gaussian_features

    # Sample covariance of 20000 rows approaches Sigma with eigenvalues 1 .. 1/50.
    x = gaussian_features(20000, 4, 50.0, gen())
    ev = torch.linalg.eigvalsh(x.T @ x / 20000)
    assert abs(ev.max().item() - 1.0) < 0.05 and abs(ev.min().item() - 1 / 50) < 0.002


@pytest.mark.parametrize("name", ["synthetic_linreg", "synthetic_logreg"])
def test_synthetic_deterministic(name):
    a, b, c = build_yaml(name), build_yaml(name), None
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    cfg = yaml_kwargs(DATA_DIR / f"{name}.yaml")
    c = instantiate_component(cfg, "dataset", generator=gen(7))
    assert not torch.equal(a.x_train, c.x_train)


def test_synthetic_logreg_labels_follow_planted_model():
    from byzbench.data.synthetic_logreg import build

    d = build(gen(), n_samples=4000, n_test=10, dim=3, cond=1.0, noise=1.0, weight_norm=2.0)
    assert d.num_classes == 2 and d.task == "classification" and d.f_star is None
    assert set(d.y_train.unique().tolist()) == {0, 1}
    # MLE of the logistic model recovers w* (up to sampling error): fit with sklearn.
    from sklearn.linear_model import LogisticRegression

    w = LogisticRegression(C=1e6, max_iter=1000).fit(d.x_train, d.y_train).coef_
    assert abs(float((w**2).sum()) ** 0.5 - 2.0) < 0.3  # ||w_hat|| ~ ||w*|| = 2 / noise


def test_synthetic_bad_params():
    from byzbench.data import synthetic_linreg, synthetic_logreg

    with pytest.raises(ConfigError, match="dataset.cond"):
        synthetic_linreg.build(gen(), cond=0.5)
    with pytest.raises(ConfigError, match="dataset.noise"):
        synthetic_logreg.build(gen(), noise=0.0)


# ------------------------------------------------- torchvision datasets from fake raw files


def fake_mnist(root: pathlib.Path, folder: str, n_train: int = 12, n_test: int = 5):
    files = write_fake_mnist(root, folder, n_train, n_test, seed=11)
    return ({s: x for s, (x, _) in files.items()}, {s: y for s, (_, y) in files.items()})


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


# ----------------------------------------------------------------------------- libsvm


LIBSVM_TRAIN = """+1 1:0.5 3:1
-1 2:2.0
+1 1:1.5 2:-1 3:0.25
-1 3:4
+1 1:1
-1 2:1
+1 1:2
-1 2:3
+1 1:3
-1 2:5
"""


def test_libsvm_parses_and_remaps_labels(tmp_path):
    from byzbench.data.libsvm import build

    (tmp_path / "a.txt").write_text(LIBSVM_TRAIN)
    (tmp_path / "a.t").write_text("-1 1:7\n+1 4:2\n")  # test has a 4th feature
    d = build(gen(), path=str(tmp_path / "a.txt"), test_path=str(tmp_path / "a.t"))
    # Labels -1/+1 -> 0/1 (sorted order); feature count widened to the test file's 4.
    assert d.num_classes == 2 and d.input_shape == (4,)
    assert d.y_train.tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1, 0] and d.y_test.tolist() == [0, 1]
    assert d.x_train[2].tolist() == [1.5, -1.0, 0.25, 0.0]
    assert d.x_test.tolist() == [[7.0, 0, 0, 0], [0, 0, 0, 2.0]]
    assert d.x_train.dtype == torch.float32 and d.name == "a"


def test_libsvm_seeded_split_and_standardize(tmp_path):
    from byzbench.data.libsvm import build

    (tmp_path / "a.txt").write_text(LIBSVM_TRAIN)
    d = build(gen(), path=str(tmp_path / "a.txt"), test_frac=0.2, standardize=True)
    # 5 samples per class, round(0.2 * 5) = 1 of each held out.
    assert len(d.y_test) == 2 and sorted(d.y_test.tolist()) == [0, 1]
    assert d.x_train.mean(0).abs().max() < 1e-6
    r = build(gen(), path=str(tmp_path / "a.txt"), task="regression")
    assert r.task == "regression" and r.num_classes == 1 and r.y_train.dtype == torch.float32
    assert set(r.y_train.tolist()) <= {-1.0, 1.0}


def test_libsvm_missing_file_one_line(tmp_path):
    from byzbench.data.libsvm import build

    with pytest.raises(ConfigError, match="dataset.path") as e:
        build(gen(), path=str(tmp_path / "nope"))
    assert "\n" not in str(e.value) and str(tmp_path / "nope") in str(e.value)


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
