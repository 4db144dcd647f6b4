"""The MNIST-1D study's learning-rate choice (docs/STUDY.md "MNIST-1D"): per solver, a
clean run (mean, no attack, seed 0, the study's 150 rounds, n = 20) at lr x {1, 3, 10}
of the option default; the lr with the best final train loss is the preset of
``conf/solver/mnist1d/<solver>.yaml``. Prints the markdown table.

    python scripts/mnist1d_lr.py [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

SOLVERS = {"sgd": 0.1, "adam": 0.001, "rmsprop": 0.001}
FACTORS = (1, 3, 10)


def clean_run(solver: str, lr: float) -> dict[str, float]:
    """Final metrics of the clean study run of ``solver`` at ``lr``."""
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    over = ["experiment=seesaw_vs_finite_norm_mnist1d", "attack=none", "agg=mean",
            f"solver={solver}", f"solver.lr={lr}", "progress=false", "plot=false"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=over)
    exp, _ = build_experiment(cfg)
    return train(exp).final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print("| solver | lr tried | final train loss | test accuracy | chosen |")
    print("|---|---|---|---|---|")
    for solver, lr0 in SOLVERS.items():
        lrs = [round(lr0 * k, 6) for k in FACTORS]
        res = [clean_run(solver, lr) for lr in lrs]
        best = min(range(len(lrs)), key=lambda i: res[i]["train_loss"])
        loss, acc = (" / ".join(f"{r[key]:.3f}" for r in res)
                     for key in ("train_loss", "test_accuracy"))
        print(f"| {solver} | {' / '.join(map(str, lrs))} | {loss} | {acc} | {lrs[best]} |")


if __name__ == "__main__":
    main()
