"""byzbench.preaggregators.bucketing: values computed by hand."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import T

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.mean import Mean
from byzbench.preaggregators.bucketing import Bucketing

from .helpers import N, honest


def test_bucketing_hand_values_and_seed():
    x = T([[1.0], [2.0], [3.0], [4.0], [5.0]])
    p = Bucketing(5, 0, s=2, generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    y = p(x)
    xs = x[perm].flatten().tolist()
    # buckets {perm0, perm1}, {perm2, perm3}, {perm4}: means of consecutive pairs
    assert y.flatten().tolist() == pytest.approx(
        [(xs[0] + xs[1]) / 2, (xs[2] + xs[3]) / 2, xs[4]])
    assert p.n_out == 3
    # the mean of the buckets' rows equals the mean only when buckets have equal size
    assert Bucketing(4, 0, s=2)(x[:4]).mean().item() == pytest.approx(2.5)


def test_pipeline_query_restores_bucketing_generator():
    x = honest()
    pipe = Pipeline([Bucketing(N, 0, s=2, generator=torch.Generator().manual_seed(1))], Mean())
    q = pipe.query(x)
    torch.testing.assert_close(pipe(x), q)  # the real call draws the same permutation
