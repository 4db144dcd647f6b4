"""Pre-aggregators: properties over every conf/preagg YAML, hand-computed values,
chaining through Pipeline, and composition of row weights with mixing matrices."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mean import Mean
from byzbench.build import instantiate_component
from byzbench.preaggregators.arc import ARC
from byzbench.preaggregators.bucketing import Bucketing
from byzbench.preaggregators.clipping import Clipping
from byzbench.preaggregators.nnm import NNM

CONF = Path(__file__).resolve().parents[2] / "byzbench" / "conf" / "preagg"
YAMLS = sorted(CONF.glob("*.yaml"))
NAMES = [p.stem for p in YAMLS]
N, F, D = 15, 3, 30
T = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731


def make(path, n: int = N, f: int = F, seed: int = 0):
    node = OmegaConf.load(path)[path.stem]  # multi-select group: top-level key = option
    g = torch.Generator().manual_seed(seed)
    return instantiate_component(node, f"preagg.{path.stem}", n=n, f=f, generator=g)


def honest(n: int = N, d: int = D, seed: int = 1) -> torch.Tensor:
    return 1.0 + torch.randn(n, d, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)


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


# --------------------------------------------------------------------- hand values


def test_nnm_hand_values():
    # 1-D rows 0, 1, 3, 10 with n = 4, f = 1: each row -> mean of its 3 nearest.
    # 0: {0, 1, 3} -> 4/3; 1: {1, 0, 3} -> 4/3; 3: {3, 1, 0} -> 4/3; 10: {10, 3, 1} -> 14/3
    p = NNM(4, 1)
    y = p(T([[0.0], [1.0], [3.0], [10.0]]))
    assert y.flatten().tolist() == pytest.approx([4 / 3, 4 / 3, 4 / 3, 14 / 3])
    assert p.last_mixing[3].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])


def test_nnm_passes_nan_rows_through_and_ignores_them():
    p = NNM(4, 1)
    y = p(T([[0.0], [1.0], [math.nan], [3.0]]))
    # finite rows mix over {0, 1, 3} only: 4/3 each; the nan row stays nan
    assert y[[0, 1, 3]].flatten().tolist() == pytest.approx([4 / 3] * 3)
    assert math.isnan(y[2, 0].item())


def test_bucketing_hand_values_and_seed():
    x = T([[1.0], [2.0], [3.0], [4.0], [5.0]])
    p = Bucketing(5, 0, s=2, generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    y = p(x)
    xs = x[perm].flatten().tolist()
    # buckets {perm0, perm1}, {perm2, perm3}, {perm4}: means of consecutive pairs
    assert y.flatten().tolist() == pytest.approx(
        [(xs[0] + xs[1]) / 2, (xs[2] + xs[3]) / 2, xs[4]])
    assert p.n_out == 3
    # the mean of the buckets' rows equals the mean only when buckets have equal size
    assert Bucketing(4, 0, s=2)(x[:4]).mean().item() == pytest.approx(2.5)


def test_clipping_hand_values():
    # norms 5 and 0.5 with C = 1: (3, 4) -> (0.6, 0.8); (0.3, 0.4) unchanged
    y = Clipping(2, 0, threshold=1.0)(T([[3.0, 4.0], [0.3, 0.4]]))
    assert y.tolist() == [pytest.approx([0.6, 0.8]), pytest.approx([0.3, 0.4])]


def test_arc_hand_values():
    # n = 5, f = 1: k = floor(2 * (1/5) * 4) = floor(1.6) = 1 row clipped to the 2nd norm.
    x = T([[10.0, 0.0], [0.0, 4.0], [3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    p = ARC(5, 1)
    y = p(x)
    assert p.last_threshold == pytest.approx(4.0)
    assert y[0].tolist() == pytest.approx([4.0, 0.0])  # 10 -> 4
    torch.testing.assert_close(y[1:], x[1:])
    # n = 10, f = 3: k = floor(2 * 0.3 * 7) = floor(4.2) = 4 rows clipped to the 5th norm
    x10 = torch.arange(1.0, 11.0, dtype=torch.float64).unsqueeze(1)
    y10 = ARC(10, 3)(x10)
    assert y10.flatten().tolist() == pytest.approx([1, 2, 3, 4, 5, 6, 6, 6, 6, 6])
    assert torch.equal(ARC(10, 0)(x10), x10)  # f = 0: unchanged


def test_preagg_construction_errors():
    with pytest.raises(ConfigError, match="nnm needs f < n"):
        NNM(3, 3)
    with pytest.raises(ConfigError, match="arc needs 2f < n"):
        ARC(4, 2)
    with pytest.raises(ConfigError, match="s >= 1"):
        Bucketing(4, 0, s=0)
    with pytest.raises(ConfigError, match="threshold > 0"):
        Clipping(4, 0, threshold=0.0)


def test_pipeline_query_restores_bucketing_generator():
    x = honest()
    pipe = Pipeline([Bucketing(N, 0, s=2, generator=torch.Generator().manual_seed(1))], Mean())
    q = pipe.query(x)
    torch.testing.assert_close(pipe(x), q)  # the real call draws the same permutation
