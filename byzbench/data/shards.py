"""Pathological non-IID "shards" partition: sorted labels, k shards per worker."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.data._common import balanced_owner, check_workers, group_by_owner


class Shards:
    """Sort the data by label, cut it into ``n * k`` contiguous shards and give each
    worker k shards at random, so each worker sees about k classes.

    Sample at sorted position j lies in shard ``s = floor(j n k / N)``; a uniform
    random permutation sigma of the shards assigns shard sigma(i k + t), t < k, to
    worker i. Ties between equal labels are broken at random, so which samples of a
    class share a shard is random too. Sizes are ~k * N/(n k) = N/n. Regression targets
    are sorted the same way (each worker gets k ranges of the target).

    Reference: McMahan et al., "Communication-Efficient Learning of Deep Networks
    from Decentralized Data", AISTATS 2017 (MNIST pathological non-IID: 200 shards of
    300, 2 per client).
    """

    def __init__(self, shards_per_worker: int = 2):
        require(isinstance(shards_per_worker, int) and shards_per_worker >= 1,
                "partition.shards_per_worker", shards_per_worker, "a positive integer")
        self.k = shards_per_worker

    def __call__(self, labels: Tensor, n_workers: int, generator: torch.Generator) -> list[Tensor]:
        """Args: labels ``[N]`` int class labels (CPU), n_workers, CPU generator.
        Returns n disjoint index tensors covering all N."""
        labels = labels.cpu()
        N = len(labels)
        check_workers(N, n_workers, self.k)
        n_shards = n_workers * self.k
        perm = torch.randperm(N, generator=generator)
        order = perm[torch.argsort(labels[perm], stable=True)]  # sorted, random within class
        shard = balanced_owner(N, n_shards)  # shard of each sorted position
        worker_of_shard = torch.empty(n_shards, dtype=torch.long)
        worker_of_shard[torch.randperm(n_shards, generator=generator)] = (
            torch.arange(n_shards) // self.k)
        owner = torch.empty(N, dtype=torch.long)
        owner[order] = worker_of_shard[shard]
        return group_by_owner(owner, n_workers)
