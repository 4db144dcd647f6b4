"""byzbench.attacks.search: the budgeted maximizer (plateaus, nan), the ByzantineMomentum
line_maximize reproduced by hand; the bisection largest_true (attacks/_ops.py) and its
budget."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench.attacks._ops import largest_true
from byzbench.attacks.search import SPECULATE_DEPTH, maximize, pointwise
from byzbench.attacks.tuning import Tuned

from .helpers import Shift, ctx, soft_rule


def test_maximize_budget_plateau_and_nan():
    calls = []

    def obj(x):  # smooth single peak at x = 2.7, value 2.7 / e
        calls.append(x)
        return x * math.exp(-x / 2.7)

    r = maximize(pointwise(obj), 0.01, 8.0, 16)
    assert len(calls) == r.evals <= 16
    assert r.value >= 0.99 * 2.7 / math.e and abs(r.x - 2.7) < 0.5
    # plateau from 1 on: the smallest scale reaching it (up to the scan's resolution)
    r = maximize(pointwise(lambda x: min(x, 1.0)), 0.01, 100.0, 16)
    assert r.value == 1.0 and 1.0 <= r.x < 1.5
    # nan counts as -inf: nan above 5, rising below
    r = maximize(pointwise(lambda x: x if x <= 5 else float("nan")), 0.01, 100.0, 16)
    assert 4.6 < r.x <= 5.0 and r.value == r.x


def test_lpd_reproduces_line_maximize_by_hand():
    # ByzantineMomentum's line_maximize on J(x) = -(x - 2.5)^2, 8 evaluations, delta 1:
    # x = 0 (-6.25), 1 (-2.25, better, delta 2), 3 (-0.25, better, delta 4), 7 (worse:
    # delta 3.2, contraction from prop 7 > best 3): 7 - 3.2 = 3.8 (-1.69; delta 2.56),
    # prop 3.8 > 3: 3.8 - 2.56 = 1.24 (-1.5876; delta 2.048), prop 1.24 < 3: 1.24 + 2.048
    # = 3.288 (-0.620944; delta 1.6384), prop 3.288 > 3: 3.288 - 1.6384 = 1.6496.
    seen = []

    def obj(x):
        seen.append(x)
        return -(x - 2.5) ** 2

    r = maximize(pointwise(obj), 0.01, 10.0, 8, method="lpd")
    assert seen == pytest.approx([0, 1, 3, 7, 3.8, 1.24, 3.288, 1.6496])
    assert r.x == 3 and r.evals == 8
    seen.clear()
    t = Tuned(Shift(), budget=8, search="lpd", delta=10.0)  # ByzFL's delta
    t(torch.zeros(4, 3, dtype=f64), ctx(2, n_h=4, rule=soft_rule))
    assert t.last_evals == 8 and t.last_scale in (0.0, 1.0) or t.last_scale < 10


def test_largest_true_budgets():
    calls = []
    x = largest_true(lambda g: calls.append(g) or g <= 5.3, 1.0, 100.0, 30, rtol=1e-4)
    assert 5.3 * (1 - 2e-4) <= x <= 5.3 and len(calls) <= 30
    assert largest_true(lambda g: True, 1.0, 64.0, 30) == 64.0
    assert largest_true(lambda g: False, 1.0, 64.0, 30) == 0.0


def _shapes():
    """Objectives of every shape the maximizer meets: rise then cliff, plateau, smooth
    peak, monotone, noisy, flat, nan regions, ties (values on a coarse grid)."""
    g = torch.Generator().manual_seed(5)
    out = [lambda x: x if x < 3.7 else -1.0, lambda x: min(x, 2.0),
           lambda x: -(math.log(x) - 0.3) ** 2,
           lambda x: x, lambda x: 0.0, lambda x: float("nan") if x > 5 else x,
           lambda x: round(math.sin(3 * x), 1)]
    for _ in range(20):
        c, w = float(torch.rand(1, generator=g)) * 10, float(torch.rand(1, generator=g)) + 0.1
        noise = torch.rand(64, generator=g).tolist()
        out.append(lambda x, c=c, w=w, nz=noise: (x if x < c else -x) + w * nz[int(x * 7) % 64])
    return out


@pytest.mark.parametrize("budget", [6, 16, 24, 64])
def test_speculative_bisection_is_the_same_search_in_fewer_calls(budget):
    """``speculate=True`` prefetches the edge bisection's possible points in one call:
    the same points are used, so the result (scale, value, evals) is identical; the
    objective is called fewer times; a prefetch holds at most 2**SPECULATE_DEPTH - 1
    points, whatever the budget."""
    fewer = 0
    for fn in _shapes():
        calls = {True: 0, False: 0}

        def obj(xs, spec, fn=fn, calls=calls):
            calls[spec] += 1
            assert len(xs) <= max(budget // 2 + 1, 2 ** SPECULATE_DEPTH - 1)
            return torch.tensor([fn(float(x)) for x in xs], dtype=torch.float64)

        plain = maximize(lambda xs: obj(xs, False), 0.01, 10.0, budget)
        spec = maximize(lambda xs: obj(xs, True), 0.01, 10.0, budget, speculate=True)
        assert spec == plain
        assert calls[True] <= calls[False]
        fewer += calls[True] < calls[False]
    assert fewer >= 10
