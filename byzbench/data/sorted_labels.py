"""Labels sorted by class, optionally long-tailed, cut into contiguous (non-IID) or
interleaved (IID) pieces: the partition of the bucketing paper's code."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from byzbench import require
from byzbench.data._common import balanced_owner, check_workers, long_tail


class SortedLabels:
    """List the training indices class by class (class 0 first), keep the first
    ``floor(N_c * long_tail^c)`` of class c (c = rank of the label among the sorted
    distinct labels; ``long_tail = 1`` keeps all), then give worker i

    * ``noniid = true``: the i-th contiguous piece of the list (about C/n classes each);
    * ``noniid = false``: every n-th position starting at i (the global label mix).

    ``pad = true`` repeats the first ``ceil(M/n) n - M`` listed indices at its end so
    that all M' = ceil(M/n) n positions split into equal pieces of ceil(M/n), as the
    published sampler does (a few samples then belong to two workers); ``pad = false``
    cuts near-equal pieces (sizes differ by at most one, shards disjoint).
    ``shuffle = false`` lists each class in dataset order (deterministic, as
    published); ``true`` in a seeded random order.

    Args:
        noniid: contiguous (true) or interleaved (false) pieces.
        long_tail: beta in (0, 1]: class c keeps a fraction beta^c (classification
            labels only when < 1).
        pad: equal pieces by repeating the first indices (published) or not.
        shuffle: random order within each class.

    Reference: Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous
    Datasets via Bucketing", ICLR 2022; code epfml/byzantine-robust-noniid-optimizer,
    ``codes/sampler.py`` (``NONIIDLTSampler``: ``alpha`` = not noniid, ``beta`` =
    long_tail; exp1 uses beta = 0.5, exp3 beta = 1 with noniid).
    """

    def __init__(self, noniid: bool = True, long_tail: float = 1.0, pad: bool = False,
                 shuffle: bool = True):
        for name, v in (("noniid", noniid), ("pad", pad), ("shuffle", shuffle)):
            require(isinstance(v, bool), f"partition.{name}", v, "true or false")
        require(isinstance(long_tail, (int, float)) and 0.0 < long_tail <= 1.0,
                "partition.long_tail", long_tail, "a number in (0, 1] (1 = no long tail)")
        self.noniid, self.long_tail = noniid, float(long_tail)
        self.pad, self.shuffle = pad, shuffle

    def listed(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        """The class-sorted (and long-tail truncated) list of training indices."""
        labels = labels.cpu()
        if self.shuffle:
            perm = torch.randperm(len(labels), generator=generator)
            order = perm[torch.argsort(labels[perm], stable=True)]
        else:
            order = torch.argsort(labels, stable=True)
        require(self.long_tail == 1.0 or not labels.is_floating_point(), "partition.long_tail",
                self.long_tail, "1 for regression targets")
        return long_tail(order, labels, self.long_tail)

    def __call__(self, labels: Tensor, n_workers: int, generator: torch.Generator) -> list[Tensor]:
        """Args: labels ``[N]`` (CPU), n_workers, CPU generator (used when shuffle).
        Returns n index tensors (disjoint unless pad repeats indices)."""
        idx = self.listed(labels, generator)
        m = len(idx)
        check_workers(m, n_workers)
        if self.pad:
            size = math.ceil(m / n_workers)
            idx = torch.cat([idx, idx[: size * n_workers - m]])
            m = len(idx)
        pos = torch.arange(m)
        if self.noniid:
            owner = pos // size if self.pad else balanced_owner(m, n_workers)
        else:
            owner = pos % n_workers
        order = torch.argsort(owner, stable=True)
        counts = torch.bincount(owner, minlength=n_workers)
        return list(torch.split(idx[order], counts.tolist()))
