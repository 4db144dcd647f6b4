"""Properties every aggregation rule in conf/agg must have (discovered from the YAMLs):
shape and dtype, permutation invariance, identical rows, f = 0, bounded output under
huge outliers, survival of inf/nan rows, no in-place modification of the input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import conf_options
from omegaconf import OmegaConf

from byzbench.build import instantiate_component

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf"
RULES = conf_options("agg")
NAMES = [p.stem for p in RULES]
N, F, D = 15, 3, 40  # every rule accepts n = 15, f = 3 (bulyan: 4f + 3 = 15)
NOT_ROBUST = {"mean", "rlr"}  # rlr: the mean's magnitude, per-coordinate signs
# Rules that add seeded Gaussian noise to their output (default options): identical rows
# come back up to that noise.
NOISY = {"weak_dp", "crfl"}
NOT_PERMUTATION_INVARIANT = {"monna"}  # defined relative to one pivot row
# Rules that reduce to the plain mean when f = 0 (with their default parameters).
MEAN_AT_F0 = {"mean", "trmean", "multikrum", "meamed", "phocas", "bulyan", "mda", "dnc", "caf",
              "monna"}


def make(path, n: int = N, f: int = F, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return instantiate_component(OmegaConf.load(path), f"agg={path.stem}", n=n, f=f, generator=g)


def honest(n: int = N, d: int = D, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.0 + torch.randn(n, d, generator=g, dtype=torch.float64)


def test_every_rule_found():
    assert "mean" in NAMES and "krum" in NAMES and len(NAMES) >= 4


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_shape_dtype_and_no_inplace(path):
    for dtype in (torch.float32, torch.float64):
        x = honest().to(dtype)
        x0 = x.clone()
        out = make(path)(x)
        assert out.shape == (D,) and out.dtype == dtype
        assert torch.equal(x, x0), "the rule modified its input in place"
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_permutation_invariance(path):
    if path.stem in NOT_PERMUTATION_INVARIANT:
        pytest.skip("rule is defined relative to one row")
    x = honest()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(5))
    a = make(path)(x)
    b = make(path)(x[perm])
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_identical_rows_return_that_row(path):
    # (cclip, tau auto: every row is at the same distance from the first center 0, so
    # tau equals it and nothing is clipped.)
    row = honest(1, D, seed=3)[0]
    x = row.expand(N, D).clone()
    noisy = path.stem in NOISY  # noise std 0.01 x norm per coordinate
    torch.testing.assert_close(make(path)(x), row, rtol=0 if noisy else 1e-6,
                               atol=0.1 * float(row.norm()) if noisy else 1e-6)


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_f_zero(path):
    x = honest()
    out = make(path, f=0)(x)
    assert out.shape == (D,) and torch.isfinite(out).all()
    if path.stem in MEAN_AT_F0:
        torch.testing.assert_close(out, x.mean(0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_bounded_under_huge_outliers(path):
    if path.stem in NOT_ROBUST:
        pytest.skip("not a robust rule")
    x = honest()
    x[:F] = 1e6  # f rows far away in the same direction
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    out = make(path)(x[perm])
    # Every honest row has norm < 3 sqrt(D); a robust output stays in that ballpark.
    assert out.norm() < 3 * x[F:].norm(dim=1).max()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_non_finite_rows(path, bad):
    x = honest()
    x[2] = bad
    x[7, :5] = bad  # partly non-finite row
    out = make(path)(x)
    assert out.shape == (D,)
    if path.stem not in NOT_ROBUST:
        assert torch.isfinite(out).all(), f"{path.stem} let {bad} through"
        assert out.norm() < 3 * x[torch.isfinite(x).all(1)].norm(dim=1).max()


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_last_weights_shape(path):
    rule = make(path)
    rule(honest())
    w = getattr(rule, "last_weights", None)
    if w is not None:
        assert w.shape == (N,) and (w >= 0).all()
        assert float(w.sum()) <= 1.0 + 1e-6


@pytest.mark.parametrize("path", RULES, ids=NAMES)
def test_all_rows_non_finite_does_not_crash(path):
    # Beyond any breakdown point: the rule must still return a [d] vector (the loop
    # then marks the run diverged if it is non-finite).
    x = torch.full((N, D), float("nan"), dtype=torch.float64)
    assert make(path)(x).shape == (D,)
