"""Invariances and exactness of every rule in conf/agg and every pre-aggregator in
conf/preagg (auto-discovered from the YAMLs, default options):

* translation equivariance ``rule(x + v) = rule(x) + v`` for ``|v|`` up to 1e4 times
  the rows' spread, except the rules listed in ``NOT_TRANSLATION`` (with the reason);
* positive homogeneity ``rule(c x) = c rule(x)`` for c in {1e-8, 1e-3, 1e3}, except
  thresholds that are absolute by the user's choice (``NOT_HOMOGENEOUS``);
* float32 selections equal float64 selections on close rows (norm 1e3, spread 1e-3 to
  1e-1), and the distance-based selections equal an independent float64 brute force
  (``torch.cdist`` with direct differences) - also NNM-then-Krum (unit-norm rows, 1 %
  noise, d = 1e4);

each also with nan/inf rows among the Byzantine ones. Tolerances: translation and
homogeneity run in float64, where rounding of ``x + v`` is ``~1e-16 |v|`` = 1e-12
spread, so 1e-7 relative to the spread leaves a wide margin while any expand-and-subtract
error (``~1e-16 |v|^2 / spread^2`` = 1e-8 relative, squared) or absolute threshold
(order-1 changes) still fails.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import conf_options
from omegaconf import OmegaConf

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.krum import Krum
from byzbench.build import instantiate_component

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf"
AGGS = conf_options("agg")
PREAGGS = conf_options("preagg")
ALL = [("agg", p) for p in AGGS] + [("preagg", p) for p in PREAGGS]
IDS = [f"{g}={p.stem}" for g, p in ALL]
N, F, D = 15, 3, 40

NOT_TRANSLATION = {
    "agg=cclip": "the center starts at the origin (then the previous aggregate): clipping "
                 "radii are measured from an absolute point",
    "agg=monna": "the default pivot 'previous' starts at the origin (pivot=<row> is "
                 "tested below)",
    "agg=signguard": "norm filter (ratios of ||x_i||) and sign statistics are relative to "
                     "the origin",
    "preagg=clipping": "clips norms measured from the origin",
    "preagg=arc": "clips norms measured from the origin",
    "agg=cge": "keeps the rows of smallest norm ||x_i||, measured from the origin",
    "agg=clipped_clustering": "norm clipping and cosine clustering are relative to the origin",
    "agg=flame": "cosine clustering and median-norm clipping are relative to the origin",
    "agg=fltrust": "cosine with the server's gradient and rescaling to its norm",
    "agg=foolsgold": "cosine similarities of the accumulated updates",
    "agg=norm_bound": "clips norms measured from the origin",
    "agg=weak_dp": "clips norms measured from the origin",
    "agg=crfl": "clips the mean's norm measured from the origin",
    "agg=rlr": "coordinate signs are relative to the origin",
}
NOT_HOMOGENEOUS = {
    "preagg=clipping": "threshold C is absolute by the user's choice",
}
# Non-default options checked too (name, group, overrides, translation expected).
VARIANTS = [
    ("monna_pivot_row", "agg", "monna", {"pivot": 0}, True),
    ("krum_byzfl", "agg", "krum", {"k_offset": 1}, True),
    ("geomed_rfa_zero", "agg", "geomed", {"init": "zero", "max_iter": 8, "tol": 0.0}, False),
    ("dnc_union", "agg", "dnc", {"on_empty": "union"}, True),
    ("signguard_authors", "agg", "signguard", {"sampling": "block", "normalize": True}, False),
    ("multikrum_byzfl", "agg", "multikrum", {"k_offset": 1}, True),
]


def build(group: str, path: Path, n: int = N, f: int = F, **over):
    node = OmegaConf.load(path)
    if group == "preagg":
        node = node[path.stem]
    node = OmegaConf.merge(node, over)
    g = torch.Generator().manual_seed(0)
    return instantiate_component(node, f"{group}={path.stem}", n=n, f=f, generator=g)


def base_rows(seed: int = 1, n: int = N, d: int = D) -> torch.Tensor:
    """n - f honest rows (spread ~1 around an offset) and f Byzantine rows: one nan row,
    one partly inf row, one far row."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + torch.randn(n, d, generator=g, dtype=torch.float64)
    x[n - 1] += 6.0
    return x


def with_bad(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0] = math.nan
    x[1, :5] = math.inf
    return x


def cases():
    for (group, path), ident in zip(ALL, IDS):
        yield pytest.param(group, path, {}, ident not in NOT_TRANSLATION, id=ident)
    for name, group, stem, over, trans in VARIANTS:
        yield pytest.param(group, CONF / group / f"{stem}.yaml", over, trans, id=name)


def compare(a: torch.Tensor, b: torch.Tensor, scale: float, rtol: float = 1e-7) -> None:
    fin = torch.isfinite(a) & torch.isfinite(b)
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    err = float((a[fin] - b[fin]).abs().max()) if fin.any() else 0.0
    assert err <= rtol * scale, err


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bad", [False, True], ids=["finite", "nan_inf"])
@pytest.mark.parametrize(("group", "path", "over", "equivariant"), list(cases()))
def test_translation_equivariance(group, path, over, equivariant, bad, dtype):
    # float64: |v| = 1e2 and 1e4 times the spread. float32: rows on a 2^-10 grid and
    # shifts of up to 15000 per coordinate on the same grid, so x + v is exact in
    # float32 (24-bit mantissa) and any difference comes from the rule's arithmetic
    # (a float32 Gram matrix loses every digit here: |v|^2 / spread^2 ~ 1e8).
    if not equivariant:
        pytest.skip("not translation-equivariant by definition (see NOT_TRANSLATION)")
    x = base_rows()
    g = torch.Generator().manual_seed(7)
    direction = torch.randn(D, generator=g, dtype=torch.float64)
    spread = math.sqrt(D)  # ~ ||x_i - x_j|| / sqrt(2)
    if dtype == torch.float32:
        x = torch.round(x * 1024) / 1024
        shifts = [torch.round(direction / direction.abs().max() * 15000 * 1024) / 1024]
        rtol = 1e-3  # float32 rounding of sums of values ~1.5e4: ~1e-3 per coordinate
    else:
        shifts = [direction / direction.norm() * mag * spread for mag in (1e2, 1e4)]
        rtol = 1e-7
    if bad:
        x = with_bad(x)
    x = x.to(dtype)
    for v in shifts:
        v = v.to(dtype)
        a = build(group, path, **over)(x + v)
        b = build(group, path, **over)(x) + v
        if group == "agg" and path.stem == "mean" and bad:
            assert not torch.isfinite(a).all()
            continue
        compare(a.double(), b.double(), spread, rtol)


@pytest.mark.parametrize("bad", [False, True], ids=["finite", "nan_inf"])
@pytest.mark.parametrize(("group", "path", "over", "equivariant"), list(cases()))
def test_positive_homogeneity(group, path, over, equivariant, bad):
    ident = f"{group}={path.stem}"
    if ident in NOT_HOMOGENEOUS and not over:
        pytest.skip(NOT_HOMOGENEOUS[ident])
    x = base_rows()
    if bad:
        x = with_bad(x)
    ref = build(group, path, **over)(x)
    for c in (1e-8, 1e-3, 1e3):
        out = build(group, path, **over)(c * x)
        compare(out, c * ref, c * math.sqrt(D))


# --------------------------------------------------------------- close rows: exactness


def close_rows(s: float, seed: int, n: int = N, d: int = 200, norm: float = 1e3,
               bad: bool = False) -> torch.Tensor:
    """float32 rows ``m + s z_i`` with ``||m|| = norm``, ``z_i ~ N(0, I/d)``; with
    ``bad``, row 0 is nan and row 1 partly inf (Byzantine)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, generator=g, dtype=torch.float64)
    z = torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    x = (m / m.norm() * norm + s * z).float()
    if bad:
        x[0] = math.nan
        x[1, :3] = math.inf
    return x


def exact_d2(x: torch.Tensor) -> torch.Tensor:
    """float64 brute-force squared distances; rows with a non-finite entry are +inf away
    from everything (the rules' convention)."""
    x64 = x.double()
    fin = torch.isfinite(x64).all(1)
    d2 = torch.full((len(x), len(x)), math.inf, dtype=torch.float64)
    xf = x64[fin]
    d2[fin.nonzero().flatten()[:, None], fin.nonzero().flatten()] = torch.cdist(
        xf, xf, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    return d2


def krum_choice(d2: torch.Tensor, k: int, m: int = 1) -> set[int]:
    d = d2.clone()
    d.fill_diagonal_(math.inf)
    scores = d.sort(dim=1).values[:, :k].sum(1)
    return set(torch.sort(scores, stable=True).indices[:m].tolist())


SPREADS = [1e-3, 1e-2, 1e-1]


@pytest.mark.parametrize("bad", [False, True], ids=["finite", "nan_inf"])
@pytest.mark.parametrize("s", SPREADS)
def test_close_rows_match_float64_brute_force(s, bad):
    from byzbench.aggregators.bulyan import Bulyan
    from byzbench.aggregators.mda import MDA
    from byzbench.aggregators.monna import MoNNA
    from byzbench.aggregators.multikrum import MultiKrum
    from byzbench.preaggregators.nnm import NNM

    for seed in range(2):
        x = close_rows(s, seed, bad=bad)
        ex = exact_d2(x)
        k = N - F - 2
        krum = Krum(N, F)
        krum(x)
        assert set(krum.last_weights.nonzero().flatten().tolist()) == krum_choice(ex, k)
        mk = MultiKrum(N, F)
        mk(x)
        assert set(mk.last_weights.nonzero().flatten().tolist()) == krum_choice(ex, k, N - F)
        nnm = NNM(N, F)
        nnm(x)
        fin = torch.isfinite(x).all(1)
        nbr = ex.argsort(dim=1, stable=True)[:, : N - F]
        want = torch.zeros(N, N, dtype=torch.bool).scatter_(1, nbr, True)
        assert torch.equal((nnm.last_mixing > 0)[fin], want[fin])
        mo = MoNNA(N, F, pivot=5)
        mo(x)
        want_mo = set(ex[5].argsort(stable=True)[: N - F].tolist())
        assert set(mo.last_weights.nonzero().flatten().tolist()) == want_mo
        mda = MDA(N, F)
        mda(x)
        sel = mda.last_weights.nonzero().flatten()
        diam = ex[sel][:, sel].max()
        assert diam <= mda_brute(ex, F) * (1 + 1e-9)
        bul = Bulyan(N, F)
        bul(x)
        assert set(bul.last_weights.nonzero().flatten().tolist()) == bulyan_brute(ex, F)


def mda_brute(ex: torch.Tensor, f: int) -> float:
    from itertools import combinations

    n = len(ex)
    best = math.inf
    for drop in combinations(range(n), f):
        keep = [i for i in range(n) if i not in drop]
        best = min(best, float(ex[keep][:, keep].max()))
    return best


def bulyan_brute(ex: torch.Tensor, f: int) -> set[int]:
    n = len(ex)
    remaining, sel = list(range(n)), []
    for _ in range(n - 2 * f):
        sub = ex[remaining][:, remaining]
        d = sub.clone()
        d.fill_diagonal_(math.inf)
        k = len(remaining) - f - 2
        scores = d.sort(dim=1).values[:, :k].sum(1) if k > 0 else torch.zeros(len(remaining))
        spread = torch.where(torch.isinf(sub), torch.full_like(sub, 1e300), sub).sum(1)
        order = sorted(range(len(remaining)),
                       key=lambda i: (float(scores[i]), float(spread[i]), remaining[i]))
        sel.append(remaining.pop(order[0]))
    return set(sel)


@pytest.mark.parametrize("bad", [False, True], ids=["finite", "nan_inf"])
def test_nnm_then_krum_matches_brute_force(bad):
    # Unit-norm mean + 1 % noise, d = 1e4: the case (float32 Gram picked
    # another row than exact distances in 6 of 10 seeds).
    from byzbench.preaggregators.nnm import NNM

    n, f = 20, 4
    for seed in range(2):
        x = close_rows(0.01, seed, n=n, d=10_000, norm=1.0, bad=bad)
        pipe = Pipeline([NNM(n, f)], Krum(n, f))
        pipe(x)
        got = set(pipe.rule.last_weights.nonzero().flatten().tolist())
        ex = exact_d2(x)
        nbr = ex.argsort(dim=1, stable=True)[:, : n - f]
        fin = torch.isfinite(x).all(1)
        y = x.double()[nbr].mean(1).float()
        y[~fin] = x[~fin]  # NNM passes non-finite rows through
        assert got == krum_choice(exact_d2(y), n - f - 2)


@pytest.mark.parametrize("bad", [False, True], ids=["finite", "nan_inf"])
@pytest.mark.parametrize("s", SPREADS)
@pytest.mark.parametrize("path", AGGS, ids=[p.stem for p in AGGS])
def test_float32_selection_equals_float64(path, s, bad):
    # Every rule exposing last_weights: the rows it selects (support) from float32 rows
    # are the ones it selects from the same values in float64; weights agree to 1e-3.
    x = close_rows(s, 11, bad=bad)
    r32, r64 = build("agg", path), build("agg", path)
    # Stateful centers (cclip's center, MoNNA's previous aggregate) start at the origin,
    # 1e3 away: distances that differ by 1e-9 relative, below float32's resolution.
    # In training the center is the previous aggregate, close to the rows: use that.
    fin = torch.isfinite(x).all(1)
    prev = (x[fin].double().mean(0) + s * 0.1).float()  # one center, exactly in both dtypes
    for r, dt in ((r32, torch.float32), (r64, torch.float64)):
        for attr in ("center", "previous"):
            if hasattr(r, attr):
                setattr(r, attr, prev.to(dt))
    out32, out64 = r32(x), r64(x.double())
    w32, w64 = getattr(r32, "last_weights", None), getattr(r64, "last_weights", None)
    if w32 is None:
        if path.stem != "mean" or not bad:
            # coordinate-wise rules: the output itself, to float32 rounding of 1e3
            compare(out32.double(), out64, 1e3, rtol=1e-6)
        return
    assert torch.equal(w32 > 0, w64 > 0)
    torch.testing.assert_close(w32.double(), w64, rtol=1e-3, atol=1e-6)
