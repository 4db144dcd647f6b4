"""Hand values for the scale-free defaults and the reference variants (issue 10):
the distance primitive's centering decision, cclip's tau=auto and its clipped-fraction
stat, geomed's relative nu / init / exact iteration count, CAF at tiny scales, ARC on
zero rows, MoNNA's pivots, Krum's neighbour count, DnC's empty intersection, SignGuard's
authors'-code features; and the loop logging stage stats and naming an honest row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byzbench import ConfigError, kernels
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.caf import CAF
from byzbench.aggregators.cclip import CClip
from byzbench.aggregators.dnc import DnC
from byzbench.aggregators.geomed import GeoMed
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.monna import MoNNA
from byzbench.aggregators.signguard import SignGuard
from byzbench.preaggregators.arc import ARC
from byzbench.preaggregators.bucketing import Bucketing
from byzbench.stages import SideInputs

T = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731


# ------------------------------------------------------------------ distance primitive


def test_pairwise_centers_only_when_the_raw_gram_would_lose_digits():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10, 500, generator=g)
    assert kernels.pairwise(z).ref == -1  # spread ~ norm: raw Gram, one BLAS call
    far = z * 1e-3 + 100.0  # norm 2236, spread 0.03: float32 raw Gram is rounding noise
    pw = kernels.pairwise(far)
    assert pw.ref >= 0
    exact = torch.cdist(far.double(), far.double(), compute_mode="donot_use_mm_for_euclid_dist")
    np.testing.assert_allclose(pw.d2, exact.numpy() ** 2, rtol=1e-5)
    # |x|^2 / D ~ 50: float32 centers, float64 (exact enough up to ~5e8) does not
    mid = z * 0.1 + 1.0
    assert kernels.pairwise(mid).ref >= 0 and kernels.pairwise(mid.double()).ref == -1
    assert kernels.pairwise(far.double()).ref >= 0  # |x|^2 / D ~ 5e9


def test_pairwise_recenters_when_the_probe_medoid_is_far_off_the_probe():
    # Row 0 equals row 1 on the probe's columns but is 1e4 away elsewhere: the probe
    # may take it as the reference; the check on the full distances must move away.
    g = torch.Generator().manual_seed(1)
    n, d = 9, 4096
    x = 50.0 + 1e-3 * torch.randn(n, d, generator=g, dtype=torch.float32)
    cols = torch.arange(kernels.distances._PROBE_COLS) * d // kernels.distances._PROBE_COLS
    off = torch.ones(d, dtype=torch.bool)
    off[cols] = False
    x[0] = x[4]
    x[0, off] += 1e4 / math.sqrt(int(off.sum()))
    pw = kernels.pairwise(x)
    assert pw.ref != 0
    exact = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    np.testing.assert_allclose(pw.d2[1:, 1:], exact[1:, 1:].numpy(), rtol=1e-4)


def test_pairwise_reference_row_non_finite_off_the_probe():
    # Row 0 is the probe's medoid (the mean of the rows on the probe's columns) but nan
    # elsewhere: centering on it would make every row nan; pairwise re-chooses.
    g = torch.Generator().manual_seed(2)
    n, d = 9, 4096
    x = 50.0 + 1e-3 * torch.randn(n, d, generator=g, dtype=torch.float32)
    x[0] = x[1:].mean(0)
    cols = torch.arange(kernels.distances._PROBE_COLS) * d // kernels.distances._PROBE_COLS
    off = torch.ones(d, dtype=torch.bool)
    off[cols] = False
    x[0, off] = math.nan
    pw = kernels.pairwise(x)
    assert pw.bad.tolist() == [True] + [False] * (n - 1) and pw.ref > 0
    exact = torch.cdist(x[1:].double(), x[1:].double(),
                        compute_mode="donot_use_mm_for_euclid_dist") ** 2
    np.testing.assert_allclose(pw.d2[1:, 1:], exact.numpy(), rtol=1e-4)


def test_sqdist_to_hand_values_and_bad_rows():
    x = T([[3.0, 4.0], [1.0, 1.0], [math.nan, 0.0]])
    d2, bad = kernels.sqdist_to(x, T([0.0, 1.0]))
    # (3, 3) -> 18; (1, 0) -> 1; nan row -> inf
    assert d2[:2].tolist() == pytest.approx([18.0, 1.0]) and math.isinf(d2[2])
    assert bad.tolist() == [False, False, True]
    sq, _ = kernels.sqdist_to(x)
    assert sq[:2].tolist() == pytest.approx([25.0, 2.0])


# ----------------------------------------------------------------------------- cclip


def test_cclip_tau_auto_hand_values_and_stats():
    # center 0; norms 5, 1, 2 -> tau = median = 2; (3, 4) scaled by 2/5 -> (1.2, 1.6),
    # (1, 0) and (0, 2) kept: v = ((1.2, 1.6) + (1, 0) + (0, 2)) / 3 = (2.2/3, 3.6/3)
    x = T([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    rule = CClip(3, 0)
    assert rule(x).tolist() == pytest.approx([2.2 / 3, 3.6 / 3])
    assert rule.last_stats == pytest.approx({"cclip_clipped": 1 / 3, "cclip_tau": 2.0})
    # absolute tau larger than every distance: nothing clipped, the mean
    big = CClip(3, 0, tau=100.0)
    assert big(x).tolist() == pytest.approx(x.mean(0).tolist())
    assert big.last_stats["cclip_clipped"] == 0.0
    assert Pipeline([], big).stats() == big.last_stats


def test_cclip_auto_is_scale_free_and_absolute_tau_is_not():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(9, 30, generator=g, dtype=torch.float64)
    for c in (1e-8, 1e3):
        torch.testing.assert_close(CClip(9, 0)(c * x), c * CClip(9, 0)(x))
    assert not torch.allclose(CClip(9, 0, tau=1.0)(1e-8 * x) / 1e-8, CClip(9, 0, tau=1.0)(x))


@pytest.mark.parametrize("tau", ["huge", 0, -1.0])
def test_cclip_rejects_bad_tau(tau):
    with pytest.raises(ConfigError, match="agg.tau"):
        CClip(3, 0, tau=tau)


# ---------------------------------------------------------------------------- geomed


def test_geomed_zero_init_fixed_iterations_matches_rfa_loop():
    # epfml's RFA: z = 0, T times: beta_k = 1/n / max(nu, ||z - x_k||), z = sum beta x / sum beta
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 12, generator=g, dtype=torch.float64) + 2.0
    z = torch.zeros(12, dtype=torch.float64)
    for _ in range(8):
        beta = (1 / 7) / torch.clamp((x - z).norm(dim=1), min=0.1)
        z = (beta[:, None] * x).sum(0) / beta.sum()
    rule = GeoMed(7, 0, nu=0.1, absolute_nu=True, init="zero", max_iter=8, tol=0.0)
    torch.testing.assert_close(rule(x), z)
    assert rule.last_stats == {"geomed_iterations": 8.0}


def test_geomed_relative_nu_is_scale_free():
    # rows at a row: with absolute nu the smoothing dominates at scale 1e-8
    x = T([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    ref = GeoMed(4, 0)(x)
    torch.testing.assert_close(GeoMed(4, 0)(1e-8 * x), 1e-8 * ref)
    big_nu = GeoMed(4, 0, nu=0.5, absolute_nu=True)  # all rows within nu at 1e-8: mean
    assert not torch.allclose(big_nu(1e-8 * x) / 1e-8, big_nu(x))


# ------------------------------------------------------------------------------- CAF


def test_caf_filters_at_tiny_scales():
    # The old floor 1e-12 * max(1, trace) returned the mean for inputs ~1e-8.
    x = T([[0.0], [1.0], [2.0], [10.0]])
    ref = CAF(4, 1)(x)
    assert ref.item() < 2.5  # the far row is filtered
    torch.testing.assert_close(CAF(4, 1)(1e-8 * x), 1e-8 * ref)


# ------------------------------------------------------------------------------- ARC


def test_arc_zero_rows_no_nan():
    # n = 5, f = 1: k = 1; four zero rows -> C = 0; the zero rows stay 0 (was 0/0 = nan)
    x = T([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    y = ARC(5, 1)(x)
    assert torch.equal(y, torch.zeros_like(x))


# ----------------------------------------------------------------------------- MoNNA


def test_monna_default_is_previous_and_honest_pivot():
    assert MoNNA(4, 1).pivot == "previous"
    x = T([[10.0], [0.0], [1.0], [3.0]])
    rule = MoNNA(4, 1, pivot="honest")
    assert rule(x).item() == pytest.approx(14 / 3)  # not told yet: row 0 (value 10)
    pipe = Pipeline([], rule)
    pipe.observe(SideInputs(honest_row=1))  # row 1 (value 0): nearest {0, 1, 3} -> 4/3
    assert pipe(x).item() == pytest.approx(4 / 3)
    pipe.observe(SideInputs(honest_row=0))  # row 0 (value 10): nearest {10, 3, 1} -> 14/3
    assert pipe(x).item() == pytest.approx(14 / 3)


def test_monna_honest_refused_after_bucketing():
    from omegaconf import OmegaConf

    from byzbench.build import build_pipeline

    pre = OmegaConf.create({"bucketing": {"_target_": "byzbench.preaggregators.bucketing."
                                          "Bucketing", "s": 2}})
    agg = OmegaConf.create({"_target_": "byzbench.aggregators.monna.MoNNA", "pivot": "honest"})
    with pytest.raises(ConfigError, match="honest_row"):
        build_pipeline(pre, agg, 10, 1, torch.Generator().manual_seed(0))
    assert build_pipeline({}, agg, 10, 1, None).needs == {"honest_row"}
    assert isinstance(Bucketing(4), Bucketing)


# ------------------------------------------------------------------- reference variants


def test_krum_k_offset_changes_the_neighbour_count():
    # 1-D points 0, 1, 3, 10, 11, n = 5, f = 1.
    # k_offset 2 (paper): 2 nearest -> scores 0: 1+9, 1: 1+4, 3: 4+9 -> row "1".
    # k_offset 1 (ByzFL): 3 nearest -> 0: 1+9+100=110, 1: 1+4+81=86, 3: 4+9+49=62,
    #   10: 1+49+81=131, 11: 1+64+100=165 -> row "3".
    x = T([[0.0], [1.0], [3.0], [10.0], [11.0]])
    assert Krum(5, 1)(x).item() == 1.0
    assert Krum(5, 1, k_offset=1)(x).item() == 3.0
    with pytest.raises(ConfigError, match="agg.k_offset"):
        Krum(5, 1, k_offset=0)


def test_dnc_empty_intersection_first_or_union(monkeypatch):
    # Force two iterations that keep disjoint sets: first -> set 1, union -> both.
    sets = iter([np.array([0, 1]), np.array([2, 3])])
    monkeypatch.setattr(kernels, "stable_smallest", lambda scores, m: next(sets))
    x = T([[0.0], [1.0], [2.0], [3.0]])
    r = DnC(4, 2, niters=2, b=1, c=1.0)
    assert r(torch.cat([x, x], 1))[0].item() == pytest.approx(0.5)
    sets = iter([np.array([0, 1]), np.array([2, 3])])
    monkeypatch.setattr(kernels, "stable_smallest", lambda scores, m: next(sets))
    r = DnC(4, 2, niters=2, b=1, c=1.0, on_empty="union")
    assert r(torch.cat([x, x], 1))[0].item() == pytest.approx(1.5)


def test_signguard_authors_variant_block_and_normalized_features(monkeypatch):
    seen = {}

    def spy(feat):
        seen["feat"] = feat.copy()
        return np.ones(len(feat), dtype=bool)

    monkeypatch.setattr(SignGuard, "_largest_cluster", staticmethod(spy))
    # 4 rows, d = 10, frac 0.5 -> a block of 5 contiguous columns
    x = torch.tensor([[1.0] * 10, [-1.0] * 10, [1.0] * 5 + [-1.0] * 5, [0.0] * 10],
                     dtype=torch.float64) + 0.0
    x[3, 0] = 1e-3  # not all zero: passes nothing but keeps a norm
    rule = SignGuard(4, 0, frac=0.5, sampling="block", normalize=True)
    rule(x)
    feat = seen["feat"]
    assert np.allclose(feat.max(axis=0), 1.0)  # each feature divided by its max
    # block sampling: row 2's positive fraction is 1, 0 or in between depending on start,
    # but row 0's positive feature is the maximum 1 and row 1's is 0.
    assert feat[0, 0] == 1.0 and feat[1, 0] == 0.0
