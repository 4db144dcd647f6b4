"""Tiny tensor helpers shared by test folders (tests/unit is on sys.path for its
packages): float64 rows by hand, seeded Gaussian rows."""

from __future__ import annotations

import torch

f64 = torch.float64


def rows(n, d, seed, spread=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return offset + spread * torch.randn(n, d, generator=g, dtype=f64)


T = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
