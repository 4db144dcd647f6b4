"""The distance probe (``kernels.distances._probe`` / ``_probe_batch``): sort-based medians
in one batch
give exactly the decision and reference row of the straightforward per-problem version
(np.nanmedian on the off-diagonal distances), finite or not, near and far rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzbench import kernels


def reference_probe(x: torch.Tensor) -> tuple[bool, int]:
    """The probe as first written: per problem, masked-array medians."""
    n, d = x.shape
    k = min(d, kernels.distances._PROBE_COLS)
    s = x.double().numpy()[:, np.arange(k) * d // k]
    fin = np.flatnonzero(np.isfinite(s).all(axis=1))
    if len(fin) < 2:
        return False, -1
    s = s[fin]
    c = s - np.median(s, axis=0)
    g = c @ c.T
    sq = np.diagonal(g)
    with np.errstate(invalid="ignore", over="ignore"):
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * g, 0.0)
    d2 = np.nan_to_num(d2, nan=np.inf, posinf=np.inf)
    np.fill_diagonal(d2, np.nan)
    ref = int(fin[np.argmin(np.nanmedian(d2, axis=1))])
    scale = float(np.median(np.nanmin(d2, axis=1)))
    norm2 = float(np.median((s * s).sum(axis=1)))
    u = float(torch.finfo(x.dtype).eps) / 2
    return (not (norm2 * u <= 2.0**-24 * scale)), ref


def problems(seed: int) -> torch.Tensor:
    """k = 6 problems of n = 9 rows, d = 2000 > the probe's columns: spread 1 around
    offsets 0 and 1e3 with a Byzantine block near the honest mean (centering needed),
    and plain N(0, I) rows (far apart relative to their norm: the raw Gram is exact)."""
    g = torch.Generator().manual_seed(seed)
    xs = []
    for off in (0.0, 1e3, 0.0, 1e3, 5.0, None):
        x = (off or 0.0) + torch.randn(9, 2000, generator=g)
        if off is not None:
            x[6:] = x[:6].mean(0) + 0.1 * torch.randn(2000, generator=g)
        xs.append(x)
    return torch.stack(xs)


@pytest.mark.parametrize("seed", range(4))
def test_batched_probe_equals_reference(seed):
    xs = problems(seed)
    xs[1, 2, 5] = float("nan")  # one problem drops a row, one loses all but one
    xs[3, 1:, 7] = float("inf")
    got = kernels.distances._probe_batch(xs)
    assert got == [reference_probe(x) for x in xs]
    assert got == [kernels.distances._probe(x) for x in xs]
    assert got[3] == (False, -1) and got[1][1] != 2
    assert got[0][0] and not got[5][0]  # both decisions are exercised


def test_probe_degenerate_shapes():
    assert kernels.distances._probe(torch.randn(1, 5)) == (False, -1)
    assert kernels.distances._probe(torch.randn(3, 0)) == (False, -1)
    assert kernels.distances._probe_batch(torch.randn(2, 1, 5)) == [(False, -1)] * 2
