"""Coordinate-wise kernels: column blocks sorted along the worker axis (numpy on CPU,
threaded over column chunks, exact since columns are independent; torch elsewhere).
Coordinate-wise sorts place nan after ``+inf`` (numpy and torch agree)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from byzbench.kernels.networks import SORT_NETWORK_MAX_ROWS, network_rows
from byzbench.kernels.threads import CHUNK_ELEMS, pool

INF = math.inf



# ------------------------------------------------------------------ coordinate-wise path
#
# Block kernels receive a column block either as a numpy array (CPU float32/float64:
# numpy sorts are faster, and numpy element-wise ops are single-threaded, which keeps
# the blocks running on the thread pool from fighting torch's intra-op threads: under
# load, a torch op on a 30 x 70k block measured 0.3 ms alone and 40 ms inside the
# pool) or as a torch tensor (other devices/dtypes). The helpers below accept both.

Array = np.ndarray | Tensor


def numpy_ok(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def columnwise(fn: Callable[[Array], Array], x: Tensor) -> Tensor:
    """``fn`` applied to column blocks of ``x [n, d]``; ``fn`` maps ``[n, c] -> [..., c]``
    and must treat columns independently. On CPU (float32/float64) ``fn`` receives numpy
    blocks, run on a thread pool (numpy releases the GIL); elsewhere ``fn(x)``."""
    n, d = x.shape
    if not numpy_ok(x):
        return fn(x)
    a = x.detach().numpy()
    if n * d <= CHUNK_ELEMS or d < 2:
        return torch.from_numpy(np.ascontiguousarray(fn(a)))
    cols = max(1, CHUNK_ELEMS // max(1, n))
    bounds = list(range(0, d, cols)) + [d]
    first = fn(a[:, bounds[0]:bounds[1]])
    out = np.empty((*first.shape[:-1], d), dtype=first.dtype)
    out[..., bounds[0]:bounds[1]] = first

    def job(i: int) -> None:
        out[..., bounds[i]:bounds[i + 1]] = fn(a[:, bounds[i]:bounds[i + 1]])

    list(pool().map(job, range(1, len(bounds) - 1)))
    return torch.from_numpy(out)


def columnwise_batch(fn: Callable[[Array], Array], xs: Tensor) -> Tensor:
    """:func:`columnwise` over ``k`` stacked problems in one call: ``xs [k, n, d] ->
    [k, ...]``. Columns are independent, so the ``k`` problems become the ``k * d``
    columns of one ``[n, k * d]`` matrix (one copy of ``xs``)."""
    k, n, d = xs.shape
    out = columnwise(fn, xs.transpose(0, 1).reshape(n, k * d))  # a view for [n, k, d] data
    return out.reshape(*out.shape[:-1], k, d).movedim(-2, 0)


def take_rows(a: Array, rows: np.ndarray) -> Array:
    """Rows ``rows`` of a numpy block or tensor."""
    if isinstance(a, np.ndarray):
        return a[rows]
    return a.index_select(0, torch.as_tensor(rows, device=a.device))


def sort0(a: Array) -> Array:
    """Ascending sorted copy along the worker axis (nan last, numpy and torch agree);
    a comparator network for few rows on numpy blocks."""
    if isinstance(a, np.ndarray):
        rows = network_rows(a, max_rows=SORT_NETWORK_MAX_ROWS)
        return np.sort(a, axis=0) if rows is None else np.stack(rows)
    return torch.sort(a, dim=0).values


def order_mean(a: Array, lo: int, hi: int) -> Array:
    """Per column, the mean of order statistics ``lo .. hi - 1`` of ``a [n, c]`` (the
    trimmed mean for ``lo = f, hi = n - f``). Numpy blocks: a selection network (only
    the split at ``lo`` and ``hi`` is needed, not a full sort); else a sort."""
    if isinstance(a, np.ndarray):
        rows = network_rows(a, (lo, hi))
        if rows is not None:
            acc = np.array(rows[lo], dtype=a.dtype)
            for r in rows[lo + 1:hi]:
                acc += r
            return acc / a.dtype.type(hi - lo)
    return sort0(a)[lo:hi].mean(0)


def median_block(a: Array) -> Array:
    """Coordinate-wise median of ``a [n, c]`` (mean of the two middle values for even
    ``n``, as in Yin et al., 2018; ``torch.median`` would return the lower one)."""
    n = a.shape[0]
    k = n // 2
    if isinstance(a, np.ndarray):
        rows = network_rows(a, (k - 1, k, k + 1) if n % 2 == 0 else (k, k + 1))
        if rows is not None:
            return rows[k].copy() if n % 2 else (rows[k - 1] + rows[k]) * a.dtype.type(0.5)
        part = np.partition(a, k, axis=0)
        hi = part[k]
        if n % 2:
            return hi.copy()
        # The other middle value is the largest of the k values left of the pivot.
        return (part[:k].max(axis=0) + hi) * 0.5
    s = torch.sort(a, dim=0).values
    return s[k] if n % 2 else (s[k - 1] + s[k]) * 0.5


def median_sorted(s: Array) -> Array:
    """Median of each column of an already sorted ``s [n, c]``."""
    n = s.shape[0]
    k = n // 2
    return s[k] if n % 2 else (s[k - 1] + s[k]) * 0.5


def mean_around(s: Array, center: Array, k: int) -> Array:
    """Per column, the mean of the ``k`` values of sorted ``s [n, c]`` closest to
    ``center [c]``.

    Why this is exact and vectorized: the ``k`` values nearest to a point form a
    contiguous window of the sorted column, namely the window ``[j, j + k)`` that
    minimizes ``max(center - s_j, s_{j+k-1} - center)`` over the ``n - k + 1`` starts.
    Ties go to the lowest window (depends on values only, so row order is irrelevant).
    A nan cost (nan values, or a non-finite center) counts as ``+inf``.
    """
    n = s.shape[0]
    if k >= n:
        return s.mean(0)
    lo, hi = s[: n - k + 1], s[k - 1:]
    if isinstance(s, np.ndarray):
        with np.errstate(invalid="ignore"):
            cost = np.maximum(center - lo, hi - center)
        np.nan_to_num(cost, copy=False, nan=INF)
        j = cost.argmin(axis=0)
        rows = np.arange(n)[:, None]
        mask = (rows >= j) & (rows < j + k)
        return np.where(mask, s, 0).sum(axis=0) / s.dtype.type(k)
    cost = torch.nan_to_num(torch.maximum(center - lo, hi - center), nan=INF)
    j = cost.argmin(dim=0)
    rows = torch.arange(n, device=s.device).unsqueeze(1)
    mask = (rows >= j) & (rows < j + k)
    return torch.where(mask, s, torch.zeros((), dtype=s.dtype, device=s.device)).sum(0) / k
