"""In the loop: bit_flip / label_flip under worker momentum flip the raw gradient
(epfml, default) or the momentum (FLB, ``byz_momentum: true``); the server's round
(permutation, aggregate) does not depend on the attacker's queries, and the attacker
gets the server's permutation only with ``server_randomness``."""

from __future__ import annotations

import torch
from hydra import compose, initialize_config_dir

from byzbench.attacks.base import Attack
from byzbench.build import build_experiment
from byzbench.loop import train
from byzbench.run import CONF_DIR

TINY = ["rounds=2", "eval_every=2", "cluster.n_workers=7", "cluster.byz_frac=0.3",
        "batch_size=8", "progress=false", "model.hidden=[16]", "eval_train=false"]


def _exp(*ov: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, *ov])
    return build_experiment(cfg)[0]


class Spy(Attack):
    """Wraps the built attack and records what the context holds each round (the
    wrapped attack's declarations are the spy's)."""

    def __init__(self, attack, queries: int = 0):
        self.attack, self.queries, self.seen, self.byz = attack, queries, [], []
        self.local, self.poisons_data = attack.local, attack.poisons_data
        self.byz_momentum, self.server_randomness = attack.byz_momentum, attack.server_randomness

    def __getattr__(self, name):
        if name == "attack":
            raise AttributeError(name)
        return getattr(self.attack, name)

    def __call__(self, honest, ctx):
        for _ in range(self.queries):
            ctx.query(torch.cat([honest, honest[: ctx.f]]))
        self.seen.append(ctx)
        # ctx tensors are valid during the call only (the loop reuses its momentum
        # buffer in place), so a copy is what the attacker saw this round.
        self.byz.append(None if ctx.byz_grads is None else ctx.byz_grads.clone())
        return self.attack(honest, ctx)


def test_bit_flip_flips_raw_gradient_or_momentum():
    beta = 0.9
    out = {}
    for flag in ("false", "true"):
        exp = _exp("attack=bit_flip", f"attack.byz_momentum={flag}", f"worker_momentum={beta}")
        exp.attack = Spy(exp.attack)
        train(exp)
        out[flag] = exp.attack.byz
    # round 0: momentum = (1 - beta) g, the raw gradient g (same data, same seed)
    torch.testing.assert_close(out["true"][0], (1 - beta) * out["false"][0])
    assert not torch.allclose(out["true"][1], out["false"][1])


def test_server_round_ignores_attacker_queries_and_knowledge_option():
    aggs = {}
    for q in (0, 3):
        exp = _exp("attack=seesaw", "preagg=[bucketing]", "attack.budget=4")
        exp.attack = Spy(exp.attack, queries=q)
        train(exp)
        aggs[q] = exp.log.last("train", "agg_norm"), [c.perm.clone() for c in exp.attack.seen]
    assert aggs[0][0] == aggs[3][0] and all(torch.equal(a, b) for a, b in zip(aggs[0][1],
                                                                              aggs[3][1]))
    exp = _exp("attack=seesaw", "attack.server_randomness=true", "attack.budget=4")
    exp.attack = Spy(exp.attack)
    train(exp)
    ctx = exp.attack.seen[0]
    assert ctx.server_randomness and torch.equal(ctx.query_order(), ctx.perm)
