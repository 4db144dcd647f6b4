"""Line queries (byzbench.aggregators.line) against the materialized batched path, for
every option of conf/agg and conf/preagg with a line path (discovered from the YAMLs):
same selections, values within float rounding, nan/inf rows handled alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import conf_options
from omegaconf import OmegaConf

from byzbench import ConfigError
from byzbench.aggregators import line
from byzbench.aggregators.base import Pipeline
from byzbench.build import instantiate_component

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf"
H, F, D = 12, 3, 40  # n = 15: every rule accepts it (bulyan: 4f + 3)
N = H + F
SCALES = torch.tensor([0.0, 0.03, 0.3, 1.0, 3.0, 30.0], dtype=torch.float64)


def _make(path: Path, group: str, n: int = N):
    g = torch.Generator().manual_seed(7)
    node = OmegaConf.load(path)
    if group == "preagg":
        node = node[path.stem]
    return instantiate_component(node, f"{group}={path.stem}", n=n, f=F, generator=g)


def _with_line(group: str) -> list[Path]:
    return [p for p in conf_options(group)
            if line.line_of(_make(p, group)) is not None]


RULES = _with_line("agg")
PREAGGS = _with_line("preagg")
LINE_RULES = {"mean", "median", "trmean", "meamed", "phocas", "krum", "multikrum", "bulyan",
              "mda", "hc_krum", "geomed", "cclip"}
LINE_PREAGGS = {"nnm", "bucketing", "clipping", "arc"}


def _data(kind: str, dtype: torch.dtype):
    """(honest [H, D], base [D], direction [D]) of a data set."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(H, D, generator=g, dtype=torch.float64)
    if kind == "close":  # norm 1e3, spread 1e-3
        u = torch.randn(D, generator=g, dtype=torch.float64)
        x = 1e3 * u / u.norm() + 1e-3 * x
    hon = x.to(dtype)
    base = hon.mean(0)
    e = torch.randn(D, generator=g, dtype=torch.float64).to(dtype)
    direction = e / e.norm() * (1e-3 if kind == "close" else 1.0)
    if kind == "nan_dir":
        direction[5] = float("nan")
    if kind == "inf_base":
        base[2] = float("inf")
    if kind == "huge":  # finite rows whose squared norm overflows float32 (bad rows there)
        direction = direction * 1e21
    return hon, base, direction


def _ulp(x: torch.Tensor) -> float:
    finite = x[torch.isfinite(x)]
    return float(torch.finfo(x.dtype).eps) * (float(finite.abs().max()) if finite.numel() else 1.0)


def _check(pipe: Pipeline, kind: str, dtype: torch.dtype, ulps: float = 8.0) -> None:
    hon, base, direction = _data(kind, dtype)
    order = torch.randperm(N, generator=torch.Generator().manual_seed(11))
    fam = line.start(hon, base, direction, SCALES, F, order)
    ref = pipe.query_batch(fam.materialize(), 5)
    got = pipe.query_line(hon, base, direction, SCALES, order, 5)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    atol = ulps * _ulp(fam.materialize())
    rule = pipe.rule
    if type(rule).__name__ == "GeoMed":
        # Weiszfeld stops when a step is below tol x the median distance; the two paths'
        # Gram matrices differ by rounding, so they may stop one iteration apart.
        spread = float((hon - hon.mean(0)).norm(dim=1).mean())
        atol += 10 * rule.tol * spread
    torch.testing.assert_close(got, ref, rtol=0, atol=atol, equal_nan=True)
    if hasattr(rule, "_weights") and type(rule).__name__ != "GeoMed" and not pipe.preaggs:
        xs = fam.materialize()
        for x, pw_line in zip(xs, fam.pairwise()):  # the same selection
            w_line, w_mat = rule._weights(pw_line), rule._weights(_pw(x))
            # The f Byzantine rows of a candidate are identical: a selection among them
            # is a tie, broken by rounding; the selected rows' values must agree.
            assert np.array_equal(w_line > 0, w_mat > 0) or _same_rows(x, w_line, w_mat)


def _same_rows(x: torch.Tensor, w1: np.ndarray, w2: np.ndarray) -> bool:
    """Whether the rows weighted by ``w1`` and ``w2`` are the same multiset of rows with
    the same weights (ties among identical rows)."""
    def key(w):
        rows = [(tuple(x[i].tolist()), float(w[i])) for i in np.flatnonzero(w)]
        return sorted(rows)
    return key(w1) == key(w2)


def _pw(x):
    from byzbench import kernels

    return kernels.pairwise(x)


def test_every_line_stage_found():
    assert {p.stem for p in RULES} == LINE_RULES
    assert {p.stem for p in PREAGGS} == LINE_PREAGGS


@pytest.mark.parametrize("kind", ["plain", "close", "nan_dir", "inf_base", "huge"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("path", RULES, ids=[p.stem for p in RULES])
def test_rule_line_equals_materialized(path, dtype, kind):
    _check(Pipeline([], _make(path, "agg")), kind, dtype)


@pytest.mark.parametrize("kind", ["plain", "close", "nan_dir"])
@pytest.mark.parametrize("pre", PREAGGS, ids=[p.stem for p in PREAGGS])
def test_preagg_line_equals_materialized(pre, kind):
    """A pre-aggregator's output family materializes to its batched output, and every
    rule's line path on that family equals its batched path on the materialized rows
    (the two links of a pipeline: checked apart, since a rule's tie-breaking between
    rows a pre-aggregator makes equal in exact arithmetic follows float rounding)."""
    if kind == "close" and pre.stem in ("clipping", "arc"):
        pytest.skip("norm selections at norm 1e3, spread 1e-3 are below float rounding of "
                    "the materialized norms (see test_norm_selection_close_rows)")
    p = _make(pre, "preagg")
    hon, base, direction = _data(kind, torch.float64)
    fam = line.start(hon, base, direction, SCALES, F, None)
    with Pipeline([p], lambda x: x.mean(0)).frozen(5):
        out = p.line(fam)
    with Pipeline([p], lambda x: x.mean(0)).frozen(5):
        ref = p.batch(fam.materialize())
    x = out.materialize()
    assert torch.equal(torch.isnan(x), torch.isnan(ref))
    torch.testing.assert_close(x, ref, rtol=0, atol=8 * _ulp(ref), equal_nan=True)
    for path in RULES:
        try:
            rule = _make(path, "agg", n=p.n_out)
        except ConfigError:
            continue  # the rule does not accept the rows the pre-aggregator outputs
        pl = Pipeline([], rule)
        with pl.frozen(5):
            got = rule.line(out)
        want = pl.query_batch(x, 5)
        assert torch.equal(torch.isnan(got), torch.isnan(want)), path.stem
        tol = 8 * _ulp(x) + (10 * rule.tol * 10 if path.stem == "geomed" else 0.0)
        torch.testing.assert_close(got, want, rtol=0, atol=tol, equal_nan=True,
                                   msg=lambda m, s=path.stem: f"{s}: {m}")


def test_coordinatewise_bit_identical():
    """median, meamed, phocas read the same order statistics as a sort: same bits."""
    for name in ("median", "meamed", "phocas"):
        pipe = Pipeline([], _make(CONF / "agg" / f"{name}.yaml", "agg"))
        for kind in ("plain", "close", "nan_dir", "inf_base"):
            _check(pipe, kind, torch.float32, ulps=0.0)


def test_order_stat_equals_sort():
    rng = np.random.default_rng(0)
    s = rng.integers(-3, 4, size=(7, 500)).astype(np.float32)
    s[0, :20] = np.nan
    s[1, 20:40] = np.inf
    s = np.sort(s, axis=0)
    b = rng.integers(-4, 5, size=(3, 500)).astype(np.float32)
    b[0, :50] = np.nan
    b[1, 50:60] = -np.inf
    for f in (0, 1, 4):
        merged = np.sort(np.concatenate([np.broadcast_to(s, (3, 7, 500)),
                                         np.repeat(b[:, None], f, axis=1)], axis=1), axis=1)
        for m in range(7 + f):
            np.testing.assert_array_equal(line.order_stat(s, b, f, m), merged[:, m])


def test_norm_selection_close_rows():
    """Clipping/ARC at norm 1e3, spread 1e-3 in float64: the same rows clipped."""
    for pre in PREAGGS:
        if pre.stem in ("clipping", "arc"):
            _check(Pipeline([_make(pre, "preagg")], _make(CONF / "agg" / "mean.yaml", "agg")),
                   "close", torch.float64)


def test_fallback_without_line_path():
    """A stage without a line path: the materialized candidates through query_batch."""
    class NoLine:
        def __call__(self, x):
            return x.sum(0)

    pipe = Pipeline([], NoLine())
    hon, base, direction = _data("plain", torch.float64)
    fam = line.start(hon, base, direction, SCALES, F, None)
    assert torch.equal(pipe.query_line(hon, base, direction, SCALES, None, 0, f=F),
                       pipe.query_batch(fam.materialize(), 0))


def test_signs_split_rows():
    """Rows on both sides of the base (seesaw groups = 2): the materialized path."""
    hon, base, direction = _data("plain", torch.float64)
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    for name in ("median", "krum"):
        pipe = Pipeline([], _make(CONF / "agg" / f"{name}.yaml", "agg"))
        fam = line.start(hon, base, direction, SCALES, F, None, signs)
        x = fam.materialize()
        assert torch.equal(x[2, H + 1], base - SCALES[2].item() * direction)
        torch.testing.assert_close(pipe.query_line(hon, base, direction, SCALES, None, 0,
                                                   f=F, signs=signs),
                                   pipe.query_batch(x, 0), rtol=0, atol=1e-12)


def test_batched_selections_equal_loops():
    """Bulyan's batched selection and GeoMed's batched Weiszfeld (the line paths) equal
    their per-problem versions (the materialized paths), ties and bad rows included."""
    from byzbench import kernels
    from byzbench.aggregators.bulyan import Bulyan
    from byzbench.aggregators.geomed import GeoMed

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, N, 5))
    x[:3, 3:7] = x[:3, 3:4]  # exact ties
    d2 = ((x[:, :, None] - x[:, None]) ** 2).sum(-1)
    d2[4, 2, :] = d2[4, :, 2] = np.inf
    b = Bulyan(N, F)
    assert np.array_equal(b.select_batch(d2), np.array([b.select(d) for d in d2]))
    for init in ("mean", "zero"):
        g = GeoMed(N, F, init=init)
        pws = [kernels.pairwise(torch.from_numpy(xi)) for xi in x]
        gram = np.stack([pw.gram for pw in pws])
        bad = np.stack([pw.bad for pw in pws])
        sq = (x ** 2).sum(-1)
        want = np.stack([g._weights(pw, lambda i=i, sq=sq: sq[i]) for i, pw in enumerate(pws)])
        np.testing.assert_allclose(g._weights_batch(gram, bad, sq), want, rtol=0, atol=1e-12)
