"""Time one round's gradient computation: vectorized (vmap over grad) vs a per-worker
autograd loop vs the floor (one forward/backward over all n_h * B samples as a single
batch). Prints the ratios; targets: loop / vmap >= 1.5, vmap / floor <= 2 (MLP).

    python scripts/bench_round.py                # MLP on digits-sized input (64 -> 64 -> 10)
    python scripts/bench_round.py --in-dim 784 --hidden 256 128
    python scripts/bench_round.py --local-steps 1 5 20 --threads 1
    python scripts/bench_round.py --model lenet --input-shape 1 28 28 --n 25 --device cuda

``--model NAME`` builds a conf/model option (its YAML defaults; ``--hidden`` overrides
an MLP's hidden sizes) on inputs of ``--input-shape``; without it, an MLP
``in-dim -> hidden -> classes``. On CUDA every timed call ends with a synchronize.
``--local-steps K ...`` also times FedAvg's workers (K local steps of all clients,
vectorized) against K DSGD rounds (target: FedAvg(K) / (K x DSGD) <= 1.3).

``--topology gossip`` instead times whole training rounds (digits, the default MLP,
``byzbench.build`` + ``byzbench.loop.train``, evaluation excluded): the parameter-server
round next to gossip rounds on a ring and an Erdos-Renyi graph at each ``--sizes`` n,
no Byzantine node and the mean (plus ClippedGossip, and ALIE with 10% Byzantine nodes
on Erdos-Renyi). Target: ring / server <= 3 at the same n.

    python scripts/bench_round.py --topology gossip --sizes 20 100 --rounds 20 --threads 1
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
    ap.add_argument("--local-steps", type=int, nargs="*", default=[1, 5, 20],
                    help="FedAvg K values to time against K DSGD rounds (none: skip)")
    ap.add_argument("--topology", choices=["server", "gossip"], default="server",
                    help="gossip: time whole server and gossip rounds (see above)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.topology == "gossip":
        bench_gossip(a.sizes, a.rounds, a.device)
        return
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
    if a.local_steps:
        bench_fedavg(model, theta, X, Y, a.local_steps, a.repeats)


def bench_fedavg(model: nn.Module, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor,
                 steps: list[int], repeats: int) -> None:
    """FedAvg's workers (K local steps of every client) against K DSGD rounds, as the
    loop calls them; ``draw()`` hands out the same minibatch (the gather from the shard
    table costs the same per step for both). Interleaved (K DSGD rounds, then one FedAvg
    round) so that load drift hits both alike; median and min over repeats."""
    sync = torch.cuda.synchronize if theta.is_cuda else (lambda: None)

    def draw():
        return X, Y

    dsgd = DSGD(model)
    print("FedAvg workers (K local steps, all clients) vs K DSGD rounds; median and min over "
          "interleaved repeats (min: least disturbed by other load)")
    print(f"{'K':<4}{'FedAvg ms':>11}{'K x DSGD ms':>13}{'ratio':>7}{'min ratio':>11}"
          "  (target <= 1.3)")
    for k in steps:
        fed = FedAvg(model, local_steps=k, client_lr=0.05)
        fed(theta, draw)
        dsgd(theta, draw)
        t_d, t_f = [], []
        for _ in range(max(3, repeats // k)):
            sync()
            t0 = time.perf_counter()
            for _ in range(k):
                dsgd(theta, draw)
            sync()
            t1 = time.perf_counter()
            fed(theta, draw)
            sync()
            t_d.append(t1 - t0)
            t_f.append(time.perf_counter() - t1)
        td, tf = statistics.median(t_d), statistics.median(t_f)
        print(f"{k:<4}{1e3 * tf:>11.2f}{1e3 * td:>13.2f}{tf / td:>7.2f}"
              f"{min(t_f) / min(t_d):>11.2f}")



def round_time(overrides: list[str], rounds: int) -> float:
    """Median ``time/round`` (seconds) of a run of ``rounds`` rounds, the first two
    dropped (warm-up)."""
    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.loop import train
    from byzbench.run import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            f"rounds={rounds}", f"eval_every={rounds + 1}", "eval_train=false",
            "progress=false", "grad_path=vmap", *overrides])
    exp, _ = build_experiment(cfg)
    train(exp)
    ts = [v for _, s, m, v in exp.log.rows if s == "time" and m == "round"]
    return statistics.median(ts[2:] or ts)


def bench_gossip(sizes: list[int], rounds: int, device: str) -> None:
    """Server vs gossip round times (see the module docstring)."""
    print(f"digits, MLP [64, 64, 10], B=32, device={device}, threads={torch.get_num_threads()}")
    print(f"{'n':>5} {'setting':<44}{'ms/round':>10}{'/ server':>10}")
    for n in sizes:
        base = [f"device={device}", f"cluster.n_workers={n}"]
        clean = [*base, "cluster.byz_frac=0", "attack=none", "agg=mean"]
        t_ps = round_time(clean, rounds)
        p = min(1.0, 4.0 / (n - 1))  # mean degree about 4
        g = ["topology=gossip", "topology.eval_nodes=false"]
        er = ["topology.graph.name=erdos_renyi", f"topology.graph.p={p:.4g}",
              "topology.allow_disconnected=true"]
        rows = [("server, mean", t_ps),
                ("gossip ring, mean", round_time([*clean, *g], rounds)),
                ("gossip ring, clipped_gossip", round_time(
                    [*clean, *g, "agg=clipped_gossip"], rounds)),
                (f"gossip erdos_renyi p={p:.3g}, mean", round_time([*clean, *g, *er], rounds)),
                (f"gossip erdos_renyi, clipped_gossip, alie f={n // 10}", round_time(
                    [*base, *g, *er, "cluster.byz_frac=0.1", "attack=alie",
                     "agg=clipped_gossip"], rounds))]
        for name, t in rows:
            print(f"{n:>5} {name:<44}{1e3 * t:>10.2f}{t / t_ps:>9.2f}x")
    print("target: gossip ring / server <= 3x at the same n")


if __name__ == "__main__":
    main()
