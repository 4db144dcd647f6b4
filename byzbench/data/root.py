"""The server's own root dataset (FLTrust's trust bootstrap): ``size`` training samples
drawn with the run's ``server`` stream and removed from the workers' pool before the
partition. A rule declares that it holds one through ``Rule.server_data``."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require

DRAWS = ("uniform", "balanced")
def check_server_data(node: dict) -> dict:
    """Validate ``agg.server_data`` (one-line errors)."""
    require(isinstance(node, dict), "agg.server_data", node, "a mapping {size, draw}")
    unknown = sorted(set(node) - {"size", "draw"})
    require(not unknown, f"agg.server_data.{unknown[0] if unknown else ''}", None,
            "allowed keys: size, draw")
    size, draw = node.get("size", 100), node.get("draw", "uniform")
    require(isinstance(size, int) and size >= 1, "agg.server_data.size", size, "an integer >= 1")
    require(draw in DRAWS, "agg.server_data.draw", draw, f"one of {DRAWS}")
    return {"size": size, "draw": draw}


def draw_root(labels: Tensor, server_data: dict, num_classes: int,
              generator: torch.Generator) -> Tensor:
    """Indices ``[size]`` (sorted) of the root dataset among ``labels``'s samples."""
    size, draw = server_data["size"], server_data["draw"]
    m = len(labels)
    require(size < m, "agg.server_data.size", size,
            f"must leave training samples to the workers (train set has {m})")
    if draw == "uniform" or num_classes < 2:
        return torch.randperm(m, generator=generator)[:size].sort().values
    lab = labels.cpu().long()
    per = [size // num_classes + (1 if c < size % num_classes else 0) for c in range(num_classes)]
    out = []
    for c in range(num_classes):
        idx = torch.nonzero(lab == c).flatten()
        require(len(idx) >= per[c], "agg.server_data.size", size,
                f"class {c} has only {len(idx)} training samples for a balanced root set")
        out.append(idx[torch.randperm(len(idx), generator=generator)[:per[c]]])
    return torch.cat(out).sort().values
