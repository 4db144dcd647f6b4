"""The loop's two hooks for rules: stage stats logged as train metrics
(cclip's clipped fraction), and MoNNA's `pivot: honest` told where an honest row is."""

from __future__ import annotations

import torch

from byzbench.attacks.base import as_attack
from byzbench.build import build_experiment
from byzbench.loop import train

from .conftest import TINY, compose_cfg


def test_cclip_clipped_fraction_is_logged_every_round():
    exp, _ = build_experiment(compose_cfg(*TINY, "attack=sign_flip", "agg=cclip", "rounds=3"))
    train(exp)
    exp.log.flush()
    frac = [v for _, s, m, v in exp.log.rows if s == "train" and m == "cclip_clipped"]
    tau = [v for _, s, m, v in exp.log.rows if s == "train" and m == "cclip_tau"]
    assert len(frac) == 3 and len(tau) == 3
    assert all(0.0 < v < 1.0 for v in frac)  # tau auto: about half the rows clipped
    assert all(v > 0 for v in tau)


def test_monna_honest_pivot_is_an_honest_row():
    exp, _ = build_experiment(compose_cfg(*TINY, "attack=sign_flip", "agg=monna",
                                          "agg.pivot=honest", "rounds=3"))
    rule, seen, honest = exp.pipeline.rule, [], []
    attack = exp.attack

    def spy_attack(h, ctx):
        honest.append(h.clone())
        return attack(h, ctx)

    exp.attack = as_attack(spy_attack)
    cls = type(rule)
    orig = cls.__call__

    def spy_rule(self, x):
        seen.append(x[self.honest_row].clone())
        return orig(self, x)

    cls.__call__ = spy_rule
    try:
        train(exp)
    finally:
        cls.__call__ = orig
    assert len(seen) == 3
    for row, h in zip(seen, honest):
        assert torch.equal(row, h[0])  # honest row 0, wherever the permutation put it
