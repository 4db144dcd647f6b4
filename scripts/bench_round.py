"""Time one round's gradient computation: vectorized (vmap over grad) vs a per-worker
autograd loop vs the floor (one forward/backward over all n_h * B samples as a single
batch), and the FedAvg workers' round (K local steps, vectorized over clients) against K
DSGD rounds. Prints the ratios; targets: loop / vmap >= 1.5, vmap / floor <= 2 (MLP),
FedAvg(K) / (K x DSGD) <= 1.3.

    python scripts/bench_round.py                # MLP on digits-sized input (64 -> 64 -> 10)
    python scripts/bench_round.py --in-dim 784 --hidden 256 128
    python scripts/bench_round.py --local-steps 1 5 20 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from byzbench.algorithms.dsgd import DSGD
from byzbench.algorithms.fedavg import FedAvg
from byzbench.grads import flat_params, loop_grads, make_grad_fn


def timeit(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after two warm-ups."""
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--f", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--in-dim", type=int, default=64)
    ap.add_argument("--hidden", type=int, nargs="*", default=[64])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--local-steps", type=int, nargs="*", default=[1, 5, 20],
                    help="FedAvg K values to time against K DSGD rounds")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dims = [a.in_dim, *a.hidden]
    layers: list[nn.Module] = []
    for i, o in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(i, o), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(dims[-1], a.classes))
    theta = flat_params(model)
    nh = a.n - a.f
    X = torch.randn(nh, a.batch, a.in_dim)
    Y = torch.randint(0, a.classes, (nh, a.batch))
    vec = make_grad_fn(model)

    def floor() -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(X.reshape(-1, a.in_dim)), Y.reshape(-1)).backward()

    t_vec = timeit(lambda: vec(theta, X, Y), a.repeats)
    t_loop = timeit(lambda: loop_grads(model, theta, X, Y), a.repeats)
    t_floor = timeit(floor, a.repeats)
    print(f"MLP {dims + [a.classes]}, d={theta.numel()}, n={a.n}, f={a.f} (n_h={nh}), "
          f"B={a.batch}, threads={torch.get_num_threads()}")
    print(f"{'path':<12}{'ms/round':>10}")
    for name, t in (("vectorized", t_vec), ("loop", t_loop), ("floor", t_floor)):
        print(f"{name:<12}{1e3 * t:>10.3f}")
    print(f"loop / vectorized  = {t_loop / t_vec:.2f}x  (target >= 1.5)")
    print(f"vectorized / floor = {t_vec / t_floor:.2f}x  (target <= 2)")
    if not a.local_steps:
        return
    # Workers functions as the loop calls them; draw() hands out the same fake minibatch
    # (the gather from the shard table is the same per step for both algorithms).
    def draw():
        return X, Y

    dsgd = DSGD(model)
    print("FedAvg workers (K local steps, all clients) vs K DSGD rounds; median and min over "
          "interleaved repeats (min: least disturbed by other load)")
    print(f"{'K':<4}{'FedAvg ms':>11}{'K x DSGD ms':>13}{'ratio':>7}{'min ratio':>11}"
          "  (target <= 1.3)")
    for k in a.local_steps:
        fed = FedAvg(model, local_steps=k, client_lr=0.05)
        fed(theta, draw)
        dsgd(theta, draw)
        # Interleaved (K DSGD rounds, then one FedAvg round) so load drift hits both alike.
        t_d, t_f = [], []
        for _ in range(max(3, a.repeats // k)):
            t0 = time.perf_counter()
            for _ in range(k):
                dsgd(theta, draw)
            t1 = time.perf_counter()
            fed(theta, draw)
            t_d.append(t1 - t0)
            t_f.append(time.perf_counter() - t1)
        td, tf = statistics.median(t_d), statistics.median(t_f)
        print(f"{k:<4}{1e3 * tf:>11.2f}{1e3 * td:>13.2f}{tf / td:>7.2f}"
              f"{min(t_f) / min(t_d):>11.2f}")


if __name__ == "__main__":
    main()
