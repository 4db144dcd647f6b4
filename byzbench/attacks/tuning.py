"""Generic per-round tuning of an attack's scale parameter on the real pipeline."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import query_candidates, scale_line_of
from byzbench.attacks.base import RoundContext
from byzbench.attacks.search import SEARCHES, check_search, maximize, maximize_line


class Tuned:
    """Wrap an attack and choose its scale each round to maximize the damage:

    ``v_t = argmax_{v in [lo, hi]} || P(cat(G, attack_v(G))) - mean(G) ||``

    where P is the run's real pre-aggregators + rule (``ctx.query``: no side effects,
    the server's row convention, the attacker's own randomness unless
    ``server_randomness``), G the honest gradients and ``attack_v`` the wrapped attack
    with its scale attribute (the attack's ``scale_param``: alie ``z``, ipm ``eps``,
    seesaw ``lam``, finite_norm ``gamma``, min_max/min_sum ``gamma``, ...) set to v.
    The search is ``search.maximize`` (``search: scan``: log-spaced scan, refinement,
    bisection on the cliff; ``search: lpd``: ByzantineMomentum's / ByzFL's
    ``line_maximize`` from ``start`` with step ``delta``), at most ``budget`` pipeline
    evaluations per round. Every candidate sees the same random numbers
    (``ctx.generator`` is rewound before each call), so the result is deterministic.
    Attributes the attack lists in ``scale_overrides`` are set once on a private copy
    (e.g. seesaw ``magnitude=fixed``, so ``lam`` is used). Scales that are lengths are in
    the attack's own ``unit``, so the tuned attack stays scale-free.

    Args:
        attack: any attack with a ``scale_param`` class attribute (or pass ``param``).
        budget: pipeline evaluations per round (>= 2; BM 16, ByzFL 20).
        lo, hi: scan range, 0 < lo < hi; defaults from the attack's ``scale_range``.
        param: name of the scale attribute (default: ``attack.scale_param``).
        search: ``scan | lpd``.
        start, delta: ``lpd`` only (BM: 0 and 1; ByzFL: 0 and 10).

    ``last_scale`` / ``last_evals`` hold the chosen scale and evaluations spent.

    Reference: the "optimal"/tuned attack variants of El Mhamdi et al. (ICML 2018), and
    ``Optimal_*`` attacks of ByzFL / ``line_maximize`` of LPD-EPFL's ByzantineMomentum;
    the objective is theirs (distance of the aggregate from the honest mean).
    """

    def __init__(
        self,
        attack: Any,
        budget: int = 16,
        lo: float | None = None,
        hi: float | None = None,
        param: str | None = None,
        search: str = "scan",
        start: float = 0.0,
        delta: float = 1.0,
    ):
        param = param or getattr(attack, "scale_param", None)
        require(param is not None and hasattr(attack, param), "attack.tune.param", param,
                f"the name of a scale attribute of {type(attack).__name__}")
        rng = getattr(attack, "scale_range", (0.01, 10.0))
        lo = float(rng[0] if lo is None else lo)
        hi = float(rng[1] if hi is None else hi)
        check_search(search, lo, hi, budget, "attack.tune")
        require(start >= 0, "attack.tune.start", start, ">= 0")
        require(delta > 0, "attack.tune.delta", delta, "> 0")
        self.attack = copy.deepcopy(attack)
        for k, v in getattr(attack, "scale_overrides", {}).items():
            setattr(self.attack, k, v)
        self.param, self.budget, self.lo, self.hi = param, int(budget), lo, hi
        self.search, self.start, self.delta = search, float(start), float(delta)
        self.local = bool(getattr(attack, "local", False))
        self.last_scale: float | None = None
        self.last_evals: int | None = None

    def __getattr__(self, name: str) -> Any:
        # Delegate optional protocol attributes (e.g. transform_labels) to the attack.
        if name == "attack":
            raise AttributeError(name)
        return getattr(self.attack, name)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return self.attack(honest, ctx)
        gen = ctx.generator
        state = gen.get_state() if gen is not None else None
        mu = honest.mean(dim=0)

        def run(v: float) -> Tensor:
            if state is not None:
                gen.set_state(state)
            setattr(self.attack, self.param, v)
            return self.attack(honest, ctx)

        def score(aggs: Tensor) -> Tensor:
            return torch.linalg.vector_norm(aggs - mu, dim=1)

        lpd = {"start": self.start, "delta": self.delta}
        scale_line = scale_line_of(self.attack)
        line = None if scale_line is None else scale_line(honest, ctx)
        if line is not None:  # rows base + v signs_j direction: one line query per batch
            base, direction, signs = line
            res = maximize_line(ctx, honest, base, direction, score, self.lo, self.hi,
                                self.budget, self.search, signs=signs, **lpd)
        else:
            res = maximize(lambda vs: score(query_candidates(ctx, honest, run, vs.tolist())),
                           self.lo, self.hi, self.budget, self.search, **lpd)
        self.last_scale, self.last_evals = res.x, res.evals
        return run(res.x)


__all__ = ["Tuned", "SEARCHES"]
