"""Generic per-round tuning of an attack's scale parameter on the real pipeline."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import line_search_max
from byzbench.attacks.base import RoundContext


class Tuned:
    """Wrap an attack and choose its scale each round to maximize the damage:

    ``v_t = argmax_{v in [lo, hi]} || P(cat(G, attack_v(G))) - mean(G) ||``

    where P is the run's real pre-aggregators + rule (``ctx.query``, no side effects),
    G the honest gradients, and ``attack_v`` the wrapped attack with its scale attribute
    (the attack's ``scale_param``: alie ``z``, ipm ``eps``, seesaw ``lam``, finite_norm
    ``gamma``, min_max/min_sum ``gamma``, ...) set to v. The search is
    ``_ops.line_search_max``: a geometric grid then golden-section refinement, at most
    ``budget`` pipeline evaluations per round; the best value seen wins. Every candidate
    sees the same random numbers (``ctx.generator`` is rewound before each call), so the
    result is deterministic. Attributes the attack lists in ``scale_overrides`` are set
    once on a private copy (e.g. seesaw ``magnitude=fixed``, so ``lam`` is used).

    Args:
        attack: any attack with a ``scale_param`` class attribute (or pass ``param``).
        budget: pipeline evaluations per round (>= 2).
        lo, hi: scale range; defaults from the attack's ``scale_range`` or ``(0, 10)``.
        param: name of the scale attribute (default: ``attack.scale_param``).

    Reference: the "optimal"/tuned attack variants of El Mhamdi et al. (ICML 2018) and
    ByzFL's attack optimizer; the objective is byzbench's choice (distance of the
    aggregate from the honest mean).
    """

    def __init__(
        self,
        attack: Any,
        budget: int = 16,
        lo: float | None = None,
        hi: float | None = None,
        param: str | None = None,
    ):
        param = param or getattr(attack, "scale_param", None)
        require(param is not None and hasattr(attack, param), "attack.tune.param", param,
                f"the name of a scale attribute of {type(attack).__name__}")
        rng = getattr(attack, "scale_range", (0.0, 10.0))
        lo = float(rng[0] if lo is None else lo)
        hi = float(rng[1] if hi is None else hi)
        require(int(budget) >= 2, "attack.tune.budget", budget, ">= 2")
        require(0 <= lo < hi, "attack.tune.hi", hi, f"> lo={lo} >= 0")
        self.attack = copy.deepcopy(attack)
        for k, v in getattr(attack, "scale_overrides", {}).items():
            setattr(self.attack, k, v)
        self.param, self.budget, self.lo, self.hi = param, int(budget), lo, hi
        self.local = bool(getattr(attack, "local", False))
        self.last_scale: float | None = None

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

        def damage(v: float) -> float:
            a = ctx.query(torch.cat([honest, run(v)]))
            d = float((a - mu).norm())
            return d if d == d else float("-inf")  # nan aggregates are not "best"

        best, _ = line_search_max(damage, self.lo, self.hi, self.budget)
        self.last_scale = best
        return run(best)
