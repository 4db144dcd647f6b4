"""byzbench.attacks.signguard_evasion: values computed by hand, knowledge and errors."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.signguard_evasion import SignguardEvasion, match_sign_fractions

from .helpers import ctx_h, grads


def test_signguard_evasion_matches_sign_fractions():
    b = torch.tensor([3.0, -1.0, 2.0, -0.5, 1.0], dtype=f64)
    mixed = torch.tensor([[1.0, 1, 1, -1, -1], [1.0, 1, -1, -1, 1]], dtype=f64)  # 60 % positive
    assert torch.equal(match_sign_fractions(b, mixed), b)
    allpos = torch.ones(2, 5, dtype=f64)
    torch.testing.assert_close(match_sign_fractions(b, allpos),
                               torch.tensor([3.0, 1.0, 2.0, 0.5, 1.0], dtype=f64))
    few = torch.tensor([[1.0, -1, -1, -1, -1]] * 2, dtype=f64)  # 20 %: flip the 2 smallest +
    torch.testing.assert_close(match_sign_fractions(b, few),
                               torch.tensor([3.0, -1.0, -2.0, -0.5, -1.0], dtype=f64))
    honest = grads(7, 200, 8, offset=0.05)
    for base in ("alie", "min_max"):
        out = SignguardEvasion(base=base)(honest, ctx_h(3, 7))
        frac_h = ((honest > 0).sum(1) / (honest != 0).sum(1)).double().mean()
        frac_b = (out[0] > 0).sum() / (out[0] != 0).sum()
        assert abs(float(frac_b - frac_h)) <= 0.5 / 200 + 1e-12
    with pytest.raises(ConfigError, match="attack.base"):
        SignguardEvasion(base="ipm")
