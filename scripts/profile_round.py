"""Where a round's time goes, part by part, next to each part's floor.

    python scripts/profile_round.py dataset=mnist model=mlp 'model.hidden=[100]' \\
        agg=trmean 'preagg=[nnm]' attack=sign_flip worker_momentum=0.9
    python scripts/profile_round.py --rounds 40 attack=seesaw agg=median   # default task

Arguments after the options are Hydra overrides, exactly as for ``byzbench``. With
``dataset=mnist`` (or fashion_mnist) and no ``dataset.root``, fake files in
torchvision's format are written to a temporary folder (60k/10k images; MNIST cannot
be downloaded here). The run is the real training loop (``byzbench.loop.train``); the
loop calls ``exp.lap(part)`` between parts, which this script times (after a CUDA
synchronize on GPU, so each part's kernels are charged to it).

Parts: sampling (minibatch indices), batch (gather + normalize), gradients
(per-worker), momentum, attack, aggregation (row permutation + pre-aggregators +
rule), metrics (logged scalars, divergence check), step (optimizer), other (loop
overhead). Evaluation runs every ``eval_every`` rounds and is reported apart, per
evaluation and amortized per round.

Floors (median of repeated micro-benchmarks on the run's own tensors): the cheapest
operation that does the part's essential work - sampling: one ``rand [rows, B]``;
batch: one uint8 row gather of ``rows * B`` samples; gradients: one forward/backward
over all ``rows * B`` samples as a single batch; momentum: one in-place lerp over
``[rows, d]``; attack: one reduction over the honest ``[n_h, d]``; aggregation: one
reduction over ``[n, d]``; metrics: one norm over ``[d]``; step: one in-place axpy
over ``[d]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable

import torch

PARTS = ("sampling", "batch", "gradients", "momentum", "attack", "aggregation", "metrics",
         "step", "other")
CORE = ("gradients", "attack", "aggregation")


class Laps:
    """``lap(part)``: charge the time since the previous lap to ``part``; a round
    starts at the lap named ``other`` (see byzbench/loop.py)."""

    def __init__(self, device: torch.device, skip: int):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else None
        self.skip = skip
        self.rounds: list[dict[str, float]] = []
        self.evals: list[float] = []
        self.t = time.perf_counter()

    def __call__(self, part: str) -> None:
        if self.sync is not None:
            self.sync()
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        if part == "other":
            self.rounds.append(defaultdict(float))
        if not self.rounds:
            return
        if part == "evaluation":
            self.evals.append(dt)
        else:
            self.rounds[-1][part] += dt

    def table(self) -> dict[str, float]:
        """Mean seconds per round of each part, warm-up rounds skipped."""
        kept = self.rounds[self.skip:]
        return {p: statistics.fmean(r.get(p, 0.0) for r in kept) for p in PARTS}


def median_time(fn: Callable[[], object], sync: Callable[[], None] | None,
                repeats: int = 30) -> float:
    """Median seconds of ``fn()`` after two warm-up calls."""
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def floors(exp, rows: int) -> dict[str, float]:
    """Seconds of each part's floor operation on the run's tensors (see module doc)."""
    from byzbench.grads import make_loss

    data, theta, spec = exp.data, exp.theta.detach(), exp.spec
    dev = theta.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    B = exp.sampler.batch_size
    d = theta.numel()
    g = torch.Generator(device=dev).manual_seed(0)
    idx = torch.randint(0, len(data.y_train), (rows * B,), device=dev, generator=g)
    X = data.prepare(data.x_train[idx])
    Y = data.y_train[idx]
    loss = make_loss(exp.model, data.task)
    G = torch.randn(rows, d, device=dev, generator=g)
    M = torch.randn(rows, d, device=dev, generator=g)
    V = torch.randn(spec.n, d, device=dev, generator=g)
    u, th = V[0].clone(), theta.clone()

    def grad_floor() -> None:
        p = theta.clone().requires_grad_(True)
        torch.autograd.grad(loss(p, X, Y), p)

    return {
        "sampling": median_time(lambda: torch.rand(rows, B, device=dev, generator=g), sync),
        "batch": median_time(lambda: data.x_train.index_select(0, idx), sync),
        "gradients": median_time(grad_floor, sync),
        "momentum": median_time(lambda: M.lerp_(G, 0.1), sync),
        "attack": median_time(lambda: G[: spec.n_honest].sum(0), sync),
        "aggregation": median_time(lambda: V.sum(0), sync),
        "metrics": median_time(lambda: torch.linalg.vector_norm(u), sync),
        "step": median_time(lambda: th.add_(u, alpha=-1e-9), sync),
        "other": 0.0,
    }


def with_fake_images(overrides: list[str], tmp: str) -> list[str]:
    """Add ``dataset.root``/``download=false`` pointing at fake files for MNIST-like
    datasets when no root is given."""
    from byzbench.data._fake import write_fake_mnist

    folders = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
    ds = next((o.split("=", 1)[1] for o in overrides if o.startswith("dataset=")), None)
    if ds not in folders or any(o.startswith("dataset.root=") for o in overrides):
        return overrides
    write_fake_mnist(tmp, folders[ds], n_train=60_000, n_test=10_000, learnable=True)
    return [*overrides, f"dataset.root={tmp}", "dataset.download=false"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60, help="rounds to run (default 60)")
    ap.add_argument("--warmup", type=int, default=5, help="first rounds left out")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    with tempfile.TemporaryDirectory() as tmp:
        ov = with_fake_images(list(a.overrides), tmp)
        ov += [f"rounds={a.rounds + a.warmup}", "progress=false", "plot=false"]
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=ov)
        exp, info = build_experiment(cfg)
        laps = Laps(torch.device(info["device"]), a.warmup)
        exp.lap = laps
        t0 = time.perf_counter()
        train(exp)
        wall = time.perf_counter() - t0
        rows = exp.spec.n if (exp.attack.computes and exp.spec.f > 0) else exp.spec.n_honest
        fl = floors(exp, rows)
    parts = laps.table()
    total = sum(parts.values())
    print(f"{' '.join(a.overrides) or '(defaults)'}")
    print(f"n={info['n']} f={info['f']} d={info['d']} device={info['device']} "
          f"grad_path={info['grad_path']} threads={torch.get_num_threads()} "
          f"rounds timed={len(laps.rounds) - a.warmup} (after {a.warmup} warm-up)")
    print(f"{'part':<12}{'ms/round':>10}{'share':>8}{'floor ms':>10}{'x floor':>9}")
    for p in PARTS:
        ms, fms = 1e3 * parts[p], 1e3 * fl[p]
        ratio = f"{ms / fms:.1f}" if fms > 0 else "-"
        print(f"{p:<12}{ms:>10.3f}{100 * parts[p] / total:>7.1f}%{fms:>10.3f}{ratio:>9}")
    print(f"{'round':<12}{1e3 * total:>10.3f}{100.0:>7.1f}%")
    if laps.evals:
        ev = statistics.median(laps.evals)
        print(f"evaluation: {1e3 * ev:.1f} ms each, every {exp.eval_every} rounds "
              f"({1e3 * ev / exp.eval_every:.2f} ms/round amortized, not in the round)")
    worst = max((p for p in PARTS if p not in CORE), key=lambda p: parts[p])
    share = parts[worst] / total
    print(f"largest part outside gradients/attack/aggregation: {worst} "
          f"{100 * share:.1f}% (target <= 10%)")
    print(f"wall time {wall:.2f} s for {len(laps.rounds)} rounds and "
          f"{len(laps.evals)} evaluations")
    return {**parts, "round": total, "worst_share": share}


if __name__ == "__main__":
    main(sys.argv[1:])
