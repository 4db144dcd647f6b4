"""Shared by the pre-aggregator tests: the option sizes and seeded honest rows."""

from __future__ import annotations

import torch

N, F, D = 15, 3, 30


def honest(n: int = N, d: int = D, seed: int = 1) -> torch.Tensor:
    return 1.0 + torch.randn(n, d, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)
