"""Hand-computed values (arithmetic in comments) and known answers for multikrum,
geomed, bulyan, cclip, meamed, phocas, mda, monna, caf, dnc, signguard, hc_krum."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.base import Pipeline
from byzbench.aggregators.bulyan import Bulyan
from byzbench.aggregators.caf import CAF
from byzbench.aggregators.cclip import CClip
from byzbench.aggregators.dnc import DnC
from byzbench.aggregators.geomed import GeoMed
from byzbench.aggregators.hc_krum import HCKrum
from byzbench.aggregators.mda import MDA
from byzbench.aggregators.meamed import MeaMed
from byzbench.aggregators.monna import MoNNA
from byzbench.aggregators.multikrum import MultiKrum
from byzbench.aggregators.phocas import Phocas
from byzbench.aggregators.signguard import SignGuard

T = lambda rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
LINE = T([[3.0], [10.0], [1.0], [0.0], [11.0]])  # 1-D points 0, 1, 3, 10, 11 (shuffled)


def test_multikrum_hand_values():
    # n = 5, f = 1, 2 neighbours. scores: 0: 1 + 9 = 10; 1: 1 + 4 = 5; 3: 4 + 9 = 13;
    # 10: 1 + 49 = 50; 11: 1 + 64 = 65. m = n - f = 4 best: {1, 0, 3, 10} -> 14 / 4
    rule = MultiKrum(5, 1)
    assert rule(LINE).item() == pytest.approx(3.5)
    assert rule.last_weights.tolist() == [0.25, 0.25, 0.25, 0.25, 0]
    assert MultiKrum(5, 1, m=2)(LINE).item() == pytest.approx(0.5)  # {1, 0}
    assert MultiKrum(5, 1, m=1)(LINE).item() == pytest.approx(1.0)  # Krum


def test_geomed_known_answers():
    # The geometric median of the corners of a square is its center.
    sq = T([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    assert GeoMed(4)(sq).tolist() == pytest.approx([1.0, 1.0])
    # In 1-D the geometric median is the median: 0, 1, 10 -> 1 (Weiszfeld converges
    # linearly near a data point, smoothing nu bounds the step: loose tolerance).
    rule = GeoMed(3, nu=1e-8, tol=0.0, max_iter=2000)
    assert rule(T([[0.0], [1.0], [10.0]])).item() == pytest.approx(1.0, abs=1e-3)
    # Add a far outlier on the diagonal: the median moves to p = (1 + t, 1 + t) where the
    # unit vectors balance. Along (1, 1)/sqrt2: (0,0) gives -1, (2,2) +1, (2,0) and (0,2)
    # give -2t / sqrt(1 + t^2) together, the outlier +1 -> 2t / sqrt(1 + t^2) = 1,
    # t = 1/sqrt(3). (The mean would move by 2e5.)
    x = torch.cat([sq, T([[1e6, 1e6]])])
    t = 1 / math.sqrt(3)
    # (abs 1e-4: distances from a Gram matrix with 1e12 entries carry ~1e-4 error)
    assert GeoMed(5)(x).tolist() == pytest.approx([1 + t, 1 + t], abs=1e-4)


def test_geomed_first_iterate_hand_value():
    # One smoothed-Weiszfeld step from the mean of 0, 1, 4: v0 = 5/3; distances 5/3, 2/3,
    # 7/3; beta = (3/5, 3/2, 3/7) (alpha cancels); v1 = (0*3/5 + 1*3/2 + 4*3/7) /
    # (3/5 + 3/2 + 3/7)
    v1 = (1.5 + 12 / 7) / (0.6 + 1.5 + 3 / 7)
    assert GeoMed(3, max_iter=1)(T([[0.0], [1.0], [4.0]])).item() == pytest.approx(v1)


def test_bulyan_hand_values():
    # 1-D points 0, 1, 2, 3, 4, 50, -50; n = 7, f = 1: theta = 5, beta = 3.
    # step 1 (7 left, 4 neighbours): 2 scores 1 + 1 + 4 + 4 = 10 (best).
    # step 2 (6 left, 3 nb): 1: 1 + 4 + 9 = 14, 3: 1 + 4 + 9 = 14 -> tie, total squared
    #   distance 1: 1 + 4 + 9 + 49^2 + 51^2 = 5016 < 3: 9 + 4 + 1 + 47^2 + 53^2 = 5032 -> 1.
    # step 3 (5 left, 2 nb): 0: 9 + 16 = 25, 3: 1 + 9 = 10, 4: 1 + 16 = 17 -> 3.
    # step 4 (4 left, 1 nb): 0: 16, 4: 16 tie; totals 0: 16 + 2500 + 2500 = 5016,
    #   4: 16 + 46^2 + 54^2 = 5048 -> 0.
    # step 5 (3 left, 0 nb): all 0; totals 4: 2116 + 2916 < 50: 2116 + 10000 -> 4.
    # Selected {0, 1, 2, 3, 4}; median 2; the 3 values closest to it {1, 2, 3} -> 2.
    x = T([[50.0], [0.0], [1.0], [-50.0], [2.0], [3.0], [4.0]])
    rule = Bulyan(7, 1)
    assert rule(x).item() == pytest.approx(2.0)
    assert rule.last_weights.tolist() == pytest.approx([0, 0.2, 0.2, 0, 0.2, 0.2, 0.2])
    # second coordinate: the selected rows carry 0, 10, 1, 2, 7 -> median 2, the three
    # closest {1, 2, 0} (7 and 10 are 5 and 8 away) -> 1
    x2 = torch.cat([x, T([[99.0], [0.0], [10.0], [-99.0], [1.0], [2.0], [7.0]])], dim=1)
    assert rule(x2).tolist() == pytest.approx([2.0, 1.0])


def test_cclip_hand_values_state_and_query():
    x = T([[3.0, 4.0], [0.0, 0.5]])
    rule = CClip(2, 0, tau=1.0, iterations=1)
    # center 0: (3, 4) has norm 5 -> clipped to (0.6, 0.8); (0, 0.5) is within tau.
    # v1 = 0 + ((0.6, 0.8) + (0, 0.5)) / 2 = (0.3, 0.65)
    pipe = Pipeline([], rule)
    assert pipe.query(x).tolist() == pytest.approx([0.3, 0.65])
    assert rule.center is None  # query restored the state
    assert pipe(x).tolist() == pytest.approx([0.3, 0.65])
    assert rule.center.tolist() == pytest.approx([0.3, 0.65])
    # second call starts from (0.3, 0.65): (3, 4) - v = (2.7, 3.35), norm 4.3028 -> scale
    # 1/4.3028; (0, 0.5) - v = (-0.3, -0.15) within tau.
    dv = np.array([2.7, 3.35]) / math.hypot(2.7, 3.35) + np.array([-0.3, -0.15])
    assert rule(x).tolist() == pytest.approx((np.array([0.3, 0.65]) + dv / 2).tolist())
    # with a huge radius one iteration from 0 is the mean
    assert CClip(2, 0, tau=1e9)(x).tolist() == pytest.approx([1.5, 2.25])


def test_meamed_and_phocas_hand_values():
    col = T([[0.0], [2.0], [5.0], [6.0], [9.0]])
    # meamed f = 1: median 5; |x - 5| = 5, 3, 0, 1, 4 -> 4 nearest {5, 6, 2, 9} -> 22 / 4
    assert MeaMed(5, 1)(col).item() == pytest.approx(5.5)
    # phocas f = 1: trmean (2 + 5 + 6) / 3 = 13/3; distances 13/3, 7/3, 2/3, 5/3, 14/3
    # -> 4 nearest {5, 6, 2, 0} -> 13 / 4
    assert Phocas(5, 1)(col).item() == pytest.approx(3.25)


def test_mda_hand_values():
    # 1-D 0, 1, 3, 10 with f = 1: diameters {0,1,3}: 3, {0,1,10}: 10, {0,3,10}: 10,
    # {1,3,10}: 9 -> {0, 1, 3}, mean 4/3
    rule = MDA(4, 1)
    assert rule(T([[10.0], [0.0], [3.0], [1.0]])).item() == pytest.approx(4 / 3)
    assert rule.last_weights.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])


@pytest.mark.parametrize("seed", range(6))
def test_mda_matches_brute_force_diameter(seed):
    g = torch.Generator().manual_seed(seed)
    n, f = 11, 4
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    x[: seed % 3] *= 20  # a few far rows in some cases
    dist = torch.cdist(x, x)
    dn = dist.numpy()
    best = min(dn[np.ix_(s, s)].max() for s in itertools.combinations(range(n), n - f))
    rule = MDA(n, f)
    out = rule(x)
    sel = torch.nonzero(rule.last_weights).flatten()
    assert dist[sel][:, sel].max().item() == pytest.approx(best)
    torch.testing.assert_close(out, x[sel].mean(0))
    assert rule.last_nodes < 2 ** (f + 1)


def test_mda_refuses_large_f_naming_the_limit():
    with pytest.raises(ConfigError, match=r"max_nodes=65536"):
        MDA(100, 30)
    MDA(100, 30, max_nodes=2**31)  # allowed when the user raises the limit


def test_mda_n30_f10_fast():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20, 50, generator=g), 5 + torch.randn(10, 50, generator=g)])
    rule = MDA(30, 10, max_nodes=2**11)
    rule(x)
    assert rule.last_weights[20:].sum() == 0  # the far cluster is removed


def test_monna_hand_values():
    x = T([[0.0], [1.0], [3.0], [10.0]])
    # pivot row 0 (value 0), f = 1: 3 nearest {0, 1, 3} -> 4/3
    assert MoNNA(4, 1)(x).item() == pytest.approx(4 / 3)
    # pivot row 3 (value 10): nearest {10, 3, 1} -> 14/3
    assert MoNNA(4, 1, pivot=3)(x).item() == pytest.approx(14 / 3)
    # pivot "previous": 0 first (same as value 0), then 4/3: nearest {1, 0, 3} again
    rule = MoNNA(4, 1, pivot="previous")
    assert rule(x).item() == pytest.approx(4 / 3)
    assert rule(x).item() == pytest.approx(4 / 3)


def test_caf_hand_values():
    # 1-D 0, 1, 2, 10, n = 4, f = 1: filter while sum(c) > 2.
    x = T([[0.0], [1.0], [2.0], [10.0]])
    # round 1: mu = 13/4, y = x - mu, lambda_1 = mean(y^2) = 62.75 / 4,
    # tau = y^2, c = 1 - tau / max tau
    y = np.array([0, 1, 2, 10]) - 3.25
    c = 1 - y**2 / (y**2).max()
    assert c.sum() > 2
    # round 2: mu_c = sum(c x) / sum(c); lambda_2 = sum(c (x - mu_c)^2) / sum(c) < lambda_1
    mu2 = (c * np.array([0, 1, 2, 10])).sum() / c.sum()
    y2 = np.array([0, 1, 2, 10]) - mu2
    lam2 = (c * y2**2).sum() / c.sum()
    assert lam2 < 62.75 / 4
    # update: tau2 = y2^2 over rows in play (c > 0), c2 = c (1 - tau2 / max tau2)
    t2 = y2**2 * (c > 0)
    c2 = c * (1 - t2 / t2[c > 0].max())
    assert c2.sum() <= 2  # loop stops; output = mu_c of round 2 (smallest lambda)
    rule = CAF(4, 1)
    assert rule(x).item() == pytest.approx(mu2)
    assert rule.last_weights.tolist() == pytest.approx((c / c.sum()).tolist())


def test_dnc_hand_values_and_seed():
    # b >= d: no subsampling. 1-D 0, 1, 2, 10: centered y = x - 13/4, the top singular
    # direction is the axis, scores y^2 -> drop the largest (10); mean {0, 1, 2} = 1
    x = T([[0.0], [1.0], [2.0], [10.0]])
    rule = DnC(4, 1, b=10)
    assert rule(x).item() == pytest.approx(1.0)
    assert rule.last_weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0])
    # subsampled: same seed, same output; an outlier is removed whatever the subsample
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(10, 200, generator=g, dtype=torch.float64)
    xs[3] += 50.0
    a = DnC(10, 2, b=20, generator=torch.Generator().manual_seed(7))(xs)
    r = DnC(10, 2, b=20, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(r(xs), a)
    assert r.last_weights[3] == 0


def test_signguard_hand_values():
    u = torch.ones(20, dtype=torch.float64) / math.sqrt(20)
    x = torch.stack([1.0 * u, 1.2 * u, 0.8 * u, 1.1 * u, -u, 100 * u])
    rule = SignGuard(6, 1, frac=1.0)
    # norms 1, 1.2, 0.8, 1.1, 1, 100 -> median M = (1 + 1.1) / 2 = 1.05; 100/1.05 > 3 drops
    # the last row; sign features (1,0,0) x5 and (0,0,1) for -u -> largest cluster drops
    # -u; S = first four; clipped to M: coefficients (1, 1.05, 0.8, 1.05) / 4 = 0.975 total
    out = rule(x)
    torch.testing.assert_close(out, 0.975 * u)
    assert rule.last_weights.tolist() == pytest.approx(
        [1 / 4, 1.05 / 1.2 / 4, 1 / 4, 1.05 / 1.1 / 4, 0, 0])


def test_hc_krum_hand_values():
    # 1-D 0, 0.1, 1, 1.1, 2, 50, 60; n = 7, f = 1: k = 2f + 3 = 5 clusters. Average
    # linkage merges {0, 0.1} and {1, 1.1} (distance 0.1) first -> 5 clusters with means
    # 0.05, 1.05, 2, 50, 60. Krum (f_c = 1, 2 neighbours) on the means:
    # 0.05: 1 + 1.95^2 = 4.8025; 1.05: 1 + 0.95^2 = 1.9025; 2: 0.9025 + 3.8025 = 4.705
    x = T([[60.0], [0.0], [1.1], [50.0], [0.1], [2.0], [1.0]])
    rule = HCKrum(7, 1)
    assert rule(x).item() == pytest.approx(1.05)
    assert rule.last_weights.tolist() == pytest.approx([0, 0, 0.5, 0, 0, 0, 0.5])
    with pytest.raises(ConfigError, match=r"hc_krum needs n >= 2f_c \+ 3 = 9"):
        HCKrum(8, 3)
    with pytest.raises(ConfigError, match="n_clusters"):
        HCKrum(20, 3, n_clusters=5)


@pytest.mark.parametrize(
    ("make", "needle"),
    [(lambda: Bulyan(14, 3), "bulyan needs n >= 4f + 3 (n=14)"),
     (lambda: MultiKrum(8, 3), "multikrum needs n >= 2f + 3 (n=8)"),
     (lambda: MultiKrum(9, 3, m=10), "agg.m=10"),
     (lambda: MeaMed(6, 3), "meamed needs 2f < n (n=6)"),
     (lambda: Phocas(6, 3), "phocas needs 2f < n (n=6)"),
     (lambda: CAF(6, 3), "caf needs 2f < n (n=6)"),
     (lambda: MDA(6, 3), "mda needs 2f < n (n=6)"),
     (lambda: MoNNA(4, 1, pivot=4), "agg.pivot=4"),
     (lambda: DnC(3, 3), "dnc needs n > floor(c f)"),
     (lambda: CClip(tau=0.0), "agg.tau=0.0"),
     (lambda: GeoMed(nu=0.0), "agg.nu=0.0"),
     (lambda: SignGuard(lower=1.0, upper=0.5), "agg.upper=0.5")],
)
def test_construction_errors_are_one_line(make, needle):
    with pytest.raises(ConfigError) as e:
        make()
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_signguard_mean_shift_matches_sklearn():
    from sklearn.cluster import MeanShift
    from sklearn.cluster import estimate_bandwidth as sk_bandwidth

    from byzbench.aggregators.signguard import estimate_bandwidth, mean_shift

    rng = np.random.default_rng(0)
    for _ in range(6):
        m, k = int(rng.integers(5, 60)), int(rng.integers(1, 4))
        feat = rng.random((k, 3))[rng.integers(0, k, m)] + rng.normal(0, 0.02, (m, 3))
        bw = sk_bandwidth(feat, quantile=0.5)
        assert estimate_bandwidth(feat) == pytest.approx(bw, rel=1e-4)
        expected = MeanShift(bandwidth=bw, bin_seeding=True, cluster_all=False).fit(feat)
        assert np.array_equal(mean_shift(feat, bw), expected.labels_)
