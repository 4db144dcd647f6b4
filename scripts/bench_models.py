"""Time one round's gradient pass per model on CPU: n workers x B samples, per-worker
gradients by vmap(grad) (byzbench.grads.make_grad_fn) vs a plain autograd loop.

    python scripts/bench_models.py            # n=20, B=32, every conf/model YAML
    python scripts/bench_models.py --n 10 --batch 64 --repeats 5 --no-loop --threads 1

Prints a table: model, input shape, parameters d, median ms per round (vmap; "-" for
BatchNorm models, which only the loop supports), median ms for the per-worker loop, the
loop/vmap ratio (> 1: vmap is faster) and ms for an evaluation forward over 1000 samples.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import time

import torch
from omegaconf import OmegaConf

import byzbench
from byzbench.build import instantiate_component
from byzbench.grads import flat_params, has_batch_norm, loop_grads, make_grad_fn

CONF = pathlib.Path(byzbench.__file__).parent / "conf" / "model"
# (label, input shape) per model: the datasets each is meant for.
CASES = {
    "logreg": [("digits", (64,)), ("mnist", (1, 28, 28))],
    "mlp": [("digits", (64,)), ("mnist", (1, 28, 28))],
    "lenet": [("mnist", (1, 28, 28))],
    "cnn": [("cifar10", (3, 32, 32))],
    "resnet20": [("cifar10", (3, 32, 32))],
    "resnet20_bn": [("cifar10", (3, 32, 32))],
    "epfml_cnn": [("mnist", (1, 28, 28))],
    "byzfl_cnn_mnist": [("mnist", (1, 28, 28))],
    "byzfl_fc_mnist": [("mnist", (1, 28, 28))],
}


def timeit(fn, repeats: int) -> float:
    """Median wall time in ms over ``repeats`` calls after one warm-up call (CUDA work
    included: synchronized before reading the clock)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="workers (rows)")
    ap.add_argument("--batch", type=int, default=32, help="samples per worker")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-loop", action="store_true", help="skip the per-worker loop")
    ap.add_argument("--models", nargs="*", default=None, help="subset of conf/model names")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's; 1 is steadier on a busy machine)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, device {dev}, {torch.get_num_threads()} threads, "
          f"n={args.n}, B={args.batch}, median of {args.repeats}")
    print(f"{'model':<15} {'data':<8} {'input':<12} {'d':>9} {'vmap ms':>9} {'loop ms':>9} "
          f"{'loop/vmap':>9} {'eval/1k':>9}")
    winners: dict[str, list[str]] = {}
    for path in sorted(CONF.glob("*.yaml")):
        if args.models and path.stem not in args.models:
            continue
        for label, shape in CASES.get(path.stem, [("cifar10", (3, 32, 32))]):
            cfg = OmegaConf.to_container(OmegaConf.load(path))
            model = instantiate_component(cfg, "model", input_shape=shape,
                                          num_classes=10).to(dev)
            theta = flat_params(model)
            X = torch.randn(args.n, args.batch, *shape, device=dev)
            Y = torch.randint(0, 10, (args.n, args.batch), device=dev)
            if has_batch_norm(model):  # running statistics: the loop is the only path
                vmap, t_vmap = "-", None
            else:
                fn = make_grad_fn(model, "classification")
                t_vmap = timeit(lambda: fn(theta, X, Y), args.repeats)  # noqa: B023
                vmap = f"{t_vmap:.1f}"
            t_loop = None
            if args.no_loop and t_vmap is not None:
                loop, ratio = "-", "-"
            else:
                t_loop = timeit(lambda: loop_grads(model, theta, X, Y), args.repeats)  # noqa: B023
                loop = f"{t_loop:.1f}"
                ratio = "-" if t_vmap is None else f"{t_loop / t_vmap:.2f}"
            model.eval()
            with torch.no_grad():  # evaluation: a no-grad forward over 1000 samples
                xe = torch.randn(1000, *shape, device=dev)
                t_eval = timeit(lambda: model(xe), args.repeats)  # noqa: B023
            print(f"{path.stem:<15} {label:<8} {str(shape):<12} {theta.numel():>9} "
                  f"{vmap:>9} {loop:>9} {ratio:>9} {t_eval:>9.1f}", flush=True)
            if t_loop is not None and t_vmap is not None:
                winners.setdefault(type(model).__name__, []).append(
                    "loop" if t_loop < t_vmap else "vmap")
    if winners:
        # The entry for byzbench.grads.MEASURED_GRAD_PATHS (loop only where it wins on
        # every input shape measured for the class).
        table = {k: "loop" if set(v) == {"loop"} else "vmap" for k, v in winners.items()}
        print(f"MEASURED_GRAD_PATHS[{dev.type!r}] = {table}")


if __name__ == "__main__":
    main()
