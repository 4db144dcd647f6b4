"""byzbench.aggregators.smea: SMEA (float64 brute force, limit); values by hand, the arithmetic
next to each expectation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from unit_helpers import rows

from byzbench import ConfigError
from byzbench.aggregators.smea import SMEA


def smea_brute(x: np.ndarray, f: int) -> tuple[float, tuple[int, ...]]:
    """Every (n - f)-subset, top eigenvalue of its d x d covariance (1/|S|), float64."""
    n = len(x)
    best = (math.inf, ())
    for s in itertools.combinations(range(n), n - f):
        lam = np.linalg.eigvalsh(np.cov(x[list(s)].T, bias=True))[-1]
        if lam < best[0]:
            best = (lam, s)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_smea_matches_float64_brute_force_on_close_rows(seed):
    # Rows share a large common part (1e3) and differ by ~1e-2: the regime where a raw
    # Gram matrix cancels; n = 9, f = 2 (36 subsets), d = 6 < n so spectra are not flat.
    n, f, d = 9, 2, 6
    x = rows(n, d, seed, spread=0.01) + rows(1, d, 100 + seed, spread=1e3)
    x[:f] += 0.02 * rows(f, d, 200 + seed)
    lam, s = smea_brute(x.numpy(), f)
    rule = SMEA(n, f)
    out = rule(x)
    sel = tuple(np.flatnonzero(rule.last_weights.numpy() > 0))
    assert sel == s
    # 1e-9 relative: float64 eigenvalues of a 7 x 7 vs a 6 x 6 matrix built differently.
    assert rule.last_score == pytest.approx(lam, rel=1e-9)
    torch.testing.assert_close(out, x[list(s)].mean(0), rtol=1e-12, atol=1e-9)


def test_smea_high_dimension_and_float32():
    n, f, d = 8, 3, 50
    x = rows(n, d, 3)
    x[:f] = x[:f] * 0.2 + 3.0  # tight but far group: SMEA must not pick it if spread
    lam, s = smea_brute(x.numpy(), f)
    rule = SMEA(n, f)
    rule(x)
    assert tuple(np.flatnonzero(rule.last_weights.numpy() > 0)) == s
    out32 = SMEA(n, f)(x.float())
    torch.testing.assert_close(out32.double(), x[list(s)].mean(0), rtol=1e-5, atol=1e-5)


def test_smea_refuses_beyond_limit_in_one_line():
    with pytest.raises(ConfigError, match=r"agg.f=10 .*binom\(n=30, f=10\).*max_subsets") as e:
        SMEA(30, 10)
    assert "\n" not in str(e.value)
    SMEA(30, 10, max_subsets=math.comb(30, 10))  # raising the limit is allowed
    with pytest.raises(ConfigError, match="2f < n"):
        SMEA(6, 3)
