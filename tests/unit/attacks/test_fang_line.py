"""The halving / keep-test searches evaluate their candidates through weighted line
queries (``RoundContext.query_line(..., weights=True)``): fang_krum, fang_partial
(target krum) and finite_norm (mode largest_kept) give bit-identical rows to their
former one-candidate-per-query loops (kept below as oracles), in fewer pipeline
calls."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from byzbench import kernels
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.bulyan import Bulyan
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean
from byzbench.aggregators.median import Median
from byzbench.aggregators.multikrum import MultiKrum
from byzbench.aggregators.trmean import TrMean
from byzbench.attacks import _ops
from byzbench.attacks._ops import largest_true, length_unit
from byzbench.attacks.base import RoundContext, repeat_rows
from byzbench.attacks.fang_krum import FangKrum
from byzbench.attacks.fang_partial import FangPartial
from byzbench.attacks.finite_norm import FiniteNorm
from byzbench.preaggregators.nnm import NNM

RULES = {"krum": Krum, "multikrum": MultiKrum, "mean": Mean, "median": Median,
         "trmean": TrMean, "bulyan": Bulyan}
SHAPES = [(7, 2, 10), (7, 2, 300), (20, 4, 10), (20, 4, 300)]
DTYPES = [torch.float32, torch.float64]


def _ctx(rule: str, preagg: bool, n: int, f: int, seed: int, byz=None) -> RoundContext:
    pre = [NNM(n=n, f=f)] if preagg else []
    return RoundContext(t=0, n=n, f=f, f_declared=f, pipeline=Pipeline(pre, RULES[rule](n=n, f=f)),
                        byz_grads=byz, generator=torch.Generator().manual_seed(seed),
                        query_seed=seed)


def _honest(h: int, d: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    return (torch.randn(h, d, generator=g, dtype=torch.float64) + 0.3).to(dtype)


def _cases():
    for rule in RULES:
        for preagg in (False, True):
            for n, f, d in SHAPES:
                if rule == "bulyan" and n < 4 * f + 3:
                    continue
                yield rule, preagg, n, f, d


def _marked(dtypes=DTYPES):
    """Every (case, dtype); the fast suite keeps float32 at d = 10 for every rule with
    and without NNM, and one d = 300 case per rule; the rest is ``slow``."""
    out = []
    for c in _cases():
        for dt in dtypes:
            fast = dt == torch.float32 and (c[4] == 10 or (c[1] is False and c[2] == 20))
            out.append(pytest.param(*c, dt, marks=() if fast else pytest.mark.slow))
    return out


@pytest.fixture
def calls(monkeypatch):
    """Counts the context's pipeline queries and single pipeline evaluations."""
    count: Counter = Counter()

    def wrap(owner, name):
        orig = getattr(owner, name)

        def counted(self, *a, **kw):
            count[name] += 1
            return orig(self, *a, **kw)

        monkeypatch.setattr(owner, name, counted)

    for name in ("query", "query_line", "query_batch"):
        wrap(RoundContext, name)
    wrap(Pipeline, "__call__")
    return count


def _ctx_calls(count: Counter) -> int:
    return count["query"] + count["query_line"] + count["query_batch"]


# ------------------------------------------------------------------ the former loops


def fang_krum_loop(a: FangKrum, honest, ctx):
    h, f = honest.shape[0], ctx.f
    s = torch.where(honest.mean(dim=0) >= 0, 1.0, -1.0).to(honest.dtype)
    lam = a.lambda_upper_bound(honest, h + f, f, a.neighbours)
    floor = a.threshold * length_unit(honest, a.unit)
    for _ in range(a.max_halvings):
        b = -lam * s
        agg, w = ctx.query(torch.cat([honest, repeat_rows(b, f)]), weights=True)
        chosen = bool(w[h:].sum() > 0) if w is not None else bool(torch.equal(agg, b))
        if chosen or lam / 2 < floor:
            break
        lam /= 2
    return lam, repeat_rows(-lam * s, f)


def fang_partial_loop(a: FangPartial, own, ctx):
    f = ctx.f
    mu = own.mean(dim=0)
    s = torch.where(mu >= 0, 1.0, -1.0).to(own.dtype)
    lam = FangKrum.lambda_upper_bound(own, ctx.n, f, a.neighbours)
    floor = a.threshold * length_unit(own, a.unit)
    k = max(1, min(ctx.n - f - 2, 2 * f - 1))
    for _ in range(a.max_halvings):
        view = torch.cat([repeat_rows(-lam * s, f), own])
        d2, _, _ = kernels.similarity.pairwise(view)
        chosen = int(np.argmin(kernels.krum_scores(d2, k))) < f
        if chosen or lam / 2 < floor:
            break
        lam /= 2
    return lam, repeat_rows(-lam * s, f)


def finite_norm_loop(a: FiniteNorm, honest, ctx):
    h, f = honest.shape[0], ctx.f
    mu = honest.mean(dim=0)
    e = a.unit_direction(honest) * length_unit(honest, a.unit, mu)

    def keeps(gamma):
        x = torch.cat([honest, repeat_rows(mu + gamma * e, f)])
        agg, w = ctx.query(x, weights=True)
        if w is not None:
            return bool(w[h:].sum() > 0)
        delta = 1e-3
        x2 = torch.cat([honest, repeat_rows(mu + gamma * (1 - delta) * e, f)])
        rate = float((agg - ctx.query(x2)) @ e) / (delta * gamma * float(e @ e))
        return rate >= a.keep_rate * f / (h + f)

    gamma = largest_true(keeps, start=a.gamma, hi=a.cap, budget=a.budget, rtol=a.rtol)
    return gamma, repeat_rows(mu + gamma * e, f)


# ------------------------------------------------------------------------- the tests


def _compare(a, oracle, honest, ctx, value: str, count: Counter) -> tuple[int, int]:
    """Runs the oracle loop then the attack; checks the chosen value (attribute
    ``value``) and rows are the same; returns (old ctx calls, new ctx calls)."""
    count.clear()
    v_old, rows_old = oracle(a, honest, ctx)
    c_old = _ctx_calls(count)
    count.clear()
    rows_new = a(honest, ctx)
    c_new = _ctx_calls(count)
    assert count["__call__"] == 0  # no single evaluation: batched calls only
    assert getattr(a, value) == v_old
    assert torch.equal(rows_new, rows_old)
    return c_old, c_new


@pytest.mark.parametrize("rule,preagg,n,f,d,dtype", _marked())
def test_fang_krum_line_equals_loop(rule, preagg, n, f, d, dtype, calls):
    tot_old = tot_new = 0
    for seed in range(2):
        honest = _honest(n - f, d, seed, dtype)
        ctx = _ctx(rule, preagg, n, f, seed)
        c_old, c_new = _compare(FangKrum(n=n, f=f), fang_krum_loop, honest, ctx,
                                "last_lambda", calls)
        assert c_new <= c_old
        tot_old, tot_new = tot_old + c_old, tot_new + c_new
    assert tot_new < tot_old or tot_old == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,f,d", SHAPES)
def test_fang_partial_batched_equals_loop(n, f, d, dtype, monkeypatch):
    count: Counter = Counter()
    for mod, name in ((kernels.similarity, "pairwise"), (kernels, "pairwise_batch")):
        orig = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *x, _o=orig, _n=name: count.update([_n]) or _o(*x))
    for seed in range(3):
        own = _honest(f, d, 50 + seed, dtype)
        ctx = _ctx("krum", False, n, f, seed, byz=own)
        a = FangPartial(target="krum", n=n, f=f)
        count.clear()
        lam_old, rows_old = fang_partial_loop(a, own, ctx)
        out = a(_honest(n - f, d, seed, dtype), ctx)
        assert a.last_lambda == lam_old and torch.equal(out, rows_old)
        assert count["pairwise_batch"] == -(-count["pairwise"] // _ops.LINE_CHUNK)


@pytest.mark.parametrize("rule,preagg,n,f,d,dtype", _marked())
def test_finite_norm_largest_kept_line_equals_loop(rule, preagg, n, f, d, dtype, calls):
    for seed, kw in enumerate(({}, {"gamma": 0.25, "cap": 16.0, "budget": 24})):
        honest = _honest(n - f, d, seed, dtype)
        ctx = _ctx(rule, preagg, n, f, seed)
        c_old, c_new = _compare(FiniteNorm(mode="largest_kept", **kw), finite_norm_loop,
                                honest, ctx, "last_gamma", calls)
        assert c_new < c_old


@pytest.mark.parametrize("rule,preagg,n,f,d", [c for c in _cases() if c[4] == 10])
def test_query_line_weights_decide_as_query(rule, preagg, n, f, d):
    # The Byzantine rows' total weight of each candidate has the sign of the single
    # query's, and its aggregate is the single query's.
    honest = _honest(n - f, d, 7, torch.float64)
    ctx = _ctx(rule, preagg, n, f, 3)
    s = torch.where(honest.mean(dim=0) >= 0, 1.0, -1.0).to(honest.dtype)
    scales = [0.02 * 2.0**k for k in range(10)]
    aggs, w = ctx.query_line(honest, torch.zeros(d, dtype=honest.dtype), s,
                             torch.tensor(scales, dtype=torch.float64), weights=True)
    for i, v in enumerate(scales):
        agg, wi = ctx.query(torch.cat([honest, repeat_rows(v * s, f)]), weights=True)
        assert (w is None) == (wi is None)
        assert torch.equal(aggs[i], agg)
        if wi is not None:
            assert bool(w[i, n - f:].sum() > 0) == bool(wi[n - f:].sum() > 0)
            assert torch.equal(w[i, :n - f], wi[:n - f])


def test_query_batch_weights_fall_back_to_single_queries():
    # A rule without batched weights: a weighted batched query loops over single ones.
    class Plain(Krum):
        batch_weights = False

    n, f = 7, 2
    honest = _honest(n - f, 10, 0, torch.float64)
    pipe = Pipeline([NNM(n=n, f=f)], Plain(n=n, f=f))
    xs = torch.stack([torch.cat([honest, repeat_rows(v * honest[0], f)]) for v in (1.0, 9.0)])
    aggs, w = pipe.query_batch(xs, 0, weights=True)
    for i, x in enumerate(xs):
        with pipe.frozen(0):
            assert torch.equal(pipe(x), aggs[i])
            assert torch.equal(pipe.row_weights(n), w[i])
