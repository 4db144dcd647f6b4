"""How often line queries change an adaptive attack's chosen scale (issue 19).

    python scripts/line_scales.py                    # the study's rules and attacks, cap 2
    python scripts/line_scales.py --rounds 150 --aggs krum geomed --attacks seesaw

On the default task, each round of a run with ``attack=A`` (seesaw, directional_deviation,
finite_norm: the study's adaptive attacks) computes the chosen scale twice on the same
honest rows and context: with the line maximizer's queries as before line queries (the
attack's own candidate rows, materialized, through ``query_candidates`` /
``Pipeline.query_batch``: the code before the change, reproduced here) and as now
(``ctx.query_line``); the run continues with the new one. Printed per rule and attack:
rounds compared, rounds where the scale differs, and the largest relative difference.
"""

from __future__ import annotations

import argparse
import sys

import torch


def old_scale(att, honest, ctx) -> float:
    """The attack's adaptive scale by the code before line queries."""
    from byzbench.attacks._ops import length_unit, query_candidates
    from byzbench.attacks.base import repeat_rows
    from byzbench.attacks.search import maximize

    if type(att).__name__ == "FiniteNorm":
        mu = honest.mean(dim=0)
        e = att.unit_direction(honest) * length_unit(honest, att.unit, mu)

        def along(gs):
            rows = lambda g: repeat_rows(mu + g * e, ctx.f)  # noqa: E731
            return (query_candidates(ctx, honest, rows, gs.tolist()) - mu) @ e

        return maximize(along, att.lo, att.cap, att.budget, att.search).x
    r, u = att.pivot_and_direction(honest)
    signs = att.row_signs(ctx.t, ctx.f, honest)
    s = float(att.phase(ctx.t))
    L = length_unit(honest, att.unit, r)

    def rows(lam):
        return r.unsqueeze(0) - (lam * L) * signs.unsqueeze(1) * u.unsqueeze(0)

    def displacement(lams):
        along = (query_candidates(ctx, honest, rows, lams.tolist()) - r) @ u
        return -s * along if att.groups == 1 or ctx.f == 1 else along.abs()

    return maximize(displacement, att.lo, att.cap, att.budget, att.search).x


class Recorder:
    """Wraps the run's attack: records (old scale, new scale) each round."""

    def __init__(self, att):
        self.att, self.pairs = att, []

    def __getattr__(self, name):
        if name == "att":
            raise AttributeError(name)
        return getattr(self.att, name)

    def __call__(self, honest, ctx):
        before = old_scale(self.att, honest, ctx)
        out = self.att(honest, ctx)
        now = getattr(self.att, "last_lambda", None) or getattr(self.att, "last_gamma", None)
        self.pairs.append((before, float(now)))
        return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aggs", nargs="+",
                    default=["mean", "median", "trmean", "krum", "geomed", "bulyan", "cclip",
                             "hc_krum"])
    ap.add_argument("--attacks", nargs="+",
                    default=["seesaw", "directional_deviation", "finite_norm"])
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--cap", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    print(f"default task, cap {a.cap}, seed {a.seed}, {a.rounds} rounds")
    print(f"{'rule':<10}{'attack':<23}{'rounds':>7}{'differ':>7}{'max rel diff':>14}")
    total = differ = 0
    for agg in a.aggs:
        for attack in a.attacks:
            ov = [f"agg={agg}", f"attack={attack}", f"attack.cap={a.cap}", f"seed={a.seed}",
                  f"rounds={a.rounds}", f"eval_every={a.rounds}", "eval_train=false",
                  "progress=false", "plot=false", "threads=1"]
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                cfg = compose(config_name="config", overrides=ov)
            exp, _ = build_experiment(cfg)
            rec = exp.attack = Recorder(exp.attack)
            train(exp)
            diffs = [abs(o - n) / max(abs(o), 1e-12) for o, n in rec.pairs if o != n]
            total += len(rec.pairs)
            differ += len(diffs)
            print(f"{agg:<10}{attack:<23}{len(rec.pairs):>7}{len(diffs):>7}"
                  f"{max(diffs, default=0.0):>14.3g}", flush=True)
    print(f"all: {differ} of {total} rounds chose a different scale")


if __name__ == "__main__":
    main(sys.argv[1:])
