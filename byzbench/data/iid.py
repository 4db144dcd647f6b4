"""IID partition: a seeded random split into near-equal shards."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench.data._common import balanced_owner, check_workers, group_by_owner


class IID:
    """Shuffle the N training indices and cut them into n contiguous chunks.

    With a uniform random permutation pi, worker i owns
    ``{pi(j) : floor(j n / N) = i}``, so shard sizes are floor(N/n) or ceil(N/n),
    shards are disjoint and cover all N samples, and each shard's label histogram
    matches the global one in expectation.

    Reference: McMahan et al., "Communication-Efficient Learning of Deep Networks
    from Decentralized Data", AISTATS 2017 (the IID baseline split).
    """

    def __call__(self, labels: Tensor, n_workers: int, generator: torch.Generator) -> list[Tensor]:
        """Args: labels ``[N]`` (only N is used), n_workers, CPU generator.
        Returns n index tensors ``LongTensor [~N/n]``."""
        N = len(labels)
        check_workers(N, n_workers)
        perm = torch.randperm(N, generator=generator)
        owner = torch.empty(N, dtype=torch.long)
        owner[perm] = balanced_owner(N, n_workers)
        return group_by_owner(owner, n_workers)
