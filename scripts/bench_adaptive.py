"""Round time of a seesaw-adaptive run against an attack-free run, per rule, with the
line maximizer's queries materialized (before line queries) and by the stages' line
paths (after).

    python scripts/bench_adaptive.py                       # default task, every line rule
    python scripts/bench_adaptive.py --aggs median nnm+krum --rounds 100
    python scripts/bench_adaptive.py --workload mnist      # MLP on MNIST-shaped inputs
    python scripts/bench_adaptive.py --device cuda

Workloads: ``default`` (offline digits, MLP, n = 20, f = 4: d = 4,810) and ``mnist``
(the same MLP on 28 x 28 inputs, d = 50,890; MNIST cannot be downloaded here, so fake
files of MNIST's shape and format are written to a temporary folder and read by the
real loader). Per rule (``nnm+krum`` = ``preagg=[nnm] agg=krum``) three runs:
``attack=none``; ``attack=seesaw`` (magnitude ``adaptive``: ``budget`` candidate
scales per round) with every line query materialized (``aggregators.line.PATHS =
False``: the candidates through ``Pipeline.query_batch``, what queries cost before);
and the same with the line paths. Reported: the median of the loop's own per-round
wall time (metrics.csv ``time/round``, evaluation excluded) over rounds after the first
``--warmup``, and the ratios adaptive / plain (target <= 1.5, geomed <= 2); and the
same ratios of the process CPU time of the whole training loop (all rounds and the one
final evaluation; threads of the columnwise pool included), which a busy machine
inflates far less than wall time (a process preempted mid-round is charged no CPU
time). The runs of a rule are interleaved in blocks so that load from other processes
hits them alike; on a shared CPU the timings are noisy (repeat, compare medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

RULES = ["mean", "median", "trmean", "meamed", "phocas", "krum", "multikrum", "bulyan",
         "mda", "hc_krum", "geomed", "cclip", "nnm+krum", "bucketing+cclip", "clipping+median",
         "arc+trmean"]


def round_times(overrides: list[str], line_paths: bool = True) -> list[float]:
    """The loop's per-round wall times of one run."""
    return run(overrides, line_paths)[0]


def run(overrides: list[str], line_paths: bool = True) -> tuple[list[float], float]:
    """``(per-round wall times, process CPU seconds of the training loop)`` of one run."""
    from hydra import compose, initialize_config_dir

    from byzbench.aggregators import line
    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    exp, _ = build_experiment(cfg)
    line.PATHS = line_paths
    cpu = time.process_time()
    try:
        train(exp)
    finally:
        cpu = time.process_time() - cpu
        line.PATHS = True
    exp.log.flush()
    return [v for _t, s, m, v in exp.log.rows if s == "time" and m == "round"], cpu


def rule_overrides(spec: str) -> list[str]:
    """``a+b+rule`` -> ``preagg=[a,b] agg=rule`` (clipping at 0.5, below the default
    task's gradient norms, so that it clips)."""
    *pre, agg = spec.split("+")
    out = [f"agg={agg}", f"preagg=[{','.join(pre)}]"]
    if pre and pre[0] == "clipping":
        out.append("preagg.clipping.threshold=0.5")
    return out


def workload(name: str, tmp: str) -> list[str]:
    """Hydra overrides of a workload (``mnist``: fake MNIST-format files in ``tmp``)."""
    if name == "default":
        return []
    from byzbench.data._fake import write_fake_mnist

    write_fake_mnist(tmp, "MNIST", n_train=6000, n_test=1000, learnable=True)
    return ["dataset=mnist", "model=mlp", f"dataset.root={tmp}", "dataset.download=false"]


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aggs", nargs="+", default=RULES)
    ap.add_argument("--workload", choices=("default", "mnist"), default="default")
    ap.add_argument("--rounds", type=int, default=40, help="rounds per block")
    ap.add_argument("--blocks", type=int, default=2, help="interleaved blocks per run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    tmp = tempfile.TemporaryDirectory()
    base = [f"rounds={a.rounds + a.warmup}", f"eval_every={a.rounds + a.warmup}",
            "eval_train=false", "progress=false", "plot=false", f"device={a.device}",
            f"threads={a.threads}", *workload(a.workload, tmp.name), *a.overrides]
    print(f"workload {a.workload} + {' '.join(a.overrides) or '(no overrides)'}, device "
          f"{a.device}, threads {torch.get_num_threads()}; median ms per round over "
          f"{a.blocks} x {a.rounds} rounds (shared CPU: noisy)")
    print(f"{'':<17}{'wall ms per round (median)':>37}{'CPU ms per round':>37}")
    print(f"{'rule':<17}" + f"{'plain':>8}{'mat.':>8}{'line':>8}{'before':>7}{'after':>6}" * 2)
    ratios = {}
    for spec in a.aggs:
        runs: dict[str, list[float]] = {"plain": [], "mat": [], "line": []}
        cpu = {"plain": [], "mat": [], "line": []}
        for b in range(a.blocks):
            ov = [*base, *rule_overrides(spec), f"seed={b}"]
            for key, att, paths in (("plain", "none", True), ("mat", "seesaw", False),
                                    ("line", "seesaw", True)):
                wall, c = run([*ov, f"attack={att}"], line_paths=paths)
                runs[key] += wall[a.warmup:]
                cpu[key].append(c / (a.rounds + a.warmup))
        p, m, li = (statistics.median(runs[k]) for k in ("plain", "mat", "line"))
        cp, cm, cl = (statistics.median(cpu[k]) for k in ("plain", "mat", "line"))
        ratios[spec] = (m / p, li / p)
        print(f"{spec:<17}{1e3 * p:>8.2f}{1e3 * m:>8.2f}{1e3 * li:>8.2f}{m / p:>7.2f}"
              f"{li / p:>6.2f}{1e3 * cp:>8.2f}{1e3 * cm:>8.2f}{1e3 * cl:>8.2f}{cm / cp:>7.2f}"
              f"{cl / cp:>6.2f}", flush=True)
    worst = max(ratios, key=lambda k: ratios[k][1])
    print(f"worst ratio after: {worst} {ratios[worst][1]:.2f} (target <= 1.5, geomed <= 2)")
    tmp.cleanup()
    return ratios


if __name__ == "__main__":
    main(sys.argv[1:])
