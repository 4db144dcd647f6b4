"""byzbench.attacks.mimic: values computed by hand, knowledge and errors."""

from __future__ import annotations

import pytest
import torch
from unit_helpers import f64

from byzbench import ConfigError
from byzbench.attacks.mimic import Mimic

from .helpers import TRI, ctx


def test_mimic_fixed_and_errors():
    b = Mimic(worker=2)(TRI, ctx(2, n_h=3))
    assert torch.equal(b, TRI[[2, 2]])
    with pytest.raises(ConfigError, match="attack.worker"):
        Mimic(worker=3, n=5, f=2)
    with pytest.raises(ConfigError, match="attack.worker"):
        Mimic(worker=3)(TRI, ctx(1, n_h=3))


def test_mimic_max_var_heuristic_picks_extreme_worker_and_freezes():
    # spread +-5 along coordinate 0, +-0.1 along 1: max-variance direction = +-e0, so the
    # copied worker is row 0 (+5) or row 1 (-5) depending on the random start's sign.
    honest = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 0.1], [0.0, -0.1]], dtype=f64)
    a = Mimic(mode="max_var", warmup=3)
    targets = []
    for t in range(6):
        x = honest if t < 3 else honest.flip(0)  # after warm-up the index stays frozen
        b = a(x, ctx(2, t=t, n_h=4, seed=1))
        targets.append(a.target)
        assert torch.equal(b[0], x[a.target])
    assert targets[0] in (0, 1) and len(set(targets)) == 1
    assert abs(float(a._z[0])) > 0.999
    again = Mimic(mode="max_var", warmup=3)(honest, ctx(2, n_h=4, seed=1))
    assert again.equal(Mimic(mode="max_var")(honest, ctx(2, n_h=4, seed=1)))  # seeded
