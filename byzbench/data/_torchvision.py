"""Load a whole torchvision image dataset into uint8 tensors (not an option itself).

The real torchvision classes read the raw files (IDX for MNIST/Fashion-MNIST, the
pickled batches for CIFAR-10); we keep their ``data``/``targets`` arrays and never use
their per-sample ``__getitem__`` (no DataLoader: batches are index gathers).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import Tensor

from byzbench import ConfigError, require
from byzbench.data._common import long_tail, normalize_uint8, random_subset
from byzbench.data.base import Dataset


def _open(cls: Any, root: str, train: bool, download: bool, folder: str, name: str) -> Any:
    try:
        return cls(root=root, train=train, download=download)
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError/URLError/OSError
        if download:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"dataset.root={root!r}: downloading {name} into {folder} failed ({first}); "
                "put the files there and set dataset.download=false"
            ) from None
        raise ConfigError(
            f"dataset.root={root!r}: {name} files missing or corrupted in {folder}; set "
            "dataset.download=true to fetch them"
        ) from None


def load_images(cls: Any, name: str, subdir: str, root: str, download: bool,
                generator: torch.Generator, max_train: int | None, max_test: int | None,
                mean: tuple[float, ...], std: tuple[float, ...], num_classes: int,
                test_long_tail: float = 1.0) -> Dataset:
    """Train and test splits of torchvision dataset ``cls`` as uint8 ``[N, C, H, W]``.

    Args:
        cls: the torchvision dataset class (MNIST, FashionMNIST, CIFAR10).
        name: dataset label for logs and errors.
        subdir: the folder under ``root`` torchvision reads (for the error message).
        root, download: as in torchvision.
        generator: CPU generator for the optional seeded subsets.
        max_train, max_test: keep a seeded random subset of this size (None: all).
        mean, std: per-channel normalization constants applied in ``prepare``.
        num_classes: classes.
        test_long_tail: beta in (0, 1]: the test split keeps the first
            ``floor(N_c beta^c)`` samples of class c in file order (``_common.long_tail``),
            as epfml's exp1 evaluates on a long-tailed test set; 1 keeps all.
    """
    require(isinstance(test_long_tail, (int, float)) and 0 < test_long_tail <= 1,
            "dataset.test_long_tail", test_long_tail, "a number in (0, 1] (1 = whole test set)")
    require(isinstance(download, bool), "dataset.download", download, "true or false")
    root = os.path.abspath(os.path.expanduser(str(root)))
    folder = os.path.join(root, subdir)
    parts: list[Tensor] = []
    for train, limit, param in ((True, max_train, "dataset.max_train"),
                                (False, max_test, "dataset.max_test")):
        ds = _open(cls, root, train, download, folder, name)
        x = torch.as_tensor(ds.data)
        if x.ndim == 3:  # MNIST-like [N, H, W] -> [N, 1, H, W]
            x = x.unsqueeze(1)
        else:  # CIFAR [N, H, W, C] (numpy HWC) -> [N, C, H, W]
            x = x.permute(0, 3, 1, 2)
        y = torch.as_tensor(ds.targets, dtype=torch.long)
        keep = random_subset(len(y), limit, generator, param)
        if keep is not None:
            x, y = x[keep], y[keep]
        if not train and test_long_tail < 1:
            kept = long_tail(torch.argsort(y, stable=True), y, float(test_long_tail))
            x, y = x[kept.sort().values], y[kept.sort().values]
        parts += [x.to(torch.uint8).contiguous(), y]
    return Dataset(
        x_train=parts[0], y_train=parts[1], x_test=parts[2], y_test=parts[3],
        num_classes=num_classes, name=name,
        prepare=functools.partial(normalize_uint8, mean=tuple(mean), std=tuple(std)),
    )
