"""Threads and BLAS for the kernels: a small pool for column blocks (numpy releases
the GIL) and a one-thread BLAS limit for the tiny ``n x n`` algebra."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

# Elements per chunk for the threaded numpy path (2 MB of float32: large enough to
# amortize thread dispatch, small enough for the comparator networks' rows to stay in
# cache - 1.5x faster than 8 MB chunks at [20, 8e4] and [30, 1e6] - and to bound
# temporaries to O(n * chunk) instead of O(n * d)).
CHUNK_ELEMS = 1 << 19
_POOL: ThreadPoolExecutor | None = None
_BLAS: Any = None
F = TypeVar("F", bound=Callable[..., Any])


def pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                   thread_name_prefix="byzbench-ops")
    return _POOL


def single_blas(fn: F) -> F:
    """Run ``fn`` with numpy's BLAS limited to one thread.

    Why: the ``n x n`` algebra after the Gram matrix is tiny, and a multithreaded
    OpenBLAS call on a 30 x 30 matrix costs ~30 ms instead of ~0.1 ms when the cores
    are busy (thread hand-off at scheduler granularity; measured on this 2-core
    machine under load). torch's own kernels are not affected by the limit.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _BLAS
        if _BLAS is None:
            try:
                from threadpoolctl import ThreadpoolController

                _BLAS = ThreadpoolController()
            except ImportError:  # pragma: no cover - threadpoolctl ships with sklearn
                _BLAS = False
        ctx = _BLAS.limit(limits=1, user_api="blas") if _BLAS else contextlib.nullcontext()
        with ctx:
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
