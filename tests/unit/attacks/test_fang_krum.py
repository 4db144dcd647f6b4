"""byzbench.attacks.fang_krum: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import pytest
import torch
from unit_helpers import f64

from byzbench.attacks.fang_krum import FangKrum

from .helpers import TinyKrum, ctx, krum_mod, rule_ctx


def test_fang_krum_upper_bound_by_hand():
    # honest square (1,1), (3,1), (1,3), (3,3), f = 1, n = 5, d = 2. term2 = max |g_i| /
    # sqrt2 = 3 sqrt2 / sqrt2 = 3. paper: each corner's n - f - 2 = 2 nearest honest are
    # at distance 2 -> min sum 4, term1 = 4 / ((5 - 2 - 1) sqrt2) = sqrt2 -> 3 + sqrt2.
    # all: sums 2 + 2 + 2 sqrt2 -> term1 = (4 + 2 sqrt2) / (2 sqrt2) = sqrt2 + 1 -> 4 + sqrt2.
    sq = torch.tensor([[1.0, 1.0], [3.0, 1.0], [1.0, 3.0], [3.0, 3.0]], dtype=f64)
    assert FangKrum.lambda_upper_bound(sq, 5, 1) == pytest.approx(3 + math.sqrt(2), rel=1e-12)
    assert FangKrum.lambda_upper_bound(sq, 5, 1, "all") == pytest.approx(4 + math.sqrt(2),
                                                                         rel=1e-12)
    # Krum never selects b = -lambda (1, 1) here: b's score 3(1+l)^2 + (l+3)^2 >= 12 > 8
    # (an honest corner's score), so lambda is halved down to the threshold.
    a = FangKrum(threshold=1e-3, unit="absolute")
    b = a(sq, ctx(1, n_h=4, rule=TinyKrum(1)))
    assert 1e-3 <= a.last_lambda < 2e-3
    torch.testing.assert_close(b[0], -a.last_lambda * torch.ones(2, dtype=f64))


def test_fang_krum_returns_largest_selected_halving():
    honest = torch.tensor([[1.0, 0.1], [-1.0, 0.1], [0.1, 1.0], [0.1, -1.0], [0.9, 0.9]], dtype=f64)
    f, krum = 2, TinyKrum(2)
    a = FangKrum()
    b = a(honest, ctx(f, n_h=5, rule=krum))
    lam0 = FangKrum.lambda_upper_bound(honest, 7, 2)
    k = round(math.log2(lam0 / a.last_lambda))
    assert a.last_lambda == pytest.approx(lam0 / 2**k)

    def selected(lam):
        krum(torch.cat([honest, (-lam * torch.ones(2, dtype=f64)).expand(f, 2)]))
        return bool(krum.last_weights[5:].sum() > 0)

    assert selected(a.last_lambda) and (k == 0 or not selected(2 * a.last_lambda))
    assert torch.equal(b[0], b[1])


def test_fang_krum_real_krum_is_selected():
    honest = torch.tensor([[1.0, 0.1], [-1.0, 0.1], [0.1, 1.0], [0.1, -1.0], [0.9, 0.9]],
                          dtype=f64)
    krum = krum_mod.Krum(n=7, f=2)
    a = FangKrum()
    b = a(honest, rule_ctx(krum, 2, 5))
    krum(torch.cat([honest, b]))
    assert krum.last_weights[5:].sum() > 0
