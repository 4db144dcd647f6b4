"""THE distance primitive of byzbench: pairwise squared distances from one Gram
matrix, centred on a central row when the raw one would lose precision, exact at every
scale (:func:`pairwise`); distances to one vector (:func:`sqdist_to`); the batched
form for k problems (:func:`pairwise_batch`). A precomputed result is passed
explicitly (``stage(x, pw=...)``), never looked up in a cache.

Non-finite rows (any inf/nan entry, or a squared norm that overflows) are "bad": they
are at distance ``+inf`` from every row and get zero weight in combinations.

Precision: about ``u (||x_i - r||^2 + ||x_j - r||^2)`` with r a central row (u: unit
roundoff), i.e. relative to the rows' spread, not their norm (``scripts/check_close_rows.py``,
docs/RULES.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from byzbench import host
from byzbench.kernels import coordinatewise
from byzbench.kernels.rows import gather_cols, to_np
from byzbench.kernels.threads import pool

INF = math.inf



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
    if coordinatewise.numpy_ok(x):
        a, vn = x.detach().numpy(), v.detach().to(x.dtype).numpy()

        def job(i: int) -> np.ndarray:
            with np.errstate(invalid="ignore", over="ignore"):
                t = a[:, bounds[i]:bounds[i + 1]] - vn[bounds[i]:bounds[i + 1]]
                if gram:
                    return (t @ t.T).astype(np.float64)
                return np.einsum("ij,ij->i", t, t).astype(np.float64)

        jobs = range(len(bounds) - 1)
        # one chunk: run it here (a pool hand-off costs more than the product)
        parts = [job(0)] if len(jobs) == 1 else list(pool().map(job, jobs))
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


def batch_by_pairwise(stage: Callable[..., Tensor], xs: Tensor, rule: Any = None) -> Tensor:
    """The batched path of a distance-based rule (``batch = kernels.batch_by_pairwise``
    in its class, whose ``__call__(x, pw=None)`` takes a precomputed :func:`pairwise`
    result): ``xs [k, n, d] -> [k, d]``, ``stage(xs[i], pw=pws[i])`` with the k results
    computed together (:func:`pairwise_batch`) and passed explicitly. Sets the rule's
    ``last_batch_weights`` from each call's ``last_weights`` (``stack_weights``);
    ``rule``: the rule object when ``stage`` is a function calling it (default: stage)."""
    from byzbench.kernels.rows import stack_weights

    rule = stage if rule is None else rule
    pws = pairwise_batch(xs)
    outs, ws = [], []
    for x, pw in zip(xs.unbind(0), pws):
        outs.append(stage(x, pw=pw))
        ws.append(rule.last_weights)
    rule.last_batch_weights = stack_weights(ws, xs.shape[1], xs)
    return torch.stack(outs)
