"""Local LIBSVM-format files (a9a, covtype, w8a, ...) as dense tensors."""

from __future__ import annotations

import os

import numpy as np
import torch

from byzbench import ConfigError, require
from byzbench.data._common import stratified_split
from byzbench.data.base import Dataset


def _read(path: str, param: str, n_features: int | None):
    from sklearn.datasets import load_svmlight_file

    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise ConfigError(f"{param}={path!r} is invalid: no such file (download it from the "
                          "LIBSVM datasets page and point the option at it)")
    try:
        x, y = load_svmlight_file(path, n_features=n_features, dtype=np.float32)
    except ValueError as e:
        raise ConfigError(f"{param}={path!r} is invalid: not LIBSVM format "
                          f"({str(e).splitlines()[0]})") from None
    return x.toarray(), y


def build(generator: torch.Generator, path: str, test_path: str | None = None,
          test_frac: float = 0.2, task: str = "classification",
          standardize: bool = False) -> Dataset:
    """Read ``label idx:value ...`` lines (``sklearn.datasets.load_svmlight_file``) into
    dense float32 tensors.

    Classification labels are remapped to ``0..C-1`` in sorted order of the distinct
    values of the training file (a9a's -1/+1 -> 0/1; covtype's 1..7 -> 0..6); a test
    label absent from training is an error. Without ``test_path`` a seeded stratified
    split holds out ``round(test_frac * N_c)`` of each class (regression: a seeded
    random split). ``standardize`` rescales each feature to zero mean, unit variance
    with training statistics (useful for unscaled covtype; keep false for sparse
    binary a9a).

    Args:
        generator: CPU generator for the split.
        path: training file.
        test_path: optional test file (e.g. a9a.t); the feature count is shared.
        test_frac: held-out fraction when there is no test file.
        task: classification (labels -> classes) or regression (float targets).
        standardize: per-feature standardization.

    Reference: Chang & Lin, "LIBSVM: A library for support vector machines", ACM TIST
    2011 (format and the datasets page).
    """
    require(task in ("classification", "regression"), "dataset.task", task,
            "classification or regression")
    x, y = _read(path, "dataset.path", None)
    if test_path is not None:
        xt, yt = _read(test_path, "dataset.test_path", None)
        d = max(x.shape[1], xt.shape[1])  # a test file may lack the last feature indices
        x = np.pad(x, ((0, 0), (0, d - x.shape[1])))
        xt = np.pad(xt, ((0, 0), (0, d - xt.shape[1])))
    xs, xts = torch.from_numpy(x), None if test_path is None else torch.from_numpy(xt)
    if task == "classification":
        classes = np.unique(y)
        require(len(classes) >= 2, "dataset.path", path, "a file with at least 2 labels")
        ys = torch.from_numpy(np.searchsorted(classes, y)).long()
        if test_path is not None:
            unknown = np.setdiff1d(np.unique(yt), classes)
            require(len(unknown) == 0, "dataset.test_path", test_path,
                    f"labels must appear in the training file (unknown {unknown[:3].tolist()})")
            yts = torch.from_numpy(np.searchsorted(classes, yt)).long()
        num_classes = len(classes)
    else:
        ys = torch.from_numpy(y).float()
        yts = None if test_path is None else torch.from_numpy(yt).float()
        num_classes = 1
    if test_path is None:
        strata = ys if task == "classification" else torch.zeros(len(ys), dtype=torch.long)
        tr, te = stratified_split(strata, test_frac, generator)
        xs, xts, ys, yts = xs[tr], xs[te], ys[tr], ys[te]
    if standardize:
        mean, std = xs.mean(0), xs.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        xs, xts = (xs - mean) / std, (xts - mean) / std
    name = os.path.splitext(os.path.basename(str(path)))[0]
    return Dataset(x_train=xs.contiguous(), y_train=ys, x_test=xts.contiguous(), y_test=yts,
                   num_classes=num_classes, task=task, name=name)
