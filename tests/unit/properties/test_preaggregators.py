"""Properties over every option of conf/preagg (auto-discovered): shapes, n_out and
mixing, no in-place writes, identical rows, f = 0, seeding, non-finite rows, chaining."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from preaggregators.helpers import D, F, N, honest

from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean
from byzbench.build import instantiate_component

CONF = Path(__file__).resolve().parents[3] / "byzbench" / "conf" / "preagg"


YAMLS = sorted(CONF.glob("*.yaml"))


NAMES = [p.stem for p in YAMLS]


def make(path, n: int = N, f: int = F, seed: int = 0):
    node = OmegaConf.load(path)[path.stem]  # multi-select group: top-level key = option
    g = torch.Generator().manual_seed(seed)
    return instantiate_component(node, f"preagg.{path.stem}", n=n, f=f, generator=g)


def test_every_preagg_found():
    assert {"nnm", "bucketing", "clipping", "arc"} <= set(NAMES)


@pytest.mark.parametrize("path", YAMLS, ids=NAMES)
def test_shape_n_out_mixing_and_no_inplace(path):
    p = make(path)
    x = honest()
    x0 = x.clone()
    y = p(x)
    assert y.shape == (p.n_out, D) and y.dtype == x.dtype
    assert torch.equal(x, x0)
    m = getattr(p, "last_mixing", None)
    if m is not None:
        assert m.shape == (p.n_out, N)
        torch.testing.assert_close(m @ x, y)  # the mixing matrix explains the output
        torch.testing.assert_close(m.sum(1), torch.ones(p.n_out, dtype=m.dtype))


@pytest.mark.parametrize("path", YAMLS, ids=NAMES)
def test_identical_rows_and_f_zero(path):
    row = honest(1, D, seed=4)[0] * 0.01  # small norm: clipping leaves it alone
    y = make(path)(row.expand(N, D).clone())
    torch.testing.assert_close(y, row.expand(y.shape[0], D))
    x = honest()
    assert make(path, f=0)(x).shape[1] == D


@pytest.mark.parametrize("path", YAMLS, ids=NAMES)
def test_deterministic_given_seed(path):
    x = honest()
    torch.testing.assert_close(make(path, seed=3)(x), make(path, seed=3)(x))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("path", YAMLS, ids=NAMES)
def test_non_finite_rows_then_krum_stays_finite(path, bad):
    x = honest()
    x[4] = bad
    pre = make(path)
    # f = 3 for the rule keeps n_out >= 2f + 3 for bucketing (8 >= 9 fails): use f = 2.
    rule = Krum(pre.n_out, 2)
    out = Pipeline([pre], rule)(x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("path", YAMLS, ids=NAMES)
def test_chain_and_row_weights(path):
    x = honest()
    pre = make(path)
    pipe = Pipeline([pre], Mean())
    out = pipe(x)
    w = pipe.row_weights(N)
    assert w is not None and w.shape == (N,)
    if getattr(pre, "last_mixing", None) is not None:
        torch.testing.assert_close(w @ x, out)
