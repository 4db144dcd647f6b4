"""What a checkpoint costs: its write time, its size, and its share of the run's time,
for the MNIST MLP and ResNet-20 on CIFAR-10-shaped data (fake images in memory: the
datasets cannot be downloaded here; the numbers do not depend on pixel values).

    python scripts/bench_checkpoint.py                      # both setups, 1 thread
    python scripts/bench_checkpoint.py --setups mlp --rounds 20 --log-rounds 10000

Each setup is built by ``byzbench.build`` from real configs (the MLP: ``dataset=mnist
model=mlp model.hidden=[256,128]``, n = 20, worker momentum 0.9, SGD with momentum;
ResNet-20: ``experiment=repro_cclip_cifar10`` (BatchNorm, n = 25, heavy-ball worker
momentum 0.9)). It times ``--rounds`` training rounds (median), then writes a checkpoint
``--writes`` times (median; the metrics log holds ``--log-rounds`` rounds of rows, as
late in a long run) and prints: write time, file size, the write's share of one round
(``checkpoint.every=1``), of 50 rounds (``every=50``) and at the default setting (one
checkpoint per ``max(minutes, write / max_share)`` of wall time: 10 minutes, 2 %).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SETUPS = {
    "mlp": ["dataset=mnist", "model=mlp", "model.hidden=[256,128]", "cluster.n_workers=20",
            "worker_momentum=0.9", "solver=momentum", "attack=alie", "agg=cclip",
            "eval_every=100000"],
    "resnet20": ["experiment=repro_cclip_cifar10", "worker_momentum=0.9", "eval_every=100000"],
}
SHAPES = {"mlp": ((28, 28), 60_000, 10_000), "resnet20": ((32, 32, 3), 50_000, 10_000)}


class _FakeImages:
    """Stands for a torchvision dataset class: uint8 ``data`` and ``targets``."""

    shape: tuple[int, ...] = (28, 28)
    sizes: tuple[int, int] = (60_000, 10_000)

    def __init__(self, root: str, train: bool, download: bool):
        n = self.sizes[0] if train else self.sizes[1]
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 256, (n, *self.shape), dtype=np.uint8)
        self.targets = rng.integers(0, 10, n).tolist()


def build(setup: str, tmp: str):
    """The setup's experiment, its dataset class replaced by fake images."""
    import torchvision.datasets as tvd
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.run import CONF_DIR

    shape, n_train, n_test = SHAPES[setup]
    fake = type("Fake", (_FakeImages,), {"shape": shape, "sizes": (n_train, n_test)})
    tvd.MNIST = tvd.CIFAR10 = fake
    ov = [*SETUPS[setup], "progress=false", "plot=false", "device=cpu", f"dataset.root={tmp}"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=ov)
    exp, info = build_experiment(cfg)
    return exp, info, cfg


def bench(setup: str, rounds: int, writes: int, log_rounds: int) -> dict[str, float]:
    from byzbench.checkpoint import Checkpointer
    from byzbench.loop import RoundState, train
    from byzbench.run import config_hash

    with tempfile.TemporaryDirectory() as tmp:
        exp, info, cfg = build(setup, tmp)
        exp.rounds = rounds + 1
        times: list[float] = []
        last = [time.perf_counter()]

        def lap(exp_, rs):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            return False

        train(exp, after_round=lap)
        round_s = statistics.median(times[1:])
        # A metrics log as late in a long run: the rows of log_rounds rounds.
        exp.log.flush()
        per_round = [r for r in exp.log.rows if r[0] == 1]
        exp.log.rows = [(t, s, m, v) for t in range(1, log_rounds + 1) for _, s, m, v in per_round]
        ck = Checkpointer(Path(tmp) / "run", config_hash(cfg), every=1, minutes=0)
        rs = RoundState(t=rounds, prev_u=exp.theta.detach().clone(), extra={})
        ws = []
        for _ in range(writes):
            t0 = time.perf_counter()
            path = ck.save(exp, rs)
            ws.append(time.perf_counter() - t0)
        write_s = statistics.median(ws)
        size = path.stat().st_size
    interval = max(60.0 * float(cfg.checkpoint.minutes),
                   write_s / float(cfg.checkpoint.max_share))
    return {"d": info["d"], "n": info["n"], "round_s": round_s, "write_s": write_s,
            "size_mb": size / 2**20, "rows": len(exp.log.rows),
            "share_every1": write_s / (round_s + write_s),
            "share_every50": write_s / (50 * round_s + write_s),
            "share_default": write_s / (interval + write_s)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--rounds", type=int, default=6, help="rounds timed (default 6)")
    ap.add_argument("--writes", type=int, default=5, help="checkpoint writes timed")
    ap.add_argument("--log-rounds", type=int, default=10_000,
                    help="rounds of metrics rows in the log (default 10000)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"threads={a.threads} torch={torch.__version__} writes={a.writes} "
          f"log={a.log_rounds} rounds of rows")
    print(f"{'setup':<10}{'d':>9}{'n':>4}{'round s':>9}{'write s':>9}{'MB':>7}"
          f"{'every=1':>9}{'every=50':>10}{'default':>9}")
    for s in a.setups:
        r = bench(s, a.rounds, a.writes, a.log_rounds)
        print(f"{s:<10}{r['d']:>9}{r['n']:>4}{r['round_s']:>9.3f}{r['write_s']:>9.3f}"
              f"{r['size_mb']:>7.1f}{100 * r['share_every1']:>8.1f}%"
              f"{100 * r['share_every50']:>9.2f}%{100 * r['share_default']:>8.3f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
