"""byzbench.attacks.fang_partial: values computed by hand, knowledge and errors."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.aggregators.krum import Krum
from byzbench.attacks.fang_krum import FangKrum
from byzbench.attacks.fang_partial import FangPartial

from .helpers import ctx_h, grads


def test_fang_partial_trmean_ranges_and_knowledge():
    own = grads(3, 50, 1)
    a = FangPartial()
    b = a(grads(6, 50, 2), ctx_h(3, 6, byz=own))
    mu, sd = own.mean(0), own.std(0)
    dev = (b - mu) / sd
    down = mu >= 0
    assert ((dev[:, down] >= -4 - 1e-9) & (dev[:, down] <= -3 + 1e-9)).all()
    assert ((dev[:, ~down] >= 3 - 1e-9) & (dev[:, ~down] <= 4 + 1e-9)).all()
    assert not torch.equal(b[0], b[1])  # independent draws per worker
    b_other = FangPartial()(grads(6, 50, 3) * 10, ctx_h(3, 6, byz=own))
    assert torch.equal(b, b_other)


def test_fang_partial_krum_is_selected_in_its_view_and_bounded():
    own = grads(3, 20, 4)
    a = FangPartial(target="krum", n=12, f=3)
    b = a(grads(9, 20, 5), ctx_h(3, 9, byz=own))
    lam0 = FangKrum.lambda_upper_bound(own, 12, 3)
    assert 0 < a.last_lambda <= lam0
    s = torch.where(own.mean(0) >= 0, 1.0, -1.0).to(f64)
    torch.testing.assert_close(b, (-a.last_lambda * s).expand(3, 20))
    view = torch.cat([b, own])
    d2 = torch.cdist(view, view) ** 2
    k = min(12 - 3 - 2, 2 * 3 - 1)
    score = d2.sort(dim=1).values[:, 1:k + 1].sum(1)
    assert int(score.argmin()) < 3  # a crafted row wins the attacker's simulated Krum
    with pytest.raises(ConfigError, match="attack.f"):
        FangPartial(target="krum", n=7, f=3)


def test_fang_partial_krum_runs_against_real_krum():
    # Partial knowledge: selection is checked only in the attacker's view; the real
    # Krum may or may not pick b. The attack must still run against it.
    h, own = grads(9, 20, 10), grads(3, 20, 11)
    b = FangPartial(target="krum", n=12, f=3)(h, ctx_h(3, 9, rule=Krum(12, 3), byz=own))
    assert b.shape == (3, 20) and torch.isfinite(b).all()
