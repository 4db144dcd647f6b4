"""byzbench.aggregators.clipped_clustering: clipped clustering; values by hand, the arithmetic
next to each expectation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from unit_helpers import f64

from byzbench.aggregators.clipped_clustering import ClippedClustering


def test_clipped_clustering_by_hand_and_history():
    e = torch.tensor([1.0, 0.0], dtype=f64)
    honest = torch.stack([k * e for k in (1.0, 2.0, 3.0, 4.0)]) + torch.tensor([0.0, 0.01])
    byz = torch.tensor([[-9.0, 1.0], [-9.0, 1.2]], dtype=f64)
    x = torch.cat([honest, byz])
    rule = ClippedClustering(6, 2)
    out = rule(x)
    norms = x.norm(dim=1)
    tau = float(np.median(norms.numpy()))
    assert rule.last_tau == pytest.approx(tau)
    want = (honest * torch.clamp(tau / honest.norm(dim=1), max=1.0)[:, None]).mean(0)
    torch.testing.assert_close(out, want)
    rule(0.5 * x)  # history holds both rounds' norms
    assert rule.last_tau == pytest.approx(np.median(np.concatenate([norms, 0.5 * norms])))
    assert len(rule.norm_history) == 12
