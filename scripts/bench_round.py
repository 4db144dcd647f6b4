"""Time one round's gradient computation: vectorized (vmap over grad) vs a per-worker
autograd loop vs the floor (one forward/backward over all n_h * B samples as a single
batch). Prints the ratios; targets: loop / vmap >= 1.5, vmap / floor <= 2 (MLP).

    python scripts/bench_round.py                # MLP on digits-sized input (64 -> 64 -> 10)
    python scripts/bench_round.py --in-dim 784 --hidden 256 128
    python scripts/bench_round.py --model lenet --input-shape 1 28 28 --n 25 --device cuda

``--model NAME`` builds a conf/model option (its YAML defaults; ``--hidden`` overrides
an MLP's hidden sizes) on inputs of ``--input-shape``; without it, an MLP
``in-dim -> hidden -> classes``. On CUDA every timed call ends with a synchronize.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from byzbench.grads import flat_params, loop_grads, make_grad_fn


def timeit(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after two warm-ups (device
    work included: CUDA is synchronized before reading the clock)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(2):
        fn()
    ts = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def conf_model(name: str, shape: tuple[int, ...], classes: int, hidden: list[int] | None):
    """A conf/model option built from its YAML (``hidden`` overrides an MLP's)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    import byzbench
    from byzbench.build import instantiate_component

    node = OmegaConf.to_container(OmegaConf.load(
        Path(byzbench.__file__).parent / "conf" / "model" / f"{name}.yaml"))
    if hidden is not None and "hidden" in node:
        node["hidden"] = list(hidden)
    return instantiate_component(node, "model", input_shape=shape, num_classes=classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--f", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--in-dim", type=int, default=64)
    ap.add_argument("--hidden", type=int, nargs="*", default=None, help="default 64")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--model", default=None, help="a conf/model option (default: the MLP)")
    ap.add_argument("--input-shape", type=int, nargs="+", default=None,
                    help="input shape for --model (default: --in-dim)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-loop", action="store_true", help="skip the per-worker loop")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if a.model:
        shape = tuple(a.input_shape or [a.in_dim])
        model = conf_model(a.model, shape, a.classes, a.hidden)
        label = f"{a.model} on {list(shape)}"
    else:
        shape = (a.in_dim,)
        dims = [a.in_dim, *(a.hidden if a.hidden is not None else [64])]
        layers: list[nn.Module] = []
        for i, o in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(i, o), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(dims[-1], a.classes))
        label = f"MLP {dims + [a.classes]}"
    model = model.to(dev)
    theta = flat_params(model)
    nh = a.n - a.f
    X = torch.randn(nh, a.batch, *shape, device=dev)
    Y = torch.randint(0, a.classes, (nh, a.batch), device=dev)
    vec = make_grad_fn(model)

    def floor() -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(X.flatten(0, 1)), Y.reshape(-1)).backward()

    t_vec = timeit(lambda: vec(theta, X, Y), a.repeats)
    t_loop = None if a.no_loop else timeit(lambda: loop_grads(model, theta, X, Y), a.repeats)
    t_floor = timeit(floor, a.repeats)
    print(f"{label}, d={theta.numel()}, n={a.n}, f={a.f} (n_h={nh}), B={a.batch}, "
          f"device={dev}, threads={torch.get_num_threads()}")
    print(f"{'path':<12}{'ms/round':>10}")
    for name, t in (("vectorized", t_vec), ("loop", t_loop), ("floor", t_floor)):
        if t is not None:
            print(f"{name:<12}{1e3 * t:>10.3f}")
    if t_loop is not None:
        print(f"loop / vectorized  = {t_loop / t_vec:.2f}x  (target >= 1.5)")
    print(f"vectorized / floor = {t_vec / t_floor:.2f}x  (target <= 2)")


if __name__ == "__main__":
    main()
