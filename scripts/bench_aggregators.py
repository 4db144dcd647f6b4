"""Time every aggregation rule and pre-aggregator against its floor.

For each (device, n, d) a float32 matrix is built once: ``n - f`` honest rows
``N(0, 1)`` and ``f`` Byzantine rows at ``honest mean + 2`` (so filtering rules see a
structure, not pure noise). Every stage listed in conf/agg and conf/preagg is built
from its YAML (f = the largest value <= ``--byz-frac * n`` it accepts) and timed on
that tensor; in the same process, on the same tensor, its floor is timed:

* ``mean``: ``torch.mean(x, 0)`` - mean-like and clipping rules,
* ``gram``: ``x @ x.T`` - distance-based rules,
* ``sort``: the faster of ``torch.kthvalue``/``torch.median`` and ``numpy.partition``
  along the worker axis - median-like rules,
* ``gram+sort`` for Bulyan (both phases).

Reported: best-of-``--repeats`` seconds (each call after a warm-up call), the ratio
to the floor, and the peak resident-memory growth during one more call of the stage
alone (sampled every 2 ms; buffers kept from earlier calls are not counted). Rule and
floor are timed alternately so that load from other processes hits both alike;
timings on a shared machine are still noisy, ratios less so. The sort floor's variant
(torch kthvalue, torch median or numpy partition) is the fastest one in a quick probe
for each (n, d).

Examples::

    python scripts/bench_aggregators.py --n 30 --d 1e6                # one cell, all rules
    python scripts/bench_aggregators.py --rules krum median nnm --repeats 5
    python scripts/bench_aggregators.py --out docs/aggregators_bench.csv   # full grid
    python scripts/bench_aggregators.py --n 30 --d 1e6 --offset 100   # close rows (centered)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byzbench import ConfigError  # noqa: E402
from byzbench.build import instantiate_component  # noqa: E402

CONF = ROOT / "byzbench" / "conf"
FLOOR = {  # stage -> floor kind
    "mean": "mean", "cclip": "mean", "dnc": "mean", "signguard": "mean",
    "median": "sort", "trmean": "sort", "meamed": "sort", "phocas": "sort",
    "bulyan": "gram+sort",
    "krum": "gram", "multikrum": "gram", "geomed": "gram", "mda": "gram", "monna": "gram",
    "caf": "gram", "hc_krum": "gram",
    "pre:nnm": "gram", "pre:bucketing": "mean", "pre:clipping": "mean", "pre:arc": "mean",
}


class PeakRSS:
    """Peak resident-set growth (bytes) while the block runs, sampled every 2 ms."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def __enter__(self) -> PeakRSS:
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss()) - self.base


def best_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    run()
    return min(run() for _ in range(repeats))


def floor_fns(x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The floor kernels, by kind."""
    n = x.shape[0]
    fns: dict[str, Callable[[], object]] = {
        "mean": lambda: x.mean(0), "gram": lambda: x @ x.T,
        "sort_kth": lambda: x.kthvalue(n // 2 + 1, 0), "sort_median": lambda: x.median(0)}
    if x.device.type == "cpu":
        a = x.numpy()
        fns["sort_np"] = lambda: np.partition(a, n // 2, axis=0)
    return fns


def paired(fn: Callable[[], object], floor: list[Callable[[], object]], repeats: int,
           device: torch.device) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of ``fn`` and of the floor (the sum of the fastest
    variant of each listed floor kernel), measured alternately so that load changes on
    a shared machine hit both alike."""
    ts, tf = [], []
    for _ in range(repeats):
        tf.append([best_time(g, 1, device) for g in floor])
        ts.append(best_time(fn, 1, device))
    return min(ts), float(sum(np.min(np.array(tf), axis=0)))


def stages(names: list[str] | None) -> list[tuple[str, Path]]:
    found = [(p.stem, p) for p in sorted((CONF / "agg").glob("*.yaml"))]
    found += [(f"pre:{p.stem}", p) for p in sorted((CONF / "preagg").glob("*.yaml"))]
    if names:
        want = {s if s.startswith("pre:") or s in dict(found) else f"pre:{s}" for s in names}
        found = [(k, p) for k, p in found if k in want]
    return found


def build(label: str, path: Path, n: int, f_target: int, gen: torch.Generator):
    node = OmegaConf.load(path)
    if label.startswith("pre:"):
        node = node[path.stem]
    for f in range(f_target, -1, -1):  # the largest f the stage accepts
        try:
            return instantiate_component(node, label, n=n, f=f, generator=gen), f
        except ConfigError:
            continue
    raise ConfigError(f"{label} accepts no f <= {f_target} at n={n}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--d", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    ap.add_argument("--rules", nargs="+", default=None,
                    help="stage names (conf/agg or conf/preagg option names); default all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--byz-frac", type=float, default=0.2)
    ap.add_argument("--offset", type=float, default=0.0,
                    help="add one common vector of norm OFFSET x the rows' spread to every "
                         "row (close rows: times the centered path of kernels.pairwise)")
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda if present)")
    ap.add_argument("--out", type=Path, default=None, help="CSV path (appended per row)")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = ap.parse_args(argv)

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    fields = ["device", "n", "d", "stage", "f", "seconds", "floor", "floor_seconds", "ratio",
              "peak_mib", "threads"]
    rows: list[dict[str, object]] = []
    writer = None
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fh = open(args.out, "w", newline="")  # noqa: SIM115 - flushed per row, closed at exit
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
    head = (f"{'device':6} {'n':>4} {'d':>8} {'stage':15} {'f':>3} {'seconds':>9} "
            f"{'floor':>9} {'floor_s':>9} {'ratio':>6} {'peakMiB':>8}")
    print(head)
    print("-" * len(head))
    for dev_name in devices:
        dev = torch.device(dev_name)
        for n in args.n:
            for d in (int(v) for v in args.d):
                f_target = int(args.byz_frac * n)
                g = torch.Generator().manual_seed(0)
                x = torch.randn(n, d, generator=g).to(dev)
                if f_target:
                    x[:f_target] = x[f_target:].mean(0) + 2.0
                if args.offset:
                    gv = torch.randn(d, generator=g).to(dev)
                    x += gv / gv.norm() * args.offset * d**0.5
                fns = floor_fns(x)
                sort_variant = min((k for k in fns if k.startswith("sort")),
                                   key=lambda k: best_time(fns[k], 1, dev))
                for label, path in stages(args.rules):
                    gen = torch.Generator(device=dev).manual_seed(0)
                    try:
                        stage, f = build(label, path, n, f_target, gen)
                    except ConfigError as e:
                        print(f"{dev_name:6} {n:>4} {d:>8} {label:15} skipped: {e}")
                        continue
                    kind = FLOOR.get(label, "mean")
                    floor = [fns[k] for k in kind.replace("sort", sort_variant).split("+")]
                    t, tf = paired(lambda s=stage, xx=x: s(xx), floor, args.repeats, dev)
                    with PeakRSS() as mem:  # one more call, alone
                        stage(x)
                    row = {"device": dev_name, "n": n, "d": d, "stage": label, "f": f,
                           "seconds": round(t, 5), "floor": kind, "floor_seconds": round(tf, 5),
                           "ratio": round(t / tf, 2), "peak_mib": round(mem.peak / 2**20, 1),
                           "threads": torch.get_num_threads()}
                    rows.append(row)
                    print(f"{dev_name:6} {n:>4} {d:>8} {label:15} {f:>3} {t:>9.4f} "
                          f"{kind:>9} {tf:>9.4f} {t / tf:>6.2f} {mem.peak / 2**20:>8.1f}",
                          flush=True)
                    if writer:
                        writer.writerow(row)
                        fh.flush()
                del x
    if args.markdown:
        print("\n| device | n | d | stage | f | seconds | floor | floor s | ratio | peak MiB |")
        print("|---|---:|---:|---|---:|---:|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['device']} | {r['n']} | {r['d']:.0e} | {r['stage']} | {r['f']} | "
                  f"{r['seconds']:.4f} | {r['floor']} | {r['floor_seconds']:.4f} | "
                  f"{r['ratio']:.2f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
