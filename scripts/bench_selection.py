"""Coordinate-wise kernels on few rows: comparator networks vs numpy's sort.

    python scripts/bench_selection.py                  # n = 10..80, 2M-element blocks
    python scripts/bench_selection.py --n 20 --cols 79510

For each n, on one float32 block ``[n, cols]`` (default ``2^19 / n`` columns, the
chunk ``kernels.columnwise`` hands each thread): a full sort (``np.sort`` along the worker
axis vs the Batcher network, ``kernels.sort0``), a trimmed mean ``f = n // 5`` (``np.sort``
then the mean of the middle rows vs the pruned selection network, ``kernels.order_mean``)
and the median (``np.partition`` vs ``kernels.median_block``). Best of ``--repeats``
interleaved calls (load from other processes hits both sides alike), ms.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from byzbench import kernels


def best(fns: list, repeats: int) -> list[float]:
    """Best ms of each function over interleaved repeats (one warm-up call each)."""
    for fn in fns:
        fn()
    ts = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(ts, fns):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [1e3 * min(t) for t in ts]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 20, 30, 40, 64, 80])
    ap.add_argument("--cols", type=int, default=0, help="columns (0: 2^19 / n)")
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"networks used up to n = {kernels.SORT_NETWORK_MAX_ROWS} (sort) and "
          f"{kernels.NETWORK_MAX_ROWS} (selection); ms, best of {a.repeats}")
    print(f"{'n':>4}{'cols':>8}{'np.sort':>9}{'network':>9}{'trim sort':>11}{'trim net':>10}"
          f"{'partition':>11}{'median net':>12}")
    for n in a.n:
        c = a.cols or (1 << 19) // n
        x = rng.standard_normal((n, c)).astype(np.float32)
        f = n // 5
        r = best([lambda: np.sort(x, axis=0),  # noqa: B023
                  lambda: np.stack(kernels.network_rows(x, max_rows=10**6)),  # noqa: B023
                  lambda: np.sort(x, axis=0)[f:n - f].mean(0),  # noqa: B023
                  lambda: kernels.network_rows(x, (f, n - f), max_rows=10**6),  # noqa: B023
                  lambda: np.partition(x, n // 2, axis=0),  # noqa: B023
                  lambda: kernels.network_rows(x, (n // 2, n // 2 + 1),  # noqa: B023
                                            max_rows=10**6)], a.repeats)
        print(f"{n:>4}{c:>8}{r[0]:>9.2f}{r[1]:>9.2f}{r[2]:>11.2f}{r[3]:>10.2f}{r[4]:>11.2f}"
              f"{r[5]:>12.2f}")


if __name__ == "__main__":
    main()
