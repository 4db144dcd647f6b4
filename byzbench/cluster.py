"""Simulated cluster: which workers are Byzantine, their data shards, and per-round
stacked minibatch indices ``[workers, B]`` gathered on the device in one op."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from byzbench import require


def assign_shards(shards: list[Tensor], n: int, f: int, generator: torch.Generator) -> list[Tensor]:
    """Choose the f Byzantine workers at random (data stream) and order the shards
    honest first: rows ``0..n-f-1`` are honest, ``n-f..n-1`` Byzantine."""
    require(len(shards) == n, "partition", len(shards), f"must return n_workers={n} shards")
    order = torch.randperm(n, generator=generator)
    byz = set(order[:f].tolist())
    return [shards[i] for i in range(n) if i not in byz] + [shards[i] for i in range(n) if i in byz]


def worker_shards(partition, labels: Tensor, n: int, f: int, byz_data: str,
                  part_gen: torch.Generator, byz_gen: torch.Generator) -> list[Tensor]:
    """Data of every worker, honest first (rows ``0..n-f-1``), then Byzantine.

    ``byz_data``:

    * ``shard``: the partition is over all n workers and f of them, chosen at random,
      are Byzantine (``assign_shards``);
    * ``iid``: the partition is over the n - f honest workers only; Byzantine worker j
      holds piece ``j mod (n - f)`` of a seeded IID split of the whole training set
      into n - f pieces (epfml/byzantine-robust-noniid-optimizer ``utils.py``:
      ``DistributedSampler(num_replicas=n - f, rank=j mod (n - f))``);
    * ``none``: the partition is over the n - f honest workers only and Byzantine
      workers hold no data (ByzFL), so only attacks that compute nothing can run.
    """
    if byz_data == "shard":
        return assign_shards(list(partition(labels, n, part_gen)), n, f, byz_gen)
    honest = list(partition(labels, n - f, part_gen))
    require(len(honest) == n - f, "partition", len(honest), f"must return n - f={n - f} shards")
    if byz_data == "none" or f == 0:
        return honest
    from byzbench.data.iid import IID

    pieces = IID()(labels, n - f, byz_gen)
    return honest + [pieces[j % (n - f)] for j in range(f)]


class BatchSampler:
    """IID minibatches with replacement from each worker's shard, all workers at once.

    ``sample(workers)`` returns ``[m, B]`` global sample indices for the workers
    ``ids [m]`` (or ``0..rows-1`` for an int): position ``floor(U * len_i)`` into the
    padded shard table, one vectorized draw (no loop over workers). With a ``server``
    shard (the server's root data, e.g. FLTrust) it returns ``[m + 1, B]``, the
    server's row last.
    """

    def __init__(self, shards: list[Tensor], batch_size: int, device: torch.device,
                 generator: torch.Generator, server: Tensor | None = None):
        self.has_server = server is not None
        shards = list(shards) + ([server] if server is not None else [])
        lens = torch.tensor([len(s) for s in shards], dtype=torch.long)
        require(bool((lens >= 1).all()), "partition", "an empty shard",
                "every worker needs at least one sample")
        table = torch.zeros(len(shards), int(lens.max()), dtype=torch.long)
        for i, s in enumerate(shards):  # once at start-up, not per round
            table[i, : len(s)] = s
        self.table = table.to(device)
        self.lens = lens.to(device)
        self.batch_size = batch_size
        self.generator = generator

    def sample(self, workers: int | Tensor) -> Tensor:
        rows = len(self.lens) - self.has_server
        if isinstance(workers, int):
            workers = torch.arange(workers, device=self.table.device)
        if self.has_server:
            workers = torch.cat([workers, workers.new_tensor([rows])])
        lens = self.lens[workers, None]
        u = torch.rand(len(workers), self.batch_size, generator=self.generator,
                       device=self.table.device)
        pos = (u * lens).long().clamp_max(lens - 1)
        return self.table[workers[:, None], pos]


@dataclass(frozen=True)
class Round:
    """The clients of one round: ``ids [m]`` (rows of the shard table, honest first),
    of which ``n_honest`` honest and ``n_byz`` Byzantine."""

    ids: Tensor
    n_honest: int
    n_byz: int


class Participation:
    """Which clients take part in each round (own seeded CPU stream, so counts are
    Python ints without a device sync).

    Rows ``0..n_honest-1`` of the shard table are honest, the last f Byzantine.
    ``participation = 1``: every client, no random draw. Otherwise m clients:
    ``byz_per_round="sampled"`` draws m of the n uniformly without replacement (the
    Byzantine count varies); ``"fixed"`` draws ``m - f_round`` of the honest and
    ``f_round`` of the Byzantine clients (see ``byzbench.config.ClusterSpec``). Ids are
    sorted within each group.
    """

    def __init__(self, n: int, f: int, m: int, f_fixed: int, byz_per_round: str,
                 generator: torch.Generator, device: torch.device | str = "cpu"):
        require(1 <= m <= n, "cluster.participation", m, f"a sample of 1..{n} clients")
        self.n, self.f, self.m, self.f_fixed, self.mode = n, f, m, f_fixed, byz_per_round
        self.generator, self.device = generator, torch.device(device)
        self._all = Round(torch.arange(n, device=self.device), n - f, f)

    @property
    def full(self) -> bool:
        return self.m == self.n

    def sample(self) -> Round:
        if self.full:
            return self._all
        n_h = self.n - self.f
        if self.mode == "sampled":
            pick = torch.randperm(self.n, generator=self.generator)[: self.m]
            hon, byz = pick[pick < n_h], pick[pick >= n_h]
        else:
            hon = torch.randperm(n_h, generator=self.generator)[: self.m - self.f_fixed]
            byz = n_h + torch.randperm(self.f, generator=self.generator)[: self.f_fixed]
        ids = torch.cat([hon.sort().values, byz.sort().values])
        return Round(ids.to(self.device), len(hon), len(byz))


def label_skew(labels: Tensor, shards: list[Tensor], num_classes: int) -> float:
    """Mean total-variation distance between each worker's label distribution and the
    global one (0 = identical, 1 = disjoint): a model-free heterogeneity measure."""
    if num_classes < 2:
        return 0.0
    glob = torch.bincount(labels.long(), minlength=num_classes).double()
    glob /= glob.sum()
    tv = []
    for s in shards:
        h = torch.bincount(labels[s].long(), minlength=num_classes).double()
        tv.append(0.5 * (h / h.sum() - glob).abs().sum())
    return float(torch.stack(tv).mean())
