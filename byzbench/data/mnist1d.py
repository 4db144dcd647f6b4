"""MNIST-1D (Greydanus, 2020): procedurally generated 1-D digits, offline."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from byzbench import ConfigError, require
from byzbench.data.base import Dataset

# The package's published arguments (mnist1d.data.get_dataset_args): the benchmark's
# 4000 train / 1000 test sequences of length 40.
PUBLISHED_SAMPLES = 5000
PUBLISHED_SEED = 42


def generate(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """``mnist1d.data.make_dataset`` at the package's published arguments, with
    ``num_samples`` and ``seed`` set; the package's global ``numpy`` / ``random``
    seeding is undone afterwards (no side effect on the caller's random state)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ConfigError("dataset=mnist1d needs the mnist1d package (pip install mnist1d)") \
            from e
    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def _cached(root: str, num_samples: int, seed: int) -> dict[str, np.ndarray]:
    path = Path(root) / "mnist1d" / f"mnist1d_n{num_samples}_seed{seed}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    d = generate(num_samples, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **d)
        tmp.replace(path)  # atomic: parallel runs never read a half-written file
    except OSError:
        pass  # read-only data root: use the generated arrays without caching
    return d


def build(generator: torch.Generator, root: str = "data",
          num_samples: int = PUBLISHED_SAMPLES, seed: int = PUBLISHED_SEED,
          cache: bool = True) -> Dataset:
    """MNIST-1D: each of the 10 digit templates (12 points) padded, translated, scaled,
    sheared, with correlated and i.i.d. noise, and resampled to 40 points, by the
    ``mnist1d`` package's own ``make_dataset`` at its published arguments
    (``get_dataset_args``: 5000 samples, train split 0.8, seed 42; standardized to mean 0,
    std 1 over the whole set by the generator). Inputs ``[N, 40]`` float32, labels 0..9,
    balanced (``num_samples // 10`` per class); the package's own train/test split
    (first 80 % of its shuffled order). Generated in about a second, no download; cached
    in ``root/mnist1d/`` (``cache: false`` regenerates).

    Args:
        generator: unused (the split and noise come from the package's seed).
        root: data root holding the cache.
        num_samples: total sequences (train + test), >= 20; the published set is 5000.
        seed: the generator's seed (published: 42).
        cache: read/write the ``.npz`` cache.

    Published test accuracies (Greydanus 2020, README of greydanus/mnist1d): logistic
    regression 32 %, MLP 68 %, CNN 94 % (``model=logreg``, ``model=mnist1d/mlp``,
    ``model=cnn1d``).

    Reference: S. Greydanus, "Scaling Down Deep Learning" (MNIST-1D), arXiv:2011.14439
    (2020); PyPI package ``mnist1d``.
    """
    del generator
    require(isinstance(num_samples, int) and num_samples >= 20, "dataset.num_samples",
            num_samples, "an integer >= 20 (2 per class)")
    d = _cached(root, num_samples, seed) if cache else generate(num_samples, seed)
    return Dataset(
        x_train=torch.as_tensor(d["x"], dtype=torch.float32).contiguous(),
        y_train=torch.as_tensor(d["y"], dtype=torch.long),
        x_test=torch.as_tensor(d["x_test"], dtype=torch.float32).contiguous(),
        y_test=torch.as_tensor(d["y_test"], dtype=torch.long),
        num_classes=10,
        name="mnist1d",
    )
