"""End to end against ByzFL on one workload: wall times and their ratio.

    pip install -e ".[bench]"            # byzfl==0.0.11 (+ seaborn, which it imports)
    python scripts/bench_vs_byzfl.py                 # CPU, 200 steps
    python scripts/bench_vs_byzfl.py --device cuda

Workload (both sides): fake MNIST in torchvision's files (60k train / 10k test,
learnable class prototypes + noise, written to a temporary folder: MNIST cannot be
downloaded here), a 784-100-10 fully connected net (ByzFL's ``fc_mnist``; byzbench
``model=mlp model.hidden=[100]``), n = 20 workers of which f = 4 Byzantine, IID
shards, NNM then coordinate-wise trimmed mean, sign flipping, worker momentum 0.9,
batch 32, server SGD lr 0.1, no weight decay, 200 steps, test accuracy at steps 0,
50, 100, 150, 200 (5 evaluations each side).

Each side runs in its own fresh Python process: ByzFL through its own
``byzfl.benchmark.run_benchmark`` (config.json in a temporary folder, one job), byzbench
through ``byzbench.run.execute`` (what the ``byzbench`` command runs after composing
the config). Printed per side: the in-process wall time of that call (data loading,
setup, training, evaluations, result files; each library and torchvision imported
before the clock on both sides), the whole process (interpreter start and imports
included), and the final test accuracy; then the ratios ByzFL / byzbench.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_HONEST, F, BATCH, LR, MOMENTUM = 16, 4, 32, 0.1, 0.9


def byzfl_config(root: str, steps: int, eval_every: int, device: str) -> dict:
    """ByzFL's config.json for the workload (see its benchmark.default_config)."""
    return {
        "benchmark_config": {
            "training_algorithm": {"name": "DSGD", "parameters": {}},
            "nb_steps": steps, "device": device, "training_seed": 0, "nb_training_seeds": 1,
            "nb_honest_clients": N_HONEST, "f": F, "data_distribution_seed": 0,
            "nb_data_distribution_seeds": 1, "size_train_set": 1.0,
            "data_distribution": [{"name": "iid", "distribution_parameter": 1.0}],
        },
        "model": {"name": "fc_mnist", "dataset_name": "mnist", "nb_labels": 10,
                  "loss": "NLLLoss", "learning_rate": LR, "learning_rate_decay": 1.0,
                  "milestones": []},
        "aggregator": [{"name": "TrMean", "parameters": {}}],
        "pre_aggregators": [{"name": "NNM", "parameters": {}}],
        "honest_clients": {"momentum": MOMENTUM, "weight_decay": 0.0, "batch_size": BATCH},
        "attack": [{"name": "SignFlipping", "parameters": {}}],
        "evaluation_and_results": {
            "evaluation_delta": eval_every, "batch_size_evaluation": 128,
            "evaluate_on_test": True, "store_per_client_metrics": False,
            "store_models": False, "data_folder": root,
            "results_directory": str(Path(root) / "byzfl_results"),
        },
    }


def byzbench_overrides(root: str, steps: int, eval_every: int, device: str) -> list[str]:
    """The same workload as byzbench overrides."""
    return [
        "dataset=mnist", f"dataset.root={root}", "dataset.download=false", "model=mlp",
        "model.hidden=[100]", "agg=trmean", "preagg=[nnm]", "attack=sign_flip",
        f"worker_momentum={MOMENTUM}", f"cluster.n_workers={N_HONEST + F}",
        f"cluster.byz_frac={F / (N_HONEST + F)}", f"batch_size={BATCH}", f"solver.lr={LR}",
        f"rounds={steps}", f"eval_every={eval_every}", "eval_train=false", "partition=iid",
        f"device={device}", "progress=false", "plot=false",
    ]


def side_byzfl(root: str, steps: int, eval_every: int, device: str) -> dict:
    """Run ByzFL's run_benchmark in this process; its own result files give the
    accuracy and its internal training time."""
    from byzfl.benchmark import run_benchmark

    work = Path(root) / "byzfl_work"
    work.mkdir()
    (work / "config.json").write_text(json.dumps(byzfl_config(root, steps, eval_every, device)))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        t0 = time.perf_counter()
        run_benchmark(nb_jobs=1)
        wall = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
    res = Path(root) / "byzfl_results"
    acc = sorted(res.rglob("test_accuracy_tr_seed_0_dd_seed_0.txt"))
    train = sorted(res.rglob("train_time_tr_seed_0_dd_seed_0.txt"))
    out = {"wall": wall}
    if acc:
        values = acc[0].read_text().replace(",", " ").split()
        out["accuracy"], out["evaluations"] = float(values[-1]), len(values)
    if train:
        out["train_loop"] = float(train[0].read_text().replace(",", " ").split()[0])
    return out


def side_byzbench(root: str, steps: int, eval_every: int, device: str) -> dict:
    """Compose and run the workload with byzbench in this process."""
    import torchvision.datasets  # noqa: F401 - imported before the clock, as ByzFL's is
    from hydra import compose, initialize_config_dir

    from byzbench.run import CONF_DIR, execute

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=byzbench_overrides(root, steps, eval_every, device))
    t0 = time.perf_counter()
    s = execute(cfg, Path(root) / "byzbench_run", {})
    wall = time.perf_counter() - t0
    import pandas as pd

    m = pd.read_csv(Path(root) / "byzbench_run" / "metrics.csv")
    rounds = m[(m.split == "time") & (m.metric == "round")].value
    return {"wall": wall, "accuracy": s["final"]["test_accuracy"], "status": s["status"],
            "evaluations": int(((m.split == "test") & (m.metric == "accuracy")).sum()),
            "train_loop": float(rounds.sum()), "device": s["device"]}


def run_side(side: str, root: str, a: argparse.Namespace) -> dict:
    """One side in a fresh interpreter; returns its JSON line plus the process time."""
    cmd = [sys.executable, __file__, "--side", side, "--root", root, "--steps", str(a.steps),
           "--eval-every", str(a.eval_every), "--device", a.device]
    env = dict(os.environ)
    if a.threads:  # both sides, and ByzFL's pool worker, inherit it
        env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    proc = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"{side} side failed (exit {p.returncode})")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1]
    return {**json.loads(line), "process": proc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu | cuda (both sides)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads on both sides (OMP_NUM_THREADS; 0: torch's default)")
    ap.add_argument("--n-train", type=int, default=60_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--side", choices=["byzfl", "byzbench"], help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        fn = side_byzfl if a.side == "byzfl" else side_byzbench
        print(json.dumps(fn(a.root, a.steps, a.eval_every, a.device)))
        return
    from byzbench.data._fake import write_fake_mnist

    with tempfile.TemporaryDirectory() as tmp:
        write_fake_mnist(tmp, "MNIST", a.n_train, a.n_test, learnable=True)
        bb = run_side("byzbench", tmp, a)
        bf = run_side("byzfl", tmp, a)
    import torch

    print(f"fake MNIST {a.n_train}/{a.n_test}, fc 784-100-10, n={N_HONEST + F}, f={F}, "
          f"NNM + TrMean, SignFlipping, momentum {MOMENTUM}, batch {BATCH}, {a.steps} steps, "
          f"test accuracy every {a.eval_every}; device {a.device}, torch {torch.__version__}, "
          f"threads {a.threads or 'default'}, {os.cpu_count()} CPUs")
    print(f"{'':<10}{'run s':>9}{'loop s':>9}{'process s':>11}{'evals':>7}{'test acc':>10}")
    for name, r in (("ByzFL", bf), ("byzbench", bb)):
        print(f"{name:<10}{r['wall']:>9.2f}{r.get('train_loop', float('nan')):>9.2f}"
              f"{r['process']:>11.2f}{r.get('evaluations', 0):>7}"
              f"{r.get('accuracy', float('nan')):>10.3f}")
    print("run s: run_benchmark / execute call (data, setup, training, evaluations, files); "
          "loop s: ByzFL's own train_time file / sum of byzbench's round times")
    print(f"ratio ByzFL / byzbench: run {bf['wall'] / bb['wall']:.1f}x, "
          f"whole process {bf['process'] / bb['process']:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
