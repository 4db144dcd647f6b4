"""Attacker queries through Pipeline.query / query_batch leave the server's randomness
alone and report weights that follow rows through the server's permutation."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean
from byzbench.attacks.base import RoundContext
from byzbench.preaggregators.bucketing import Bucketing

from .helpers import D, F, N

agg = pytest.importorskip("byzbench.aggregators.krum")


def _bucketing_round(queries: int, server: bool):
    """Real aggregation after ``queries`` attacker queries; returns (query, real)."""
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(0), dtype=f64)
    pipe = Pipeline([Bucketing(N, F, s=2, generator=torch.Generator().manual_seed(1))],
                    Mean(6, F))
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    ctx = RoundContext(t=0, n=N, f=F, f_declared=F, pipeline=pipe, perm=perm,
                       server_randomness=server, query_seed=123)
    q = [ctx.query(x) for _ in range(queries)]
    real = pipe(x[perm])
    return q, real


def test_queries_do_not_touch_server_randomness():
    _, real0 = _bucketing_round(0, server=False)
    for k in (1, 5):
        q, real = _bucketing_round(k, server=False)
        assert torch.equal(real, real0)  # the round's buckets ignore the attacker's queries
        assert all(torch.equal(qi, q[0]) for qi in q)  # common random numbers in a round
        assert not torch.equal(q[0], real)  # own draws differ from the server's
    q, real = _bucketing_round(3, server=True)
    torch.testing.assert_close(q[0], real, rtol=0, atol=1e-12)  # strongest attacker
    _, real_s = _bucketing_round(0, server=True)
    assert torch.equal(real, real_s)


def test_query_weights_follow_rows_through_the_permutation():
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(0), dtype=f64)
    x[-F:] = x[:N - F].mean(0)  # the Byzantine rows sit at the honest mean: Krum picks one
    krum = Krum(N, F)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(4))
    for server in (False, True):
        ctx = RoundContext(t=0, n=N, f=F, f_declared=F, pipeline=Pipeline([], krum),
                           perm=perm, server_randomness=server)
        agg, w = ctx.query(x, weights=True)
        i = int(w.argmax())
        assert i >= N - F and torch.equal(agg, x[i])
