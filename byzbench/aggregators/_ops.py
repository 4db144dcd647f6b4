"""Shared math for aggregation rules and pre-aggregators.

Two kinds of kernels, chosen for speed on ``[n, d]`` with small ``n`` and large ``d``:

* Distance-based rules need pairwise squared distances. They come from ONE Gram
  matrix, of the rows centered on a central row when the raw one would lose precision
  (:func:`pairwise`; distances to a single vector: :func:`sqdist_to`):
  ``D_ij = G_ii + G_jj - 2 G_ij``. Everything after the Gram matrix is ``n x n`` work,
  done in float64 numpy on the CPU (no kernel-launch overhead, exact enough); the only
  other ``d``-sized work is the final weighted combination ``w @ X``. No ``n x n x d``
  temporary is ever built.
* Coordinate-wise rules sort along the worker axis. On CPU numpy's sort/partition along
  axis 0 is 2-4x faster than ``torch.sort``/``torch.median`` along dim 0, and it
  releases the GIL, so columns are processed in chunks on a small thread pool (exact:
  every column is independent). On other devices torch is used.

Non-finite rows (any inf/nan entry, or a squared norm that overflows) are "bad": the
Gram path maps them to distance ``+inf`` from every row (themselves included) and
gives them zero weight in combinations (their entries are never multiplied, so nan
cannot leak through ``0 * nan``). Coordinate-wise sorts place nan after ``+inf``
(numpy and torch agree), i.e. a nan coordinate counts as the largest value.

Precision: distances are exact at every scale to about ``u (||x_i - r||^2 +
||x_j - r||^2)`` with r a central row (u: unit roundoff of the input dtype), i.e.
relative to the rows' spread, not their norm (see :func:`pairwise`; measured by
``scripts/check_close_rows.py``, documented in docs/RULES.md).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor

from byzbench import ConfigError, host

INF = math.inf

# Elements per chunk for the threaded numpy path (2 MB of float32: large enough to
# amortize thread dispatch, small enough for the comparator networks' rows to stay in
# cache - 1.5x faster than 8 MB chunks at [20, 8e4] and [30, 1e6] - and to bound
# temporaries to O(n * chunk) instead of O(n * d)).
_CHUNK_ELEMS = 1 << 19
_POOL: ThreadPoolExecutor | None = None
_BLAS: Any = None
F = TypeVar("F", bound=Callable[..., Any])


def _pool() -> ThreadPoolExecutor:
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


def check_rows(rule: str, n: int, ok: bool, need: str) -> None:
    """One-line error when a rule is called with a row count it cannot handle."""
    if not ok:
        raise ConfigError(f"{rule} received n={n} rows: it needs {need}")


# ----------------------------------------------------------------------- distances
#
# THE distance primitive of byzbench: every distance-based rule and pre-aggregator gets
# its distances from :func:`pairwise` (all pairs) or :func:`sqdist_to` (rows to one
# vector). Nothing else forms ||x||^2 + ||y||^2 - 2<x, y> from raw rows.
#
# Why centering: from a Gram matrix, D_ij = G_ii + G_jj - 2 G_ij carries an absolute
# error of about u (||x_i||^2 + ||x_j||^2) (u = unit roundoff of the input dtype: 6e-8
# in float32), so rows that are close relative to their norm (worker momentum, NNM
# outputs, rows of norm 1e3 and spread 1e-2) get distances that are pure rounding. The
# Gram matrix of the centered rows x_i - r has the same distances with an error of
# about u (||x_i - r||^2 + ||x_j - r||^2): relative to the rows' spread when r is a
# central row, as exact as computing ||x_i - x_j|| directly.

# Columns of the probe that decides whether to center and on which row.
_PROBE_COLS = 1024


class Pairwise(NamedTuple):
    """All-pairs result of :func:`pairwise` (float64 numpy, on the CPU).

    * ``d2 [n, n]``: squared distances; bad rows are ``+inf`` from every row (their
      own diagonal included), good rows 0 from themselves.
    * ``gram [n, n]``: Gram matrix of the centered rows ``<x_i - r, x_j - r>``, rows
      and columns of bad rows zeroed. Only translation-invariant quantities may be read
      from it: distances, and ``||x_i - sum_j w_j x_j||`` for weights summing to 1
      (:func:`sqdist_to_combo`).
    * ``bad [n]``: non-finite rows (an inf/nan entry, or a squared norm that overflows
      the input dtype).
    * ``ref``: the index of the reference row r, or -1 when r = 0 (no centering).
    """

    d2: np.ndarray
    gram: np.ndarray
    bad: np.ndarray
    ref: int


def _unit_roundoff(x: Tensor) -> float:
    return float(torch.finfo(x.dtype).eps) / 2 if x.dtype.is_floating_point else 0.0


def _probe(x: Tensor) -> tuple[bool, int]:
    """``(center, ref)``: whether the raw Gram matrix would lose precision, and the
    most central row, both judged on ``_PROBE_COLS`` evenly spaced columns in float64.

    Raw distances have a relative error of about ``u * ||x||^2 / D``; the rows are
    centered when that exceeds float32's own rounding ``2^-24``, with ``||x||^2`` the
    median squared row norm and ``D`` the median over rows of each row's squared
    distance to its nearest other row (the finest structure a selection must resolve,
    e.g. within a tight cluster; Byzantine duplicates can only push towards centering,
    which is always exact). For float32 that means: center when rows are closer to
    their nearest neighbour than to the origin; for float64, when 5e8 times closer.
    ``ref`` minimizes each row's median squared distance to the others (a medoid: a
    Byzantine row can be the reference only by sitting within the honest rows on the
    probe's columns).
    """
    return _probe_batch(x.unsqueeze(0))[0]


def _probe_batch(xs: Tensor) -> list[tuple[bool, int]]:
    """:func:`_probe` of each ``xs[i]`` (``xs [k, n, d]``): the problems whose probe
    columns are all finite share one set of batched numpy calls (per-problem calls on
    these small arrays cost more in overhead than in arithmetic); the others drop
    their non-finite rows one by one."""
    k, n, d = xs.shape
    out: list[tuple[bool, int]] = [(False, -1)] * k
    if n < 2 or d == 0:
        return out
    kc = min(d, _PROBE_COLS)
    cols = torch.arange(kc, device=xs.device) * d // kc
    s_all = gather_cols(xs, cols)  # [k, n, kc]
    finite = np.isfinite(s_all).all(axis=2)  # [k, n]
    u = _unit_roundoff(xs)
    full = [i for i in range(k) if finite[i].all()]
    for i in set(range(k)) - set(full):
        fin = np.flatnonzero(finite[i])
        if len(fin) >= 2:
            out[i] = _probe_rows(s_all[i, fin][None], fin, u)[0]
    if full:
        s = s_all if len(full) == k else s_all[full]
        for i, res in zip(full, _probe_rows(s, np.arange(n), u)):
            out[i] = res
    return out


def _probe_rows(s: np.ndarray, rows: np.ndarray, u: float) -> list[tuple[bool, int]]:
    """The probe on finite float64 samples ``s [k, m, c]`` (``rows``: the m rows'
    indices): ``(center, ref)`` of each of the k problems."""
    c = s - _middle(np.sort(s, axis=1).swapaxes(1, 2))[..., None, :]
    g = c @ c.swapaxes(1, 2)
    sq = np.diagonal(g, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", over="ignore"):
        d2 = np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * g, 0.0)
    d2 = np.nan_to_num(d2, nan=INF, posinf=INF)
    off = _sorted_off_diagonal(d2)  # [k, m, m - 1]
    refs = rows[np.argmin(_middle(off), axis=1)]
    with np.errstate(over="ignore", invalid="ignore"):
        scale = _middle(np.sort(off[..., 0], axis=1))
        norm2 = _middle(np.sort((s * s).sum(axis=2), axis=1))
    return [(bool(not (norm2[j] * u <= 2.0**-24 * scale[j])), int(refs[j]))
            for j in range(len(refs))]


def _sorted_off_diagonal(d2: np.ndarray) -> np.ndarray:
    """``[..., m, m - 1]``: each row of the square ``d2 [..., m, m]`` without its
    diagonal entry, sorted (the diagonal is set to +inf and sorts last among equals)."""
    a = d2.copy()
    m = a.shape[-1]
    a.reshape(*a.shape[:-2], m * m)[..., :: m + 1] = INF
    a.sort(axis=-1)
    return a[..., :-1]


def _middle(sorted_rows: np.ndarray) -> np.ndarray:
    """Median of each sorted row (mean of the two middle values for an even count), as
    ``np.median``; a sort instead of ``np.nanmedian``, which costs ~1 ms per call on
    small matrices (masked arrays)."""
    m = sorted_rows.shape[-1]
    return 0.5 * (sorted_rows[..., (m - 1) // 2] + sorted_rows[..., m // 2])


def median(v: np.ndarray) -> float:
    """``np.median`` of a 1-D array (nan if any entry is nan) by one sort: ~10x cheaper
    than ``np.median`` on the short vectors of per-iteration stopping rules."""
    if v.size == 0:
        return math.nan
    s = np.sort(v)
    return math.nan if math.isnan(s[-1]) else float(_middle(s))


def _gram_np(g: Tensor) -> tuple[np.ndarray, np.ndarray]:
    return _finish_gram(host.to_host(g, torch.float64).numpy())


def _finish_gram(g_np: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrize a float64 Gram matrix; zero the rows/columns of bad (non-finite) rows."""
    g_np = 0.5 * (g_np + g_np.T)  # BLAS may round G_ij and G_ji differently
    bad = ~np.isfinite(np.diagonal(g_np))
    if bad.any():
        g_np[bad, :] = 0.0
        g_np[:, bad] = 0.0
    return g_np, bad


# Columns per chunk of the centered kernels (about 2 MB of float32 at n = 30: the
# difference block stays in cache between the subtraction and its product).
_CENTER_ELEMS = 1 << 19


def _centered_reduce(x: Tensor, v: Tensor, gram: bool) -> Tensor:
    """Sum over column chunks of ``(X_c - v_c)(X_c - v_c)^T`` (``gram``, ``[n, n]``) or
    of the squared row norms of ``X_c - v_c`` (``[n]``); each chunk's result is in the
    input dtype (like any BLAS product), the chunks are summed in float64: one
    read of ``x`` and no ``[n, d]`` temporary. On CPU (float32/64) the chunks are numpy
    jobs on the thread pool (numpy releases the GIL; per-chunk torch calls wait for
    intra-op threads on a busy machine), elsewhere a torch loop."""
    n, d = x.shape
    cols = max(1, _CENTER_ELEMS // max(1, n))
    bounds = list(range(0, d, cols)) + [d]
    if _numpy_ok(x):
        a, vn = x.detach().numpy(), v.detach().to(x.dtype).numpy()

        def job(i: int) -> np.ndarray:
            with np.errstate(invalid="ignore", over="ignore"):
                t = a[:, bounds[i]:bounds[i + 1]] - vn[bounds[i]:bounds[i + 1]]
                if gram:
                    return (t @ t.T).astype(np.float64)
                return np.einsum("ij,ij->i", t, t).astype(np.float64)

        jobs = range(len(bounds) - 1)
        # one chunk: run it here (a pool hand-off costs more than the product)
        parts = [job(0)] if len(jobs) == 1 else list(_pool().map(job, jobs))
        with np.errstate(invalid="ignore", over="ignore"):
            return torch.from_numpy(np.sum(parts, axis=0))
    acc = torch.zeros((n, n) if gram else (n,), dtype=torch.float64, device=x.device)
    for i in range(len(bounds) - 1):
        t = x[:, bounds[i]:bounds[i + 1]] - v[bounds[i]:bounds[i + 1]]
        acc += (t @ t.T).to(torch.float64) if gram else t.to(torch.float64).square().sum(1)
    return acc


def centered_gram(x: Tensor, ref: int) -> tuple[np.ndarray, np.ndarray]:
    """``(G, bad)``: the Gram matrix ``<x_i - x_ref, x_j - x_ref>`` as float64 numpy
    (``ref = -1``: the raw ``X X^T``, one BLAS call), and the bad-row mask (non-finite
    diagonal; their rows and columns of G are zeroed so no nan leaks into later
    ``n x n`` algebra). The centered product runs over column chunks
    (:func:`_centered_reduce`)."""
    if ref < 0:
        return _gram_np(x @ x.T)
    return _gram_np(_centered_reduce(x, x[ref], gram=True))


def _row_medians(d2: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Each good row's median squared distance to the other good rows (inf for bad)."""
    good = np.flatnonzero(~bad)
    out = np.full(d2.shape[0], INF)
    if len(good) >= 2:
        sub = d2 if len(good) == len(bad) else d2[np.ix_(good, good)]
        out[good] = _middle(_sorted_off_diagonal(sub))
    return out


def pairwise(x: Tensor, probe: tuple[bool, int] | None = None) -> Pairwise:
    """Squared distances between all rows of ``x [n, d]``, exact at every scale.

    Algorithm (one Gram matrix in the common case):

    1. probe (:func:`_probe`, ``n x 1024`` float64 work): would the raw Gram lose
       precision, and which row is most central?
    2. no: ``G = X X^T`` (one BLAS call, the floor of distance-based rules);
       yes: ``G = (X - x_r)(X - x_r)^T`` over column chunks, r the probe's medoid.
    3. a centered result is checked: if r's median distance to the rows exceeds 4 times
       the smallest one (r was central only on the probe's columns), the Gram is redone
       around the row that is central in full dimension; if more than half the rows
       came back non-finite (r is non-finite off the probe's columns, or overflows
       against them), the reference is re-chosen from the raw Gram matrix (which is
       kept if centering still loses rows).

    ``probe``: step 1's result when the caller already has it (:func:`pairwise_batch`).

    Error: about ``u (||x_i - r||^2 + ||x_j - r||^2)`` on ``D_ij`` (u: the input's unit
    roundoff), i.e. relative to the rows' spread, not their norm. Everything after the
    Gram matrix is ``n x n`` float64 numpy work.
    """
    if _SHARED:
        hit = _SHARED.pop(_view_key(x), None)
        if hit is not None:
            return hit
    center, ref = _probe(x) if probe is None else probe
    if not center:
        ref = -1
    g, bad = centered_gram(x, ref)
    d2 = sqdist_from_gram(g, bad)
    if ref >= 0:
        n = x.shape[0]
        if int(bad.sum()) > n // 2:  # r is non-finite off the probe, or overflows
            g_raw, bad_raw = centered_gram(x, -1)
            if bad_raw.sum() < bad.sum():
                d2_raw = sqdist_from_gram(g_raw, bad_raw)
                ref = int(np.argmin(_row_medians(d2_raw, bad_raw)))
                g, bad = centered_gram(x, ref)
                if bad.sum() > bad_raw.sum():
                    return Pairwise(d2_raw, g_raw, bad_raw, -1)
                d2 = sqdist_from_gram(g, bad)
        med = _row_medians(d2, bad)
        best = int(np.argmin(med))
        if np.isfinite(med[best]) and not med[ref] <= 4.0 * med[best]:
            ref = best
            g, bad = centered_gram(x, ref)
            d2 = sqdist_from_gram(g, bad)
    return Pairwise(d2, g, bad, ref)


def sqdist_to(x: Tensor, v: Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(||x_i - v||^2 [n], bad [n])`` computed directly (``v = None``: squared row
    norms), as float64 numpy; ``bad`` marks rows whose result is not finite, and their
    distance is ``+inf``.

    Direct differences over column chunks (:func:`_centered_reduce`): exact at every
    scale, for centers that are not combinations of the rows (cclip's and MoNNA's
    previous aggregate, a pivot row).
    """
    if v is None:
        sq = to_np(torch.linalg.vector_norm(x, dim=1)) ** 2
    else:
        sq = to_np(_centered_reduce(x, v.to(device=x.device, dtype=x.dtype), gram=False))
    bad = ~np.isfinite(sq)
    return np.where(bad, INF, sq), bad


def sqdist_from_gram(g: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Pairwise squared distances ``[n, n]`` from a (centered, see :func:`pairwise`)
    Gram matrix; bad rows are ``+inf`` away from every row (diagonal included), good
    rows are 0 from themselves."""
    sq = np.diagonal(g)
    with np.errstate(invalid="ignore", over="ignore"):
        d2 = sq[:, None] + sq[None, :] - 2.0 * g
    d2 = np.nan_to_num(d2, nan=INF, posinf=INF)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    if bad.any():
        d2[bad, :] = INF
        d2[:, bad] = INF
    return d2


def to_np(t: Tensor) -> np.ndarray:
    """A small tensor as float64 numpy on the CPU (through the counted host door)."""
    return host.to_host(t, torch.float64).numpy()


def sqdist_to_combo(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``||x_i - sum_j w_j x_j||^2`` for every row ``i`` (``[n]``), from the centered
    Gram matrix of :func:`pairwise`. The weights must sum to 1 (then the expression is
    translation invariant and the centering cancels).

    ``w`` may be ``[n]`` or ``[k, n]`` (then the result is ``[k, n]``: row ``a`` holds
    the distances from every ``x_i`` to combination ``a``).
    """
    gw = w @ g  # [.., n]: <x_i - r, v - r>
    vv = np.einsum("...i,...i->...", gw, w)  # ||v - r||^2
    d2 = np.diagonal(g) - 2.0 * gw + np.asarray(vv)[..., None]
    return np.maximum(d2, 0.0)


def krum_scores(d2: np.ndarray, k: int) -> np.ndarray:
    """Krum score of every row: sum of its ``k`` smallest squared distances to the
    *other* rows (Blanchard et al., 2017). ``d2`` is ``[n, n]``; rows/columns set to
    ``+inf`` are thereby excluded as neighbours."""
    d = d2.copy()
    np.fill_diagonal(d, INF)
    if k <= 0:
        return np.zeros(d.shape[0])
    part = np.partition(d, k - 1, axis=1)[:, :k]
    with np.errstate(invalid="ignore"):
        s = part.sum(axis=1)
    return np.nan_to_num(s, nan=INF)


def stable_smallest(scores: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` smallest scores, ties broken by the lower index."""
    return np.argsort(scores, kind="stable")[:m]


def combine(x: Tensor, w: np.ndarray | Tensor, bad: np.ndarray | None = None,
            out: Tensor | None = None) -> Tensor:
    """``sum_i w_i x_i`` (``w [n]`` -> ``[d]``, or ``w [k, n]`` -> ``[k, d]``) without
    touching bad rows: their entries would turn ``0 * nan`` into nan. ``out``: optional
    destination (see :func:`reusable`)."""
    wt = torch.as_tensor(w, dtype=x.dtype).to(x.device)
    if bad is not None and bad.any() and not bad.all():  # all bad: let nan show
        keep = torch.as_tensor(np.flatnonzero(~bad), device=x.device)
        wt, x = wt.index_select(-1, keep), x.index_select(0, keep)
    return wt @ x if out is None else torch.matmul(wt, x, out=out)


def reusable(owner: object, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An output buffer kept on ``owner`` and reused while shape/dtype/device match.

    Why: pre-aggregators return a fresh ``[n, d]`` matrix every call; on CPU a fresh
    120 MB allocation is returned to the OS when freed and page-faulted again next time
    (~100 ms here, 4x a multiply into warm memory). The buffer is valid until the
    owner's next call: every rule consumes its input within the call (none returns a
    view of it).
    """
    buf = getattr(owner, "_out", None)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
        buf = torch.empty(shape, dtype=like.dtype, device=like.device)
        owner._out = buf  # type: ignore[attr-defined]
    return buf


def sample_columns(d: int, k: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``k`` distinct sorted column indices out of ``d``, drawn from ``generator``.

    The generator supplies one 62-bit seed for numpy's sampler without replacement,
    which is O(k) (``torch.randperm`` is O(d): 40 ms at d = 1e6, per call); the draw is
    therefore fully determined by the generator's state.
    """
    if k >= d:
        return torch.arange(d, device=device)
    seed = int(host.to_host(torch.randint(0, 2**62, (1,), generator=generator,
                                          device=generator.device)).tolist()[0])
    idx = np.sort(np.random.default_rng(seed).choice(d, size=k, replace=False))
    return torch.as_tensor(idx, device=device)


def random_projections(x: Tensor, bad: np.ndarray, k: int,
                       generator: torch.Generator) -> np.ndarray:
    """``[n, k]`` float64: the finite rows minus their mean, projected on ``k`` random unit
    directions (standard Gaussian vectors, normalized, drawn from ``generator``): the
    start vectors of ``k`` power iterations in the ``n``-dimensional form of the rules
    that work on a Gram matrix (``(x_i - m) . v``; any common ``m`` gives the same
    centered quantities). Non-finite rows get 0."""
    d = x.shape[1]
    v = torch.randn(d, k, generator=generator, device=generator.device,
                    dtype=x.dtype if x.dtype.is_floating_point else torch.float32).to(x.device)
    v = v / torch.linalg.vector_norm(v, dim=0, keepdim=True)
    good = torch.as_tensor(~bad, device=x.device)
    m = x[good].mean(dim=0) if bool(good.any()) else torch.zeros_like(x[0])
    xc = torch.where(good[:, None], x - m, torch.zeros((), dtype=x.dtype, device=x.device))
    return host.to_host(xc @ v.to(x.dtype), torch.float64).numpy()


def gather_cols(x: Tensor, idx: Tensor) -> np.ndarray:
    """Columns ``idx`` (last dimension) of ``x`` as float64 numpy (numpy take on CPU: a
    small torch op on a busy machine waits ~10 ms for intra-op threads; numpy runs in the
    caller)."""
    if x.device.type == "cpu":
        return np.take(x.detach().numpy(), idx.numpy(), axis=-1).astype(np.float64)
    return to_np(x.index_select(-1, idx))


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite (numpy on CPU, see :func:`gather_cols`)."""
    if t.device.type == "cpu":
        return bool(np.isfinite(t.detach().numpy()).all())
    return bool(host.to_host(torch.isfinite(t).all()))


def one_hot(n: int, idx: np.ndarray | list[int], like: Tensor) -> Tensor:
    """Weights ``[n]`` equal to ``1/len(idx)`` on ``idx`` and 0 elsewhere."""
    w = torch.zeros(n, dtype=like.dtype, device=like.device)
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=like.device)
    w[idx_t] = 1.0 / max(1, len(idx_t))
    return w

# ------------------------------------------------------------- batched distance queries
#
# Pipeline.query_batch evaluates k candidate matrices at once. The distance-based stages
# then get all k ``pairwise`` results from :func:`pairwise_batch` (the problems that
# need no centering share one batched Gram product and one transfer to the host), and
# run their ``n x n`` logic per problem, reading their own result through
# :func:`shared_pairwise` (so each rule's code stays the unbatched one).

_SHARED: dict[tuple, Pairwise] = {}


def _view_key(x: Tensor) -> tuple:
    return (x.data_ptr(), tuple(x.shape), tuple(x.stride()), x.dtype, str(x.device))


def pairwise_batch(xs: Tensor) -> list[Pairwise]:
    """``[pairwise(xs[i]) for i]`` for ``xs [k, n, d]``: the raw Gram matrices of the
    problems whose probe says no centering come from one ``[k, n, n]`` product and one
    host transfer; the others take the full centered path one by one."""
    probes = _probe_batch(xs)
    out: list[Pairwise | None] = [None] * len(probes)
    raw = [i for i, (center, _) in enumerate(probes) if not center]
    if raw:
        sub = xs if len(raw) == len(probes) else xs[raw]
        g_all = host.to_host(sub @ sub.transpose(1, 2), torch.float64).numpy()
        for j, i in enumerate(raw):
            g, bad = _finish_gram(g_all[j])
            out[i] = Pairwise(sqdist_from_gram(g, bad), g, bad, -1)
    for i, probe in enumerate(probes):
        if probe[0]:
            out[i] = pairwise(xs[i], probe)
    return out  # type: ignore[return-value]


@contextlib.contextmanager
def shared_pairwise(views: list[Tensor], results: list[Pairwise]):
    """Within the block, ``pairwise(views[i])`` returns ``results[i]`` (once each)."""
    keys = [_view_key(v) for v in views]
    _SHARED.update(zip(keys, results))
    try:
        yield
    finally:
        for k in keys:
            _SHARED.pop(k, None)


def batch_by_pairwise(stage: Callable[[Tensor], Tensor], xs: Tensor) -> Tensor:
    """The batched path of a distance-based rule (use as ``batch = _ops.batch_by_pairwise``
    in its class): ``xs [k, n, d] -> [k, d]``, ``stage(xs[i])`` for each i with the k
    ``pairwise`` results computed together (:func:`pairwise_batch`)."""
    views = list(xs.unbind(0))
    with shared_pairwise(views, pairwise_batch(xs)):
        return torch.stack([stage(x) for x in views])


# ------------------------------------------------------------------ coordinate-wise path
#
# Block kernels receive a column block either as a numpy array (CPU float32/float64:
# numpy sorts are faster, and numpy element-wise ops are single-threaded, which keeps
# the blocks running on the thread pool from fighting torch's intra-op threads: under
# load, a torch op on a 30 x 70k block measured 0.3 ms alone and 40 ms inside the
# pool) or as a torch tensor (other devices/dtypes). The helpers below accept both.

Array = np.ndarray | Tensor


def _numpy_ok(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def columnwise(fn: Callable[[Array], Array], x: Tensor) -> Tensor:
    """``fn`` applied to column blocks of ``x [n, d]``; ``fn`` maps ``[n, c] -> [..., c]``
    and must treat columns independently. On CPU (float32/float64) ``fn`` receives numpy
    blocks, run on a thread pool (numpy releases the GIL); elsewhere ``fn(x)``."""
    n, d = x.shape
    if not _numpy_ok(x):
        return fn(x)
    a = x.detach().numpy()
    if n * d <= _CHUNK_ELEMS or d < 2:
        return torch.from_numpy(np.ascontiguousarray(fn(a)))
    cols = max(1, _CHUNK_ELEMS // max(1, n))
    bounds = list(range(0, d, cols)) + [d]
    first = fn(a[:, bounds[0]:bounds[1]])
    out = np.empty((*first.shape[:-1], d), dtype=first.dtype)
    out[..., bounds[0]:bounds[1]] = first

    def job(i: int) -> None:
        out[..., bounds[i]:bounds[i + 1]] = fn(a[:, bounds[i]:bounds[i + 1]])

    list(_pool().map(job, range(1, len(bounds) - 1)))
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


# Rows up to which a comparator network beats numpy's per-column sort on 2M-element
# blocks (this 2-core CPU, numpy 2.4): a full sort 1.5x faster at n = 20, slower from
# n = 30; a selection (trimmed mean, median) 2x faster at n = 20, even at n = 40.
NETWORK_MAX_ROWS = 40
SORT_NETWORK_MAX_ROWS = 24


@functools.lru_cache(maxsize=64)
def comparators(n: int, cuts: tuple[int, ...] = ()) -> tuple[tuple[int, int], ...]:
    """Comparator network that sorts ``n`` wires, as ``(i, j)`` pairs with ``i < j``
    (after each, wire ``i`` holds the min): Batcher's odd-even merge sort on the next
    power of two, minus comparators touching the padding wires (think of them as
    ``+inf``: such a comparator never moves anything).

    ``cuts``: only the *segments* between consecutive cuts must come out right (which
    values land in ``[0, c_1)``, ``[c_1, c_2)``, ...), not the order inside a segment:
    comparators that, from the end, only reorder wires of one segment are dropped
    (a selection network; e.g. a trimmed mean needs cuts ``(f, n - f)``).

    Reference: K. E. Batcher, "Sorting networks and their applications", AFIPS 1968.
    """
    p2 = 1
    while p2 < n:
        p2 *= 2
    comps: list[tuple[int, int]] = []
    p = 1
    while p < p2:
        k = p
        while k >= 1:
            for j in range(k % p, p2 - k, 2 * k):
                for i in range(min(k, p2 - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comps.append((i + j, i + j + k))
            k //= 2
        p *= 2
    comps = [(i, j) for i, j in comps if j < n]
    if not cuts:
        return tuple(comps)
    seg = np.searchsorted(np.asarray(sorted(cuts)), np.arange(n), side="right")
    free = [True] * n  # no kept comparator after this point touches the wire
    kept = []
    for i, j in reversed(comps):
        if free[i] and free[j] and seg[i] == seg[j]:
            continue
        kept.append((i, j))
        free[i] = free[j] = False
    return tuple(reversed(kept))


def network_rows(a: np.ndarray, cuts: tuple[int, ...] = (),
                 max_rows: int | None = None) -> list[np.ndarray] | None:
    """Rows of ``a [n, c]`` after the comparator network (see :func:`comparators`):
    each comparator is one vectorized min and max over whole rows. None when numpy's
    sort is the better tool: many rows, or nan entries (min/max would duplicate a nan
    instead of moving it last). ``max_rows``: default NETWORK_MAX_ROWS."""
    n = a.shape[0]
    if n > (max_rows or NETWORK_MAX_ROWS) or n < 2 or np.isnan(a).any():
        return None
    rows = list(a)
    own = [False] * n  # rows[i] is a temporary we may overwrite (not a view of a)
    for i, j in comparators(n, cuts):
        lo = np.minimum(rows[i], rows[j])
        if own[j]:
            np.maximum(rows[i], rows[j], out=rows[j])
        else:
            rows[j], own[j] = np.maximum(rows[i], rows[j]), True
        rows[i], own[i] = lo, True
    return rows


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
