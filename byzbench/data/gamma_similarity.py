"""gamma-similarity partition: a fraction gamma of the data IID, the rest sorted by label."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.data._common import check_workers, group_by_owner


class GammaSimilarity:
    """Each worker gets an IID chunk of a random gamma-fraction of the data plus a
    contiguous chunk of the remaining data sorted by label.

    With a random permutation pi of the N indices and ``m = round(gamma N)``: the first
    m shuffled samples are cut into n near-equal chunks (the IID part); the other
    N - m are sorted by label (ties in random order) and cut into n contiguous
    near-equal chunks, so each worker's sorted part spans ~C/n classes. gamma = 1 is
    IID, gamma = 0 is fully sorted (maximal label skew). Regression targets are sorted
    the same way (covariate/target shift across workers).

    Reference: Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for
    Federated Learning", ICML 2020 (Sec. 7: "s% similar data": s% i.i.d., the
    remaining (100 - s)% sorted by label).
    """

    def __init__(self, gamma: float = 0.5):
        require(isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0, "partition.gamma",
                gamma, "a fraction in [0, 1] (1 = IID, 0 = sorted by label)")
        self.gamma = float(gamma)

    def __call__(self, labels: Tensor, n_workers: int, generator: torch.Generator) -> list[Tensor]:
        """Args: labels ``[N]`` int class labels (CPU), n_workers, CPU generator.
        Returns n disjoint index tensors covering all N."""
        labels = labels.cpu()
        N = len(labels)
        check_workers(N, n_workers)
        perm = torch.randperm(N, generator=generator)
        m = int(round(self.gamma * N))
        iid, rest = perm[:m], perm[m:]
        rest = rest[torch.argsort(labels[rest], stable=True)]  # sorted, random within class
        owner = torch.empty(N, dtype=torch.long)
        # IID pool dealt round-robin: workers 0..r1-1 get one extra (r1 = m mod n).
        owner[iid] = torch.arange(m) % n_workers
        # Sorted part in contiguous chunks whose extra ones go to the *last* r2 workers,
        # so totals differ by at most one and every worker has data whenever N >= n.
        q, r2 = divmod(N - m, n_workers)
        counts = q + (torch.arange(n_workers) >= n_workers - r2).long()
        owner[rest] = torch.repeat_interleave(torch.arange(n_workers), counts)
        return group_by_owner(owner, n_workers)
