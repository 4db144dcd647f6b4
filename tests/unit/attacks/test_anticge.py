"""byzbench.attacks.anticge: values computed by hand, knowledge and errors."""

from __future__ import annotations

import math

import torch
from unit_helpers import f64

from byzbench.aggregators.cge import CGE
from byzbench.attacks.anticge import AntiCGE

from .helpers import ctx_h, grads


def test_anticge_by_hand_and_against_cge():
    honest = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [6.0, 8.0]], dtype=f64)
    # f_decl = 1: CGE keeps n - 1 = 4 of 5 rows; kept-norm bound = 4th honest norm, 10;
    # S = (1, 0) + (0, 2) + (3, 4) = (4, 6)
    b = AntiCGE()(honest, ctx_h(1, 4))
    want = -torch.tensor([4.0, 6.0], dtype=f64) / math.sqrt(52) * 10 * (1 - 1e-6)
    torch.testing.assert_close(b, want[None])
    b2 = AntiCGE(first_twice=True)(honest, ctx_h(1, 4))  # BM's code: (1, 0) counted twice
    torch.testing.assert_close(b2[0].norm(), torch.tensor(10 * (1 - 1e-6), dtype=f64))
    torch.testing.assert_close(b2[0] / b2[0].norm(), -torch.tensor([5.0, 6.0], dtype=f64)
                               / math.sqrt(61))
    assert torch.isnan(AntiCGE()(honest, ctx_h(2, 4, f_declared=1))).all()
    # against the real rule: every Byzantine row is kept
    h = grads(8, 30, 6)
    rule = CGE(11, 3)
    att = AntiCGE()(h, ctx_h(3, 8, rule=rule))
    rule(torch.cat([h, att]))
    assert (rule.last_weights[8:] > 0).all()
