"""Shared by the attack tests: round contexts over a given rule, rules written in the
test (mean, median, Krum), test attacks, seeded honest rows."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import Attack, RoundContext


def mean_rule(x):
    return x.mean(dim=0)


def ctx(f, t=0, n_h=0, rule=mean_rule, seed=0, prev=None, byz=None, n=None):
    return RoundContext(t=t, n=n if n is not None else n_h + f, f=f, f_declared=f,
                        pipeline=Pipeline([], rule), prev_aggregate=prev, byz_grads=byz,
                        generator=torch.Generator().manual_seed(seed))


TRI = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]], dtype=f64)  # mean (2/3, 2/3)


class Shift(Attack):
    """Test attack: every row is c * e_0."""

    scale_param = "c"
    scale_range = (0.01, 10.0)

    def __init__(self, c: float = 0.0):
        self.c = c

    def __call__(self, honest, ctx):
        e = torch.zeros(honest.shape[1], dtype=honest.dtype)
        e[0] = 1.0
        return (self.c * e).expand(ctx.f, -1).clone()


def soft_rule(x):
    # sum_i x_i exp(-|x_i|^2 / 2) / n: with honest rows at 0 and f rows at c e_0 the
    # aggregate is (f/n) c exp(-c^2/2) e_0, maximal at c = 1 (derivative (1 - c^2) e^..).
    return (x * torch.exp(-(x * x).sum(1, keepdim=True) / 2)).mean(0)


def ctx_h(f, n_h, rule=lambda x: x.mean(0), byz=None, seed=0, f_declared=None):
    return RoundContext(t=0, n=n_h + f, f=f, f_declared=f if f_declared is None else f_declared,
                        pipeline=Pipeline([], rule), byz_grads=byz,
                        generator=torch.Generator().manual_seed(seed))


def grads(h, d, seed, offset=0.3):
    return torch.randn(h, d, generator=torch.Generator().manual_seed(seed), dtype=f64) + offset


class TinyKrum:
    """Krum written in the test (Blanchard et al.): score_i = sum of the n - f - 2
    smallest squared distances to other rows; ties -> lowest index; one-hot weights."""

    def __init__(self, f: int):
        self.f = f
        self.last_weights = None

    def __call__(self, x):
        n = x.shape[0]
        d2 = ((x.unsqueeze(1) - x.unsqueeze(0)) ** 2).sum(-1)
        scores = d2.sort(dim=1).values[:, 1 : n - self.f - 1].sum(1)
        i = int(scores.argmin())
        w = torch.zeros(n, dtype=x.dtype)
        w[i] = 1.0
        self.last_weights = w
        return x[i]


def ctx_for(rule, f, t=0, n_h=None, seed=0):
    return RoundContext(t=t, n=(n_h or 0) + f, f=f, f_declared=f,
                        pipeline=Pipeline([], rule), generator=torch.Generator().manual_seed(seed))


krum_mod = pytest.importorskip("byzbench.aggregators.krum")


median_mod = pytest.importorskip("byzbench.aggregators.median")


def rule_ctx(rule, f, n_h, t=0):
    return RoundContext(t=t, n=n_h + f, f=f, f_declared=f, pipeline=Pipeline([], rule),
                        generator=torch.Generator().manual_seed(0))
