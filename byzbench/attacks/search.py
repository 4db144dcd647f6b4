"""The one line maximizer behind every adaptive and tuned attack.

An adaptive attack picks a scale ``c`` (a length in the attack's unit, or a
dimensionless factor such as ALIE's z) by maximizing an objective ``J(c)`` evaluated
on the real aggregation pipeline. ``J`` is often neither smooth nor unimodal: against
Krum-type rules it rises while the Byzantine rows are selected and falls off a cliff
when they stop being selected; against coordinate-wise rules it saturates (plateau).

``maximize(objective, lo, hi, budget)`` handles both:

1. **scan** - ``n1 = ceil(budget / 2)`` points log-spaced on ``[lo, hi]`` (``lo > 0``),
   one batched call;
2. **refine** - ``n2 = (budget - n1) // 2`` points log-spaced inside the bracket formed
   by the best scan point's neighbours (half on each side), one batched call;
3. **edge bisection** - each remaining evaluation bisects (geometric midpoint) the gap
   between the best point and its evaluated right neighbour when the objective is
   lower there (else its left neighbour when lower there; else it stops). On "rise
   then cliff" shapes this converges to the cliff from below, every successful
   midpoint becoming the best point; at a plateau's left end it locates where the
   plateau starts (no drop on the plateau side); on a smooth peak it contracts from
   the right, the refinement having placed the best point within one refinement step.

Ties (values within ``TIE_RTOL = 1e-6`` of the best, relative: float32 rounding) go to
the *smallest* scale, so a plateau yields its left end and results do not depend on
rounding. ``nan`` counts as ``-inf``. Every evaluated point is a candidate; the best one
is returned with the number of objective evaluations spent (= pipeline evaluations for
the attacks here).

``objective`` takes a 1-D float64 CPU tensor of candidate scales ``[k]`` and returns
``[k]`` values: stages 1-2 call it once with all their points, so a batched pipeline
query (``[k, n, d] -> [k, d]``) can serve a whole stage in one call. ``pointwise(fn)``
adapts a scalar ``fn(float) -> float``.

Two reference line searches start at ``start`` (0) with step ``delta``, double the
step while the objective strictly improves (expansion), then shrink it by ``ratio``
(0.8) on every remaining evaluation (contraction), ``budget`` evaluations in all; both
ignore ``lo``/``hi``, as the originals do:

* ``method="lpd"`` reproduces ``line_maximize`` of LPD-EPFL's ByzantineMomentum
  (``tools/misc.py``; BM: delta 1, 16 evaluations). Its contraction moves back and
  forth around the best point (a step back from a proposal to the right of the best
  point, a step forward from one to its left).
* ``method="byzfl"`` reproduces the line search of ByzFL 0.0.11's
  ``Optimal_InnerProductManipulation`` / ``Optimal_ALittleIsEnough``
  (``byzfl/attacks/attacks.py``, ``_expansion_phase`` / ``_contraction_phase``; ByzFL:
  delta 10, ratio 0.8, 20 evaluations). Its contraction only steps forward: every
  proposal is ``best + delta``. The two differ: on ByzFL's own unit test
  (``TestOptimalInnerProductManipulationAttack``) ``byzfl`` finds ByzFL's scale
  ``10 * 0.8^12 = 0.6872`` where ``lpd`` finds 0.6799.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from byzbench import host, require

SEARCHES = ("scan", "lpd", "byzfl")
TIE_RTOL = 1e-6
SPECULATE_DEPTH = 4  # bisection steps prefetched per call (at most 2**4 - 1 = 15 points)
Objective = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SearchResult:
    """``x``: best scale; ``value``: its objective; ``evals``: objective evaluations."""

    x: float
    value: float
    evals: int


def pointwise(fn: Callable[[float], float]) -> Objective:
    """Adapt a scalar objective to the batched interface ``[k] -> [k]``."""
    return lambda xs: torch.tensor([float(fn(float(x))) for x in xs], dtype=torch.float64)


def check_search(method: str, lo: float, hi: float, budget: int, where: str = "attack",
                 hi_key: str = "hi") -> None:
    """Validate search parameters (one-line ConfigErrors naming ``where.<key>``)."""
    require(method in SEARCHES, f"{where}.search", method, f"one of {SEARCHES}")
    require(int(budget) >= 2, f"{where}.budget", budget, ">= 2 pipeline evaluations")
    require(lo > 0, f"{where}.lo", lo, "> 0 (the scan is log-spaced)")
    require(hi > lo, f"{where}.{hi_key}", hi, f"> lo = {lo}")


def _logspace(a: float, b: float, k: int) -> list[float]:
    if k <= 0:
        return []
    if k == 1:
        return [math.sqrt(a * b)]
    la, lb = math.log(a), math.log(b)
    return [math.exp(la + (lb - la) * i / (k - 1)) for i in range(k)]


class _Tracker:
    """Evaluated points and the running best (ties within ``rtol`` -> smallest x)."""

    def __init__(self, objective: Objective | None):
        self.objective = objective
        self.xs: list[float] = []
        self.vs: list[float] = []
        self.memo: dict[float, float] = {}  # prefetched values by scale

    def _call(self, xs: list[float]) -> list[float]:
        v = self.objective(torch.tensor(xs, dtype=torch.float64))
        v = host.to_host(torch.as_tensor(v), torch.float64).reshape(-1)
        return torch.nan_to_num(v, nan=-math.inf).tolist()

    def prefetch(self, xs: list[float]) -> None:
        """Evaluate ``xs`` in one call and keep the values for :meth:`eval`."""
        todo = list(dict.fromkeys(x for x in xs if x not in self.memo))
        if todo:
            self.memo.update(zip(todo, self._call(todo)))

    def eval(self, xs: list[float]) -> list[float]:
        if not xs:
            return []
        miss = [x for x in xs if x not in self.memo]
        if miss:
            self.memo.update(zip(miss, self._call(miss)))
        v = [self.memo[x] for x in xs]
        self.xs += xs
        self.vs += v
        return v

    def tol(self) -> float:
        finite = [abs(v) for v in self.vs if math.isfinite(v)]
        return TIE_RTOL * max(finite, default=0.0)

    def best(self) -> tuple[float, float]:
        vmax = max(self.vs)
        tol = self.tol()
        x = min(x for x, v in zip(self.xs, self.vs) if v >= vmax - tol)
        return x, self.vs[self.xs.index(x)]


def maximize(objective: Objective, lo: float, hi: float, budget: int, method: str = "scan",
             start: float = 0.0, delta: float = 1.0, ratio: float = 0.8,
             speculate: bool = False) -> SearchResult:
    """Maximize ``objective`` over scales (see the module docstring); at most ``budget``
    evaluations. ``start``, ``delta``, ``ratio`` are used by the reference line searches
    (``method="lpd" | "byzfl"``) only. ``speculate``: evaluate every point the edge
    bisection may ask for in one batched call before it runs (for objectives whose
    calls cost more than their candidates: line queries); the search and its result
    are the same, ``evals`` counts the points it used."""
    budget = int(budget)
    if method in ("lpd", "byzfl"):
        return _line(objective, budget, start, delta, ratio, forward_only=method == "byzfl")
    tr = _Tracker(objective)
    n1 = max(2, min(budget, math.ceil(budget / 2)))
    grid = _logspace(lo, hi, n1)
    tr.eval(grid)
    n2 = (budget - n1) // 2
    if n2 > 0:
        bx, _ = tr.best()
        i = grid.index(bx)
        left = grid[max(i - 1, 0)]
        right = grid[min(i + 1, len(grid) - 1)]
        if i == 0:
            kl, kr = 0, n2
        elif i == len(grid) - 1:
            kl, kr = n2, 0
        else:
            kl, kr = n2 // 2, n2 - n2 // 2
        pts = _logspace(left, bx, kl + 2)[1:-1] + _logspace(bx, right, kr + 2)[1:-1]
        tr.eval(pts)
    steps = budget - len(tr.xs)
    for i in range(steps):
        m = _next_bisection(tr.xs, tr.vs)
        if m is None:
            break  # flat around the best point: nothing left to locate
        if speculate and m not in tr.memo and steps - i > 1:
            tr.prefetch(_bisection_tree(tr.xs, tr.vs, min(steps - i, SPECULATE_DEPTH)))
        tr.eval([m])
    x, v = tr.best()
    return SearchResult(x=x, value=v, evals=len(tr.xs))


def _next_bisection(xs: list[float], vs: list[float]) -> float | None:
    """The edge bisection's next point: the geometric midpoint between the best point
    and its right neighbour when that is lower (a cliff), else its left neighbour when
    that is lower (a plateau's start); None when neither is."""
    t = _Tracker(None)
    t.xs, t.vs = xs, vs
    bx, bv = t.best()
    for x in (min((x for x in xs if x > bx), default=None),
              max((x for x in xs if x < bx), default=None)):
        if x is not None and vs[xs.index(x)] < bv - t.tol():
            return math.sqrt(bx * x)
    return None


def _bisection_tree(xs: list[float], vs: list[float], depth: int) -> list[float]:
    """The points the next ``depth`` bisection steps may evaluate, for the two outcomes
    of each (the midpoint becomes the best point, or is lower than it): at most
    ``2**depth - 1`` points. A prediction only: the steps still run one by one on the
    values, and a point outside the tree is evaluated when asked."""
    m = _next_bisection(xs, vs)
    if m is None or depth <= 0:
        return []
    out = [m]
    for v in (math.inf, -math.inf):  # best (not finite: the tolerance is unchanged), lower
        out += _bisection_tree([*xs, m], [*vs, v], depth - 1)
    return out


def maximize_line(ctx: Any, honest: Tensor, base: Tensor, direction: Tensor,
                  score: Callable[[Tensor], Tensor], lo: float, hi: float, budget: int,
                  method: str = "scan", signs: Tensor | None = None,
                  **kw: float) -> SearchResult:
    """:func:`maximize` of ``score(aggregates [k, d]) -> [k]`` over the scales c of
    the line of candidates ``honest + f rows base + c signs_j direction``, each batch
    of scales one ``ctx.query_line`` (the honest rows' work done once per round): how
    every line-search attack queries the pipeline. ``kw``: ``start``, ``delta``,
    ``ratio`` of ``method="lpd"`` or ``"byzfl"``."""

    def objective(cs: Tensor) -> Tensor:
        return score(ctx.query_line(honest, base, direction, cs, signs))

    from byzbench.aggregators import line

    return maximize(objective, lo, hi, budget, method, speculate=line.has_paths(ctx.pipeline),
                    **kw)


def _line(objective: Objective, evals: int, start: float, delta: float, ratio: float,
          forward_only: bool) -> SearchResult:
    """The reference line searches step for step: ByzantineMomentum's
    ``tools.misc.line_maximize`` (``forward_only=False``) or ByzFL 0.0.11's
    ``Optimal_*`` expansion + contraction (``forward_only=True``)."""
    n = 0

    def scape(x: float) -> float:
        nonlocal n
        n += 1
        v = float(objective(torch.tensor([x], dtype=torch.float64)).reshape(-1)[0])
        return -math.inf if v != v else v

    best_x = start
    best_y = scape(best_x)
    evals -= 1
    prop_x = best_x
    while evals > 0:  # expansion: double the step while it strictly improves
        prop_x = best_x + delta
        prop_y = scape(prop_x)
        evals -= 1
        if prop_y > best_y:
            best_y, best_x = prop_y, prop_x
            delta *= 2
        else:
            delta *= ratio
            break
    while evals > 0:  # contraction
        if forward_only:
            prop_x = best_x + delta  # ByzFL: always one step forward of the best point
        elif prop_x < best_x:
            prop_x += delta
        else:
            x = prop_x - delta
            while x < 0:
                x = (x + prop_x) / 2
            prop_x = x
        prop_y = scape(prop_x)
        evals -= 1
        if prop_y > best_y:
            best_y, best_x = prop_y, prop_x
        delta *= ratio
    return SearchResult(x=best_x, value=best_y, evals=n)
