"""Helpers shared by the dataset builders and the partitions (not options themselves)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from byzbench import ConfigError, require
from byzbench.data.base import Dataset


def numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded from ``generator`` (for draws torch lacks, e.g. a
    Dirichlet with tiny concentration); same torch seed -> same numpy stream."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def stratified_split(
    labels: Tensor, test_frac: float, generator: torch.Generator,
    param: str = "dataset.test_frac",
) -> tuple[Tensor, Tensor]:
    """Seeded stratified split: ``round(test_frac * N_c)`` test samples of each class c.

    Args:
        labels: ``[N]`` int64 class labels.
        test_frac: fraction in (0, 1) of each class held out.
        generator: CPU generator for the per-class shuffles.
        param: the config key named in the error for a bad fraction.

    Returns:
        ``(train_idx, test_idx)``, each sorted ascending.
    """
    require(0.0 < test_frac < 1.0, param, test_frac, "a fraction in (0, 1)")
    train, test = [], []
    for c in torch.unique(labels).tolist():  # once at build time, a few classes
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        k = int(round(test_frac * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def hold_out_validation(data: Dataset, val_frac: float,
                        generator: torch.Generator) -> Dataset:
    """Move a seeded ``val_frac`` of the training set into ``x_val, y_val`` (before the
    partition, so no worker ever trains on it); the test set is untouched.

    Classification: stratified (``round(val_frac * N_c)`` samples of each class c, as
    ``stratified_split``); regression: a uniform random subset of ``round(val_frac * N)``.
    ``val_frac = 0`` returns ``data`` unchanged (no validation split).
    """
    require(isinstance(val_frac, (int, float)) and 0.0 <= val_frac < 1.0, "dataset.val_frac",
            val_frac, "a fraction in [0, 1) (0: no validation split)")
    if val_frac == 0:
        return data
    y = data.y_train
    if data.task == "classification":
        train, val = stratified_split(y.cpu(), val_frac, generator, "dataset.val_frac")
    else:
        perm = torch.randperm(len(y), generator=generator)
        k = int(round(val_frac * len(y)))
        train, val = perm[k:].sort().values, perm[:k].sort().values
    require(len(val) >= 1 and len(train) >= 1, "dataset.val_frac", val_frac,
            f"a fraction leaving at least one validation and one training sample of {len(y)}")
    train, val = train.to(y.device), val.to(y.device)
    return replace(data, x_train=data.x_train[train], y_train=y[train],
                   x_val=data.x_train[val], y_val=y[val])


def random_subset(n_total: int, limit: int | None, generator: torch.Generator,
                  param: str) -> Tensor | None:
    """Seeded indices of ``limit`` samples out of ``n_total`` (None: keep all)."""
    if limit is None:
        return None
    require(isinstance(limit, int) and limit >= 1, param, limit, "null or a positive integer")
    if limit >= n_total:
        return None
    return torch.randperm(n_total, generator=generator)[:limit].sort().values


def normalize_uint8(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x / 255 - mean_c) / std_c`` per channel c for uint8 images ``[..., C, H, W]``.

    Top-level (picklable through functools.partial) so runs launched by joblib or
    submitit can ship the dataset; elementwise, so it works on any leading dims.
    """
    # In place on the one float copy (same operations in the same order, so the same
    # numbers); one channel uses Python scalars (no per-call constant tensors).
    y = x.to(torch.float32, copy=True).div_(255.0)
    if len(mean) == 1 and len(std) == 1:
        return y.sub_(mean[0]).div_(std[0])
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return y.sub_(m).div_(s)


def group_by_owner(owner: Tensor, n_workers: int) -> list[Tensor]:
    """Indices of the samples each worker owns, ``owner [N]`` -> n ``LongTensor`` shards.

    One stable sort instead of a loop over workers; raises ConfigError when a worker
    ends up with no sample (the run needs every worker to draw minibatches).
    """
    order = torch.argsort(owner, stable=True)
    counts = torch.bincount(owner, minlength=n_workers)
    if int(counts.min()) < 1:
        empty = int((counts == 0).sum())
        raise ConfigError(
            f"partition gives {empty} of n_workers={n_workers} workers no sample "
            f"({len(owner)} training samples): use fewer workers or a less skewed partition"
        )
    return list(torch.split(order, counts.tolist()))


def balanced_owner(m: int, n_workers: int) -> Tensor:
    """Owner of position i in a run of m items split into n contiguous, near-equal
    chunks: ``floor(i * n / m)`` (chunk sizes differ by at most one)."""
    return torch.arange(m, dtype=torch.long) * n_workers // max(m, 1)


def check_workers(n_samples: int, n_workers: int, need: int = 1) -> None:
    """ConfigError unless ``n_samples >= need * n_workers`` (every worker gets data)."""
    require(isinstance(n_workers, int) and n_workers >= 1, "cluster.n_workers", n_workers,
            "a positive integer")
    if n_samples < need * n_workers:
        raise ConfigError(
            f"cluster.n_workers={n_workers} is invalid: the partition needs at least "
            f"{need * n_workers} training samples, the dataset has {n_samples}"
        )


def long_tail(order: Tensor, labels: Tensor, beta: float) -> Tensor:
    """Truncate a class-sorted index list: class c (the c-th distinct label in ``order``)
    keeps its first ``floor(N_c * beta^c)`` indices (Karimireddy et al., ICLR 2022,
    epfml ``NONIIDLTSampler``; beta = 1 keeps all).

    Args:
        order: ``[M]`` indices sorted by label (classes contiguous, ascending).
        labels: ``[N]`` integer labels the indices point into.
        beta: in (0, 1].
    """
    if beta == 1.0:
        return order
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    keep = [int(np.floor(int(c) * beta**k)) for k, c in enumerate(counts)]
    return torch.cat([p[:k] for p, k in zip(torch.split(order, counts.tolist()), keep)])
