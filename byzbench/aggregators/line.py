"""Line queries: a pipeline evaluated at k candidate inputs that share their honest rows.

Every adaptive and tuned attack searches along a line: its candidates are
``V(lambda) = honest rows + f Byzantine rows b_j(lambda) = base + lambda s_j dir``
(``s_j = +-1``, all +1 unless the attack splits its rows), in the pipeline's row order.
The honest rows are the same for every candidate, so the ``d``-sized work is done once:

* an :class:`AffineBasis` of ``[honest; base; dir]`` (``[r, d]``, ``r = h + 2``) and its
  float64 Gram matrix, centred on the honest medoid ``c`` chosen by the distance
  primitive's probe (``kernels.distances._probe``): the Gram of ``[c; x_j - c (positions);
  dir]``, so distances between rows read only the centred part (error relative to the
  rows' spread, as ``kernels.pairwise``);
* a :class:`Family`: per candidate ``i`` and row ``a``, coefficients ``coef[i, a]`` over
  the basis. A candidate's distance matrix is ``E G E^T`` (``n x n`` from ``n x r``
  coefficients: O(n^2 r) instead of O(n^2 d)); linear pre-aggregators (NNM, bucketing)
  and row scalings (clipping, ARC) map a family to a family;
* coordinate-wise rules, while the rows are "fixed rows + f identical variable rows",
  sort the fixed rows once per round and read every order statistic of a candidate as
  ``clamp(b, S[m - f], S[m])`` (:func:`order_stat`): O(d) per candidate and statistic,
  no sort, bit-identical to sorting the materialized column.

A stage takes part by a method ``line(fam: Family) -> Family`` (pre-aggregators) or
``-> Tensor [k, d]`` (rules); :func:`line_of` reads the declaration (
the stage base class declares it). A pipeline with a stage lacking it is evaluated by
materializing the candidates (:meth:`Family.materialize`) through ``query_batch``.

Exactness (tests/unit/aggregators/test_line.py): selections (Krum's row, Multi-Krum's
set, Bulyan's set, MDA's subset, NNM's neighbours, clustering) equal the materialized
ones on the same candidates; coordinate-wise rules on fixed + identical rows are
bit-identical; other values differ by float rounding only (the output is the
coefficient combination ``A @ basis`` rather than a sum over materialized rows);
Weiszfeld (geomed) iterates on a Gram matrix that differs by rounding, so its stopping
iteration can differ: values agree to its tolerance ``tol`` relative to the spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import host, kernels

INF = math.inf


def line_of(stage: Any) -> Callable[[Family], Any] | None:
    """The stage's line path ``stage.line``, or None where it declares none
    (``Stage.has_line``)."""
    return stage.line if stage.has_line() else None


# ----------------------------------------------------------------------------- basis


@dataclass
class AffineBasis:
    """Basis rows ``raw [r, d]`` (input dtype) and their centred float64 Gram matrix.

    ``pos[j]``: row j is a position (moves under translation: honest rows, base, extra
    centres) rather than a direction. Extended coefficients of a combination ``a`` are
    ``[sum_j pos_j a_j, a]`` over ``[c; raw_j - pos_j c]``; ``gram`` is their
    ``[r + 1, r + 1]`` Gram matrix (bad rows and columns zeroed). ``cache``: per-round
    memo of stages (sorted fixed rows, ...), valid while the basis is."""

    raw: Tensor
    raw_host: np.ndarray
    pos: np.ndarray
    z: np.ndarray  # [r + 1, d] float64: the centre, then the centred rows (for ``gram``)
    bad: np.ndarray
    nan: np.ndarray
    center: np.ndarray
    cache: dict = field(default_factory=dict)

    @property
    def gram(self) -> np.ndarray:
        """``[r + 1, r + 1]`` float64 Gram matrix of ``z`` (bad rows and columns zeroed),
        computed on first use: the coordinate-wise rules and the mean never need it."""
        g = self.cache.get("gram")
        if g is None:
            zt = torch.from_numpy(self.z)
            with np.errstate(invalid="ignore", over="ignore"):
                g = (zt @ zt.T).numpy()  # torch's product: its thread setting, not numpy's
            g = 0.5 * (g + g.T)
            ok = np.r_[True, ~self.bad]
            g[~ok, :] = 0.0
            g[:, ~ok] = 0.0
            self.cache["gram"] = g
        return g

    @property
    def r(self) -> int:
        return self.raw.shape[0]

    def raw_np(self) -> np.ndarray:
        """``raw`` as numpy on the CPU (copied once, through ``host.to_host``)."""
        return self.raw_host

    def raw_cpu(self) -> Tensor:
        """``raw`` as a CPU tensor (a view of ``raw_host``)."""
        hit = self.cache.get("raw_cpu")
        if hit is None:
            hit = self.cache["raw_cpu"] = torch.from_numpy(self.raw_host)
        return hit

    @staticmethod
    def build(rows: Tensor, pos: np.ndarray, central: np.ndarray | None = None) -> AffineBasis:
        """The basis of ``rows [r, d]``, centred on the mean ``c`` of the finite rows
        among ``central`` (default: the position rows): a central point, so distances
        among them and rows near them are computed relative to their spread, as with
        the distance primitive's centring on a central row (``c`` need not be a row:
        every row is ``c + (x - c)`` exactly in the extended coefficients)."""
        pos = np.asarray(pos, dtype=bool)
        x = _host(rows)
        sub = x[np.flatnonzero(pos if central is None else central)]
        with np.errstate(invalid="ignore", over="ignore"):
            c = sub.mean(axis=0)
            if not np.isfinite(c).all():  # leave non-finite rows out of the centre
                fin = np.isfinite(sub).all(axis=1)
                c = sub[fin].mean(axis=0) if fin.any() else np.zeros_like(c)
                c = np.where(np.isfinite(c), c, 0.0).astype(x.dtype)
        return AffineBasis._with_center(rows, x, pos, c)

    @staticmethod
    def _with_center(rows: Tensor, x: np.ndarray, pos: np.ndarray,
                     cn: np.ndarray) -> AffineBasis:
        # Centre in the input dtype (as the distance primitive does), accumulate the
        # Gram matrix in float64. ``x``: the rows on the host. A basis row is bad when
        # its float64 squared norm is not finite (an inf or nan entry); nan: a nan entry.
        # Overflow of the input dtype is judged on the candidates' rows (row_bad): a
        # huge direction times a zero scale is a good row.
        r, d = x.shape
        z = np.empty((r + 1, d))
        with np.errstate(invalid="ignore", over="ignore"):
            z[0] = cn
            np.subtract(x, cn, out=z[1:])
            z[1:][~pos] = x[~pos]
            # the Gram diagonal (squared norms: non-negative terms, so whether the sum
            # is finite does not depend on the order of summation); the Gram itself lazily
            diag = np.einsum("ij,ij->i", z[1:], z[1:])
        return AffineBasis(rows, x, pos, z, ~np.isfinite(diag), np.isnan(diag), cn)

    def extend(self, v: Tensor) -> tuple[AffineBasis, int]:
        """This basis plus the position row ``v`` (same centre); its index. Memoized."""
        key = ("extend", id(v), v._version)
        hit = self.cache.get(key)
        if hit is None:
            rows = torch.cat([self.raw, v.to(self.raw).unsqueeze(0)])
            x = np.concatenate([self.raw_host, _host(v.to(self.raw))[None]])
            ext = AffineBasis._with_center(rows, x, np.append(self.pos, True), self.center)
            ext.cache = {}
            hit = self.cache[key] = (ext, self.r)
        return hit

    def ext(self, coef: np.ndarray) -> np.ndarray:
        """Extended coefficients ``[..., r + 1]`` (centre first) of ``coef [..., r]``."""
        return np.concatenate([(coef * self.pos).sum(axis=-1, keepdims=True), coef], axis=-1)


def _host(t: Tensor) -> np.ndarray:
    """``t`` as numpy on the host (through the counted door ``host.to_host``), float32
    or float64."""
    dtype = None if t.dtype in (torch.float32, torch.float64) else torch.float64
    return host.to_host(t, dtype).numpy()


def _coef_rows(raw: np.ndarray, coef: np.ndarray, touch: np.ndarray) -> np.ndarray:
    """``sum_j coef[:, j] raw[j]`` for ``coef [m, r]`` over the touched columns, one
    column at a time in order (element-wise: the same bits whatever m)."""
    m = coef.shape[0]
    out = np.zeros((m, raw.shape[1]), dtype=raw.dtype)
    cols = np.flatnonzero(touch.any(axis=0))
    with np.errstate(invalid="ignore", over="ignore"):
        for j in cols:
            rows = np.flatnonzero(touch[:, j])
            c = coef[rows, j].astype(raw.dtype)[:, None]
            if len(rows) == m:
                out += c * raw[j]
            else:
                out[rows] += c * raw[j]
    return out


# ---------------------------------------------------------------------------- family


@dataclass
class Family:
    """k candidate inputs of a stage, each ``n`` rows, as coefficients over a basis.

    ``coef [k, n, r]`` float64; ``touch [k, n, r]``: the basis rows a row depends on
    (a zero coefficient on a non-finite basis row still spoils it, as ``0 * nan``
    would); ``var [n]``: rows that depend on the candidate's scale (the others are the
    same in every candidate); ``bad [k, n]``: rows with a non-finite entry."""

    basis: AffineBasis
    coef: np.ndarray
    touch: np.ndarray
    var: np.ndarray
    bad: np.ndarray

    @property
    def k(self) -> int:
        return self.coef.shape[0]

    @property
    def n(self) -> int:
        return self.coef.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.basis.raw.dtype

    def _raw_np(self) -> np.ndarray:
        return self.basis.raw_np()

    def rows(self, coef: np.ndarray, touch: np.ndarray) -> Tensor:
        """The vectors ``[m, d]`` of coefficient rows ``coef [m, r]`` (exact per-column
        arithmetic; the same bits for the same coefficients)."""
        out = _coef_rows(self._raw_np(), coef, touch)
        return torch.from_numpy(out).to(device=self.basis.raw.device, dtype=self.dtype)

    def materialize(self) -> Tensor:
        """The candidates as ``[k, n, d]`` (the fallback path and the tests' reference)."""
        k, n, r = self.coef.shape
        return self.rows(self.coef.reshape(k * n, r), self.touch.reshape(k * n, r)).reshape(
            k, n, -1)

    def clean(self) -> np.ndarray:
        """``coef`` with the bad rows' coefficients zeroed (they may be nan)."""
        return np.where(self.bad[..., None], 0.0, self.coef)

    def with_coef(self, coef: np.ndarray, touch: np.ndarray, bad: np.ndarray,
                  var: np.ndarray) -> Family:
        return replace(self, coef=coef, touch=touch, bad=bad, var=var)

    # -- distances

    def centred_gram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(g [k, n, n], bad [k, n])``: Gram matrices of the rows minus the centre, and
        the bad rows (:meth:`row_bad`), whose rows and columns of g are zeroed."""
        e = self.basis.ext(self.coef)
        e[..., 0] -= 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            g = (e @ self.basis.gram) @ e.transpose(0, 2, 1)
        g = 0.5 * (g + g.transpose(0, 2, 1))
        bad = self.row_bad(g)
        if bad.any():
            g = np.where(bad[:, :, None] | bad[:, None, :], 0.0, g)
        return g, bad

    def row_bad(self, g: np.ndarray | None = None) -> np.ndarray:
        """``bad`` plus rows whose squared norm around the centre overflows the input
        dtype (the materialized Gram would be non-finite there)."""
        if g is None:
            return self.bad
        diag = np.diagonal(g, axis1=1, axis2=2)
        return self.bad | ~(diag <= torch.finfo(self.dtype).max)

    def pairwise(self) -> list[kernels.Pairwise]:
        """``kernels.pairwise`` of every candidate (``gram`` centred on ``c``, ``ref``
        -1: read only translation-invariant quantities, as from the primitive)."""
        g, bad = self.centred_gram()
        sq = np.diagonal(g, axis1=1, axis2=2)
        with np.errstate(invalid="ignore", over="ignore"):
            d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * g
        d2 = np.maximum(np.nan_to_num(d2, nan=INF, posinf=INF), 0.0)
        d2[:, np.arange(self.n), np.arange(self.n)] = 0.0
        if bad.any():  # as kernels.sqdist_from_gram
            d2[bad[:, :, None] | bad[:, None, :]] = INF
        return [kernels.Pairwise(d2[i], g[i], bad[i], -1) for i in range(self.k)]

    def sq_norms(self) -> np.ndarray:
        """``||row||^2 [k, n]``; bad rows: nan when they have a nan entry, else inf
        (what a norm of the materialized row gives)."""
        sq = _quad(self.basis.ext(self.clean()), self.basis.gram)
        nan = (self.touch & self.basis.nan).any(axis=2) | np.isnan(self.coef).any(axis=2)
        return np.where(self.bad, np.where(nan, np.nan, INF), np.maximum(sq, 0.0))

    def sqdist_to(self, w: np.ndarray) -> np.ndarray:
        """``||row_a - v_i||^2 [k, n]`` to the combination ``v_i = w[i] @ basis``
        (``w [k, r]`` with position sum 1, like the rows)."""
        e = self.basis.ext(self.clean()) - self.basis.ext(w)[:, None, :]
        sq = _quad(e, self.basis.gram)
        return np.where(self.bad, INF, np.maximum(sq, 0.0))

    # -- outputs

    def mix(self, m: np.ndarray, var: np.ndarray | None = None) -> Family:
        """The family of ``m @ rows`` (``m [k, n_out, n]`` or ``[n_out, n]``); bad and
        var rows propagate to every output row with a non-zero weight on them (pass
        ``var`` when the stage knows better)."""
        m = np.broadcast_to(m, (self.k, *m.shape[-2:])) if m.ndim == 2 else m
        nz = m != 0
        coef = m @ self.clean()
        for i, a, b in zip(*np.nonzero(nz & self.bad[:, None, :])):  # bad inputs used
            coef[i, a] += m[i, a, b] * self.coef[i, b]
        touch = (nz.astype(np.float64) @ self.touch) > 0
        bad = (nz & self.bad[:, None, :]).any(axis=2)
        if var is None:
            var = (nz & self.var[None, None, :]).any(axis=(0, 2))
        return self.with_coef(coef, touch, bad, var | _differs(coef))

    def scale_rows(self, s: np.ndarray) -> Family:
        """Rows scaled by ``s [k, n]`` (clipping; a nan scale makes the row all nan, a
        zero scale keeps the nan entries, as multiplying the materialized row)."""
        coef = self.coef * s[..., None]
        return self.with_coef(coef, self.touch, self.bad, self.var | _differs(coef))

    def combine(self, w: np.ndarray) -> Tensor:
        """``[k, d]``: ``sum_a w[i, a] row_a`` of each candidate, without touching bad
        rows when their weight is 0 (as ``kernels.combine``)."""
        used = (w != 0)[:, :, None]
        a = np.einsum("ka,kar->kr", w, np.where(used, self.coef, 0.0))
        return self.vectors(a, (used & self.touch).any(axis=1))

    def vectors(self, a: np.ndarray, touch: np.ndarray) -> Tensor:
        """``a [k, r] @ basis`` over the touched columns (one product over the good
        basis rows, the bad ones added where touched)."""
        raw = self._raw_np()
        used = touch.any(axis=0)
        keep = ~self.basis.bad & used
        # torch's product: its thread setting, not numpy's BLAS (see kernels.single_blas)
        if keep.all():
            out = (torch.from_numpy(a.astype(raw.dtype)) @ self.basis.raw_cpu()).numpy()
        else:
            cols = np.flatnonzero(keep)
            out = (torch.from_numpy(a[:, cols].astype(raw.dtype))
                   @ torch.from_numpy(raw[cols])).numpy()
        with np.errstate(invalid="ignore", over="ignore"):
            for j in np.flatnonzero(self.basis.bad & used):
                rows = np.flatnonzero(touch[:, j])
                out[rows] += a[rows, j].astype(raw.dtype)[:, None] * raw[j]
        return torch.from_numpy(out).to(device=self.basis.raw.device, dtype=self.dtype)

    # -- coordinate-wise structure

    def split(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(fixed rows, var rows)`` indices when the var rows are identical within
        each candidate (f copies of one vector b_i), else None."""
        vi = np.flatnonzero(self.var)
        fi = np.flatnonzero(~self.var)
        if len(vi) == 0:
            return fi, vi
        c = self.coef[:, vi]
        t = self.touch[:, vi]
        if not (np.all(c == c[:, :1]) and np.all(t == t[:, :1])):
            return None
        return fi, vi

    def sorted_fixed(self, fi: np.ndarray) -> np.ndarray:
        """The fixed rows (materialized once per round), sorted along the row axis
        (nan last), as numpy ``[len(fi), d]``; memoized on the basis."""
        coef, touch = self.coef[0, fi], self.touch[0, fi]
        key = ("sorted", coef.tobytes(), touch.tobytes())
        hit = self.basis.cache.get(key)
        if hit is None:
            hit = self.basis.cache[key] = np.sort(
                _coef_rows(self._raw_np(), coef, touch), axis=0)
        return hit


def _quad(e: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``e_a^T g e_a`` of every row of ``e [k, n, r]``: ``[k, n]``."""
    with np.errstate(invalid="ignore", over="ignore"):
        return ((e @ g) * e).sum(axis=-1)


def _differs(coef: np.ndarray) -> np.ndarray:
    """``[n]``: rows whose coefficients are not the same in every candidate."""
    return ~np.all(coef == coef[:1], axis=(0, 2))


def order_stat(s: np.ndarray, b: np.ndarray, f: int, m: int,
               nanb: np.ndarray | None = None) -> np.ndarray:
    """Order statistic ``m`` (from 0, nan last) of each column of ``s`` (sorted fixed
    values ``[h, d]``) merged with ``f`` copies of ``b [k, d]``: ``[k, d]``.

    The merged column is ``s[:p], b x f, s[p:]`` with p the fixed values below b, so
    statistic m is ``s[m]`` if ``m < p``, ``b`` if ``p <= m < p + f``, else ``s[m - f]``:
    exactly ``min(max(b, s[m - f]), s[m])`` (``s[-1] = -inf``, ``s[h] =`` nan, the
    largest; ``fmin`` lets b below a nan pass). A nan b is the largest: ``s[m]``.
    ``nanb``: ``isnan(b)`` when the caller has it."""
    h = s.shape[0]
    if f == 0:
        return np.broadcast_to(s[m], b.shape).copy()
    hi = s[m] if m < h else np.full(s.shape[1], np.nan, dtype=s.dtype)
    out = np.maximum(b, s[m - f]) if m - f >= 0 else b.copy()
    np.fmin(out, hi, out=out)
    nanb = np.isnan(b) if nanb is None else nanb
    if nanb is not False and nanb.any():
        out = np.where(nanb, hi, out)
    return out


_POOL_ELEMS = 8 * kernels.CHUNK_ELEMS


def coordinatewise(fam: Family, reduce: Callable[[Callable[[int], np.ndarray], int], np.ndarray],
                   fallback: Callable[[Tensor], Tensor]) -> Tensor:
    """A coordinate-wise rule's line path: ``reduce(stat, n) -> [k, d]`` reads order
    statistics ``stat(m)`` of the merged columns (:func:`order_stat`) when the family
    is fixed rows + identical var rows; else ``fallback(materialized [k, n, d])``."""
    sp = fam.split()
    raw = fam.basis.raw
    if sp is None or raw.device.type != "cpu" or raw.dtype not in (torch.float32,
                                                                    torch.float64):
        return fallback(fam.materialize())
    fi, vi = sp
    s = fam.sorted_fixed(fi)
    f = len(vi)
    if f:
        b = _coef_rows(fam._raw_np(), fam.coef[:, vi[0]], fam.touch[:, vi[0]])
    else:
        b = np.zeros((fam.k, s.shape[1]), dtype=s.dtype)

    def block(lo: int, hi: int) -> np.ndarray:
        sb, bb = s[:, lo:hi], b[:, lo:hi]
        memo: dict[int, np.ndarray] = {}
        nanb = np.isnan(bb)
        nanb = nanb if nanb.any() else False

        def stat(m: int) -> np.ndarray:
            if m not in memo:
                memo[m] = order_stat(sb, bb, f, m, nanb)
            return memo[m]

        return reduce(stat, fam.n)

    # Large problems: column blocks on the thread pool, as kernels.columnwise (numpy
    # releases the GIL). Small ones in the caller: a pool hand-off costs ~0.1 ms idle
    # and ~2 ms on a busy machine, more than the few O(k d) passes of a query here.
    k, d = b.shape
    cols = max(1, kernels.CHUNK_ELEMS // max(1, k * fam.n))
    bounds = list(range(0, d, cols)) + [d]
    if len(bounds) <= 2 or k * fam.n * d < _POOL_ELEMS:
        return torch.from_numpy(np.ascontiguousarray(block(0, d)))
    out = np.empty((k, d), dtype=s.dtype)

    def job(i: int) -> None:
        out[:, bounds[i]:bounds[i + 1]] = block(bounds[i], bounds[i + 1])

    list(kernels.pool().map(job, range(len(bounds) - 1)))
    return torch.from_numpy(out)


def window_mean(fam: Family, f: int, center: Callable[[np.ndarray], np.ndarray],
                fallback: Callable[[Tensor], Tensor]) -> Tensor:
    """Line path of the rules that average the ``n - f`` values of each column closest
    to ``center(sorted column)`` (meamed, phocas): the merged sorted columns from
    order statistics, then ``kernels.mean_around`` as on a sort (bit-identical)."""

    def reduce(stat: Callable[[int], np.ndarray], n: int) -> np.ndarray:
        s = np.stack([stat(m) for m in range(n)])
        k, d = s.shape[1:]
        s = s.reshape(n, k * d)
        return kernels.mean_around(s, center(s), n - f).reshape(k, d)

    return coordinatewise(fam, reduce, fallback)


def by_weights(fam: Family, weights: Callable[[kernels.Pairwise], np.ndarray]) -> Tensor:
    """A distance rule's line path: ``weights(pairwise of a candidate) -> w [n]`` (the
    rule's own ``n x n`` logic), then ``sum_a w_a row_a`` per candidate."""
    w = np.stack([weights(pw) for pw in fam.pairwise()])
    return fam.combine(w)


# ------------------------------------------------------------------------ the query


def start(honest: Tensor, base: Tensor, direction: Tensor, scales: Tensor | list[float],
          f: int, order: Tensor | None = None, signs: Tensor | None = None) -> Family:
    """The family of candidates ``cat(honest, b(lambda_i) x f)[order]`` with
    ``b_j(lambda) = base + lambda signs_j direction`` (``signs [f]``, default all 1;
    ``order [h + f]`` the pipeline's row order, None = honest first)."""
    basis = _basis(honest, base, direction)
    lam = _host(torch.as_tensor(scales, dtype=torch.float64)).reshape(-1)
    sg = np.ones(f) if signs is None else _host(
        torch.as_tensor(signs, dtype=torch.float64)).reshape(f)
    o = None if order is None else tuple(host.to_host(order).numpy().tolist())
    key = ("template", honest.shape[0], f, o, sg.tobytes())
    tpl = basis.cache.get(key)
    if tpl is None:
        tpl = basis.cache[key] = _template(honest.shape[0], f, o, sg, basis.bad)
    coef1, touch, bad, var, byz = tpl
    coef = np.repeat(coef1[None], len(lam), axis=0)
    coef[:, byz, -1] = lam[:, None] * sg[None, :]
    k = len(lam)
    return Family(basis, coef, np.broadcast_to(touch, (k, *touch.shape)),
                  var, np.broadcast_to(bad, (k, len(bad))))


def _template(h: int, f: int, order: tuple | None, sg: np.ndarray, rbad: np.ndarray):
    """``(coef [n, r] without the scale, touch, bad, var, positions of the f rows)``."""
    n, r = h + f, h + 2
    coef = np.zeros((n, r))
    coef[np.arange(h), np.arange(h)] = 1.0
    coef[h:, h] = 1.0
    touch = np.zeros((n, r), dtype=bool)
    touch[np.arange(h), np.arange(h)] = True
    touch[h:, h:] = True
    var = np.zeros(n, dtype=bool)
    var[h:] = True
    bad = (touch & rbad).any(axis=1)
    o = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    byz = np.argsort(o)[h:]  # where the f rows land in the pipeline's order
    return coef[o], touch[o], bad[o], var[o], byz


# False: every line query takes the materialized path (query_batch of the candidates),
# for benchmarks that compare the two (scripts/bench_adaptive.py).
PATHS = True
_BASES: dict[tuple, AffineBasis] = {}


def _basis(honest: Tensor, base: Tensor, direction: Tensor) -> AffineBasis:
    """The basis of ``[honest; base; direction]``, kept while the same tensors (same
    versions) are queried: the line maximizer queries one line several times a round."""
    key = tuple((id(t), t._version, t.data_ptr(), tuple(t.shape)) for t in
                (honest, base, direction))
    hit = _BASES.get(key)
    if hit is None:
        rows = torch.cat([honest, base.reshape(1, -1).to(honest),
                          direction.reshape(1, -1).to(honest)])
        h = honest.shape[0]
        pos = np.r_[np.ones(h + 1, dtype=bool), False]
        _BASES.clear()  # one line at a time
        hit = _BASES[key] = AffineBasis.build(rows, pos, central=np.arange(h + 2) < h)
        hit.cache["_keep"] = (honest, base, direction)  # ids stay valid while cached
    return hit


def line_paths(pipeline: Any) -> list[Callable[[Family], Any]] | None:
    """Every stage's line path, in order, when line queries of ``pipeline`` take them
    (every stage has one, and ``PATHS``); else None."""
    paths = [line_of(s) for s in pipeline.stages]
    return paths if PATHS and all(p is not None for p in paths) else None


def has_paths(pipeline: Any) -> bool:
    """Whether line queries of ``pipeline`` take the stages' line paths: then a call
    costs more than its candidates."""
    return line_paths(pipeline) is not None


def query(pipeline: Any, honest: Tensor, base: Tensor, direction: Tensor,
          scales: Tensor | list[float], f: int, order: Tensor | None, seed: int | None,
          signs: Tensor | None = None, weights: bool = False):
    """``[k, d]``: the pipeline's aggregate of every candidate (see :func:`start`),
    without side effects, by the stages' line paths when all have one, else by
    ``pipeline.query_batch`` on the materialized candidates.

    ``weights=True``: ``(aggregates, row weights [k, n] or None)`` (pipeline row
    order), always from ``query_batch(..., weights=True)`` on the materialized
    candidates: a selection read from the family's Gram matrix can differ from the
    single call's at near-ties (rows NNM mixed to nearly equal), and a weight decides
    which side of a keep test a candidate falls."""
    fam = start(honest, base, direction, scales, f, order, signs)
    paths = line_paths(pipeline)
    if weights or paths is None:
        return pipeline.query_batch(fam.materialize(), seed, weights)
    with pipeline.frozen(seed):
        out: Any = fam
        for p in paths:
            out = p(out)
    return out.to(device=honest.device, dtype=honest.dtype)
