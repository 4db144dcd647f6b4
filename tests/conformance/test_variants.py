"""The ByzFL-parity variants: MDA's tie rules, SMEA / CAF ``eigen: power1`` against a
float64 reference of ByzFL 0.0.11's loop, ALIE's side and the ``byzfl`` line search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.caf import CAF
from byzbench.aggregators.mda import MDA
from byzbench.aggregators.smea import SMEA
from byzbench.attacks.alie import ALIE
from byzbench.attacks.base import RoundContext
from byzbench.attacks.search import maximize, pointwise
from byzbench.kernels import random_projections

f64 = torch.float64
LINE = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], dtype=f64)


@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_mda_exact_tie_both_row_orders(order):
    # Subsets {0,1} and {1,2} tie at diameter sqrt(27). search: drops the first row of
    # the farthest pair (equal distance sums) -> the last two rows; first (ByzFL): the
    # first subset in combination order -> the first two rows. In either row order.
    x = LINE if order == "forward" else LINE.flip(0)
    assert torch.equal(MDA(3, 1, ties="search")(x), x[1:].mean(0))
    assert torch.equal(MDA(3, 1, ties="first")(x), x[:2].mean(0))


def test_mda_first_is_combination_order_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(150):  # integer points on a small grid: many exact ties
        n = int(rng.integers(3, 9))
        f = int(rng.integers(0, (n - 1) // 2 + 1))
        x = torch.tensor(rng.integers(0, 3, (n, 2)), dtype=f64)
        d2 = torch.cdist(x, x).square().numpy()
        best, bd = None, np.inf
        for s in itertools.combinations(range(n), n - f):  # ByzFL's enumeration
            dd = d2[np.ix_(s, s)].max()
            if dd < bd:
                best, bd = s, dd
        first = MDA(n, f, ties="first")
        first(x)
        assert tuple(np.flatnonzero(first.last_weights.numpy())) == best
        # both rules reach the same minimum diameter
        w = MDA(n, f)
        w(x)
        kept = np.flatnonzero(w.last_weights.numpy())
        assert d2[np.ix_(kept, kept)].max() == bd


def test_mda_ties_bad_value():
    with pytest.raises(ConfigError, match="agg.ties"):
        MDA(5, 1, ties="last")


def _starts(x, k, seed):
    """The unit start vectors random_projections draws (same generator calls)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape[1], k, generator=g, dtype=x.dtype)
    return v / torch.linalg.vector_norm(v, dim=0, keepdim=True)


def test_smea_power1_matches_byzfl_loop_float64():
    torch.manual_seed(3)
    x = torch.randn(7, 12, dtype=f64)
    x[:2] += 2.0
    f = 2
    v = _starts(x, 1, 5)[:, 0]
    best, best_s = np.inf, None
    for s in itertools.combinations(range(7), 7 - f):  # ByzFL 0.0.11 SMEA, start v
        diffs = x[list(s)] - x[list(s)].mean(0)
        w = (diffs * (diffs @ v)[:, None]).sum(0)
        lam = float(w @ (w / w.norm()))
        if lam < best:
            best, best_s = lam, s
    rule = SMEA(7, f, eigen="power1", generator=torch.Generator().manual_seed(5))
    assert torch.allclose(rule(x), x[list(best_s)].mean(0), rtol=0, atol=1e-12)
    assert rule.last_score == pytest.approx(best / (7 - f), rel=1e-10)


def test_caf_power1_matches_byzfl_loop_float64():
    torch.manual_seed(4)
    n, f = 9, 3
    x = torch.randn(n, 10, dtype=f64)
    x[:3] += 1.5
    vs = _starts(x, n, 6)
    c = torch.ones(n, dtype=f64)
    eig, best_mu, r = np.inf, None, 0
    while c.sum() > n - 2 * f:  # ByzFL 0.0.11 CAF with start vs[:, r] in round r
        mu = (c[:, None] * x).sum(0) / c.sum()
        diffs = x - mu
        w = (c[:, None] * diffs * (diffs @ vs[:, r])[:, None]).sum(0) / c.sum()
        u = w / w.norm()
        lam = float(u @ w)
        if lam < eig:
            eig, best_mu = lam, mu
        tau = (diffs @ u) ** 2
        c = c * (1 - tau / tau[c > 0].max())
        c = torch.where(c > 0, c, torch.zeros_like(c))
        r += 1
    rule = CAF(n, f, eigen="power1", generator=torch.Generator().manual_seed(6))
    assert torch.allclose(rule(x), best_mu, rtol=0, atol=1e-12)


def test_power1_is_seeded_and_exact_is_default():
    x = torch.randn(8, 20, dtype=f64)
    for cls in (SMEA, CAF):
        a = cls(8, 2, eigen="power1", generator=torch.Generator().manual_seed(1))(x)
        b = cls(8, 2, eigen="power1", generator=torch.Generator().manual_seed(1))(x)
        assert torch.equal(a, b)
        assert cls(8, 2).generator is None
        with pytest.raises(ConfigError, match="agg.eigen"):
            cls(8, 2, eigen="power2")


def test_random_projections_skip_bad_rows():
    x = torch.randn(4, 5, dtype=f64)
    x[2] = float("inf")
    bad = np.array([False, False, True, False])
    p = random_projections(x, bad, 3, torch.Generator().manual_seed(0))
    assert p.shape == (4, 3) and np.isfinite(p).all() and (p[2] == 0).all()


def test_alie_side():
    x = LINE
    ctx = RoundContext(t=0, n=4, f=1, f_declared=1)
    sd = x.std(0)
    assert torch.equal(ALIE(z=1.5)(x, ctx)[0], x.mean(0) - 1.5 * sd)
    assert torch.equal(ALIE(z=1.5, side="plus")(x, ctx)[0], x.mean(0) + 1.5 * sd)
    with pytest.raises(ConfigError, match="attack.side"):
        ALIE(z=1.0, side="up")


def test_byzfl_search_forward_only_step_for_step():
    # Peak at 0.7, cliff after: expansion 0 -> 10 (worse); contraction proposes
    # best + delta with delta = 8, 6.4, ... (always forward of the best point).
    seen = []

    def obj(x):
        seen.append(x)
        return x if x <= 0.7 else -1.0

    r = maximize(pointwise(obj), 0.01, 10.0, 20, method="byzfl", start=0.0, delta=10.0)
    assert seen[:3] == pytest.approx([0.0, 10.0, 8.0])
    assert r.evals == 20 and r.x == pytest.approx(10 * 0.8**12)
    best = 0.0
    for x in seen[2:]:  # every contraction proposal is the best so far plus delta
        assert x > best
        if obj(x) > best:
            best = x
    seen.clear()
    lpd = maximize(pointwise(obj), 0.01, 10.0, 20, method="lpd", start=0.0, delta=10.0)
    assert lpd.x != pytest.approx(r.x)  # BM's back-and-forth contraction lands elsewhere


def test_caf_power1_batched_queries_equal_single_queries():
    from byzbench.aggregators.base import Pipeline

    xs = torch.randn(3, 9, 12, dtype=f64)
    pipe = Pipeline([], CAF(9, 2, eigen="power1", generator=torch.Generator().manual_seed(2)))
    batched = pipe.query_batch(xs)
    single = torch.stack([pipe.query(x) for x in xs])
    assert torch.allclose(batched, single, rtol=0, atol=1e-12)
