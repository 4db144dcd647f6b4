"""Round time of a seesaw-adaptive run against an attack-free run, per rule.

    python scripts/bench_adaptive.py                       # default task, mean/median/krum
    python scripts/bench_adaptive.py --aggs median trmean --rounds 100
    python scripts/bench_adaptive.py --device cuda

The default task (offline digits, MLP, n = 20, f = 4) with ``attack=none`` and with
``attack=seesaw`` (magnitude ``adaptive``: the line maximizer evaluates the real
pipeline at ``budget`` candidate scales per round, through ``Pipeline.query_batch``
when every stage has a batched path), each rule in ``--aggs``. Reported: the median of
the loop's own per-round wall time (metrics.csv ``time/round``: the whole round,
evaluation excluded) over rounds after the first ``--warmup``, and the ratio
adaptive / plain (target <= 2). The two runs of a rule are interleaved in blocks so
that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch


def round_times(overrides: list[str]) -> list[float]:
    """The loop's per-round wall times of one run."""
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    exp, _ = build_experiment(cfg)
    train(exp)
    exp.log.flush()
    return [v for _t, s, m, v in exp.log.rows if s == "time" and m == "round"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aggs", nargs="+", default=["mean", "median", "krum"])
    ap.add_argument("--rounds", type=int, default=40, help="rounds per block")
    ap.add_argument("--blocks", type=int, default=2, help="interleaved blocks per run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for both runs")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    base = [f"rounds={a.rounds + a.warmup}", f"eval_every={a.rounds + a.warmup}",
            "eval_train=false", "progress=false", "plot=false", f"device={a.device}",
            *a.overrides]
    print(f"default task + {' '.join(a.overrides) or '(no overrides)'}, device {a.device}, "
          f"threads {torch.get_num_threads()}; median ms per round over "
          f"{a.blocks} x {a.rounds} rounds")
    print(f"{'agg':<10}{'plain ms':>10}{'seesaw ms':>11}{'ratio':>8}{'batched':>9}")
    ratios = {}
    for agg in a.aggs:
        plain: list[float] = []
        adaptive: list[float] = []
        for b in range(a.blocks):
            plain += round_times([*base, f"agg={agg}", "attack=none", f"seed={b}"])[a.warmup:]
            adaptive += round_times([*base, f"agg={agg}", "attack=seesaw",
                                     f"seed={b}"])[a.warmup:]
        from byzbench.build import build_pipeline

        pipe = build_pipeline({}, {"_target_": _target(agg)}, 20, 4, None) if _target(agg) \
            else None
        p, s = statistics.median(plain), statistics.median(adaptive)
        ratios[agg] = s / p
        batched = "-" if pipe is None else ("yes" if pipe.supports_batch() else "no")
        print(f"{agg:<10}{1e3 * p:>10.3f}{1e3 * s:>11.3f}{s / p:>8.2f}{batched:>9}")
    print(f"worst ratio {max(ratios.values()):.2f} (target <= 2)")
    return ratios


def _target(agg: str) -> str | None:
    """The rule's _target_ from its YAML (to report whether it has a batched path)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    import byzbench

    path = Path(byzbench.__file__).parent / "conf" / "agg" / f"{agg}.yaml"
    return str(OmegaConf.load(path).get("_target_")) if path.is_file() else None


if __name__ == "__main__":
    main(sys.argv[1:])
