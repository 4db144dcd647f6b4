"""Krum against ALIE, in byzbench and in Flower, side by side (offline: sklearn's digits).

    pip install -e ".[flower]" && python examples/flower_krum.py

Both sides: 10 clients on IID shards of digits, an MLP (hidden [16]), clients 8 and 9
(byzbench: the last f = 2 workers) Byzantine and replaced by ALIE (Baruch et al.,
NeurIPS 2019), krum told f = 2, 20 rounds of one SGD step (lr 0.3, batches of 32).

* byzbench: a run of ``byzbench agg=krum attack=alie ...`` (its own loop: gradients,
  the attack, the pipeline, torch.optim.SGD).
* Flower: ``flwr.simulation.run_simulation`` (Ray, local) of byzbench's ``TorchTask``
  clients (one local SGD step each) and ``RobustStrategy("krum", f=2, attack="alie")``,
  which aggregates the pseudo-gradients w - w_k = lr g_k with byzbench's krum.

The minibatches differ (each side draws its own), so the accuracies agree in trend, not
digit for digit; what must agree exactly is the rule: the script re-aggregates every
Flower round's updates with a freshly built byzbench pipeline and prints the largest
difference.
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # nothing leaves the machine
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402
from flwr.app import MetricRecord  # noqa: E402
from flwr.serverapp import ServerApp  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from byzbench.build import build_experiment, build_pipeline, make_generator  # noqa: E402
from byzbench.integrations.flower import (  # noqa: E402
    RobustStrategy,
    TorchTask,
    compose,
    local_backend_config,
)
from byzbench.loop import train  # noqa: E402

N, F, ROUNDS, EVERY, LR, BATCH = 10, 2, 20, 5, 0.3, 32
AGG, ATTACK = "krum", "alie"


def byzbench_side() -> dict[int, float]:
    """Test accuracy every EVERY rounds of the byzbench run."""
    cfg = compose(f"rounds={ROUNDS}", f"eval_every={EVERY}", f"cluster.n_workers={N}",
                  f"cluster.byz_frac={F / N}", f"batch_size={BATCH}", f"solver.lr={LR}",
                  "model.hidden=[16]", "progress=false", "eval_train=false", "device=cpu",
                  "grad_path=vmap",
                  agg=AGG, attack=ATTACK)
    exp, _ = build_experiment(cfg)
    train(exp)
    return {t: v for t, s, m, v in exp.log.rows if s == "test" and m == "accuracy"}


def flower_side() -> tuple[dict[int, float], RobustStrategy, Any, float]:
    """Test accuracy every round of the Flower simulation, the strategy, Flower's
    result, wall time."""
    task = TorchTask(N, options={"model": {"hidden": [16]}}, local_steps=1, lr=LR,
                     batch_size=BATCH)
    strategy = RobustStrategy(AGG, f=F, attack=ATTACK, byzantine=range(N - F, N),
                              keep_history=True, fraction_evaluate=0.0, min_train_nodes=N,
                              min_available_nodes=N)
    acc: dict[int, float] = {}
    out = {}

    def evaluate(rnd, arrays):
        if rnd % EVERY:
            return None
        res = task.evaluate(arrays.to_numpy_ndarrays())
        acc[rnd] = res["accuracy"]
        return MetricRecord(res)

    server = ServerApp()

    @server.main()
    def main(grid, context):
        out["result"] = strategy.start(grid=grid, initial_arrays=task.initial_arrays(),
                                       num_rounds=ROUNDS, evaluate_fn=evaluate)

    t0 = time.perf_counter()
    run_simulation(server, task.client_app(), num_supernodes=N,
                   backend_config=local_backend_config(1))
    return acc, strategy, out["result"], time.perf_counter() - t0


def main() -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ours = byzbench_side()
    t_ours = time.perf_counter() - t0
    theirs, strategy, result, t_flower = flower_side()
    # The rule itself: byzbench's pipeline, built afresh, on Flower's recorded updates.
    cfg = compose(agg=AGG)
    ref = build_pipeline(OmegaConf.to_container(cfg.preagg), cfg.agg, N, F,
                         make_generator(0, "agg"))
    diff = max(float((ref(h.updates) - h.aggregate).abs().max()) for h in strategy.history)
    byz_w = [m["byz_weight"] for m in result.train_metrics_clientapp.values()]
    print(f"\n{AGG} vs {ATTACK}, {N} clients ({F} Byzantine), {ROUNDS} rounds")
    print(f"{'round':>5}  {'byzbench':>9}  {'Flower':>7}   (test accuracy)")
    for t in sorted(ours):
        print(f"{t:>5}  {ours[t]:>9.3f}  {theirs.get(t, float('nan')):>7.3f}")
    print(f"Flower aggregates vs byzbench's pipeline on the same updates: max |diff| = "
          f"{diff:.1e} over {len(strategy.history)} rounds")
    print(f"krum's weight on ALIE's rows (Flower metric byz_weight): mean "
          f"{sum(byz_w) / len(byz_w):.2f}")
    print(f"wall time: byzbench {t_ours:.1f} s, Flower simulation {t_flower:.1f} s "
          "(most of it Ray's start-up)")


if __name__ == "__main__":
    main()
