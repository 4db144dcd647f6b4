"""Learning-rate schedules not shipped by torch.optim.lr_scheduler."""

from __future__ import annotations

import math

import torch

from byzbench import require


def inv_sqrt(
    optimizer: torch.optim.Optimizer, warmup: float = 1.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """lr_t = lr_0 / sqrt(1 + t / warmup), the O(1/sqrt(t)) step of SGD analyses."""
    require(warmup > 0, "schedule.warmup", warmup, "a positive number")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 1.0 / math.sqrt(1.0 + t / warmup))
