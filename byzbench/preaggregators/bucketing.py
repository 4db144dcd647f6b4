"""Bucketing (Karimireddy, He, Jaggi, ICLR 2022)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import host, kernels, require
from byzbench.stages import PreAggregator


class Bucketing(PreAggregator):
    r"""Bucketing: shuffle the rows with the run's seeded generator, split them into
    ``ceil(n / s)`` buckets of ``s`` consecutive rows (the last one smaller when
    ``s`` does not divide n) and output each bucket's mean:

    .. math:: y_b = \frac{1}{|B_b|} \sum_{i \in B_b} x_{\pi(i)}, \qquad
        B_b = \{(b-1)s + 1, \dots, \min(bs, n)\}.

    On CPU one ``index_add`` pass (O(n d), each row lands in its own bucket only, so a
    non-finite row spoils only its bucket); elsewhere one deterministic
    ``[n_out, n] @ [n, d]`` product, recomputed by gather + mean when a row is
    non-finite (the product would spread ``0 * nan``). The rule downstream receives
    ``n_out`` rows and keeps the declared f (each Byzantine row can spoil one bucket),
    as in the paper.

    Args:
        n: rows it will receive (injected); ``n_out = ceil(n / s)``.
        f: declared Byzantine count (injected; unused).
        s: bucket size, >= 1 (the paper uses s = 2).
        generator: seeded torch.Generator (injected); ``None`` uses a private one
            seeded 0.

    ``last_mixing [n_out, n]`` has ``1/|B_b|`` on the rows of bucket b. The output
    buffer is reused across calls (valid until the next call; see ``kernels.reusable``).

    Reference: S. P. Karimireddy, L. He, M. Jaggi, "Byzantine-Robust Learning on
    Heterogeneous Datasets via Bucketing", ICLR 2022.
    """

    generator_keys = ("generator",)


    def __init__(self, n: int, f: int = 0, s: int = 2, generator: torch.Generator | None = None):
        require(s >= 1, "preagg.bucketing.s", s, "s >= 1")
        require(n >= 1, "preagg.bucketing.n", n, "n >= 1")
        self.n, self.f, self.s = n, f, s
        self.n_out = math.ceil(n / s)
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator
        self.last_mixing: Tensor | None = None

    def line(self, fam: Any) -> Any:
        """Line path (``aggregators.line``): the same permutation (one draw, as
        ``batch``), bucket means as a mixing of the family."""
        n, s = fam.n, self.s
        gen = self.generator
        perm = host.to_host(torch.randperm(n, generator=gen, device=gen.device)).numpy()
        bucket = np.arange(n) // s
        mix = np.zeros((-(-n // s), n))
        mix[bucket, perm] = 1.0 / np.minimum(s, n - bucket * s)
        return fam.mix(mix)

    def batch(self, xs: Tensor) -> Tensor:
        """``xs [k, n, d] -> [k, ceil(n/s), d]``: one permutation for all k (what k
        queries from the same generator state draw), bucket means by gather."""
        k, n, d = xs.shape
        s = self.s
        gen = self.generator
        perm = torch.randperm(n, generator=gen, device=gen.device).to(xs.device)
        xp = xs.index_select(1, perm)
        full = n // s
        parts = []
        if full:
            parts.append(xp[:, : full * s].reshape(k, full, s, d).mean(dim=2))
        if full * s < n:
            parts.append(xp[:, full * s:].mean(dim=1, keepdim=True))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [ceil(n/s), d]``."""
        n, d = x.shape
        s = self.s
        gen = self.generator
        perm = torch.randperm(n, generator=gen, device=gen.device).to(x.device)
        bucket = torch.arange(n, device=x.device) // s
        size = torch.minimum(torch.full_like(bucket, s), n - bucket * s).to(x.dtype)
        mix = torch.zeros(-(-n // s), n, dtype=x.dtype, device=x.device)
        mix[bucket, perm] = 1.0 / size
        self.last_mixing = mix
        out = kernels.reusable(self, (mix.shape[0], d), x)
        if x.device.type == "cpu":
            # index_add reads x once and adds each row into its own bucket only, so a
            # non-finite row spoils only its bucket; O(n d), unlike an [n_out, n] @
            # [n, d] product (n_out n d flops: 6x slower at n = 100). Deterministic on
            # CPU (not on CUDA, where it uses atomics).
            slot = torch.empty_like(perm)
            slot[perm] = torch.arange(n, device=x.device)
            out.zero_()
            out.index_add_(0, slot // s, x, alpha=1.0 / s)
            if n % s:
                out[-1] *= s / (n % s)
            return out
        # Elsewhere one deterministic matrix product; it spreads 0 * nan from a
        # non-finite row into every bucket, so then fall back to gather + mean.
        torch.matmul(mix, x, out=out)
        if kernels.all_finite(out.sum(dim=1)):
            return out
        xp = x.index_select(0, perm)
        full = n // s
        parts = []
        if full:
            parts.append(xp[: full * s].view(full, s, d).mean(dim=1))
        if full * s < n:
            parts.append(xp[full * s:].mean(dim=0, keepdim=True))
        return torch.cat(parts) if len(parts) > 1 else parts[0]
