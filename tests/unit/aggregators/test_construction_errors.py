"""Every rule's bad construction arguments give one line naming the limit or the key."""

from __future__ import annotations

import pytest

from byzbench import ConfigError
from byzbench.aggregators.bulyan import Bulyan
from byzbench.aggregators.caf import CAF
from byzbench.aggregators.cclip import CClip
from byzbench.aggregators.dnc import DnC
from byzbench.aggregators.geomed import GeoMed
from byzbench.aggregators.krum import Krum
from byzbench.aggregators.mda import MDA
from byzbench.aggregators.meamed import MeaMed
from byzbench.aggregators.mean import Mean
from byzbench.aggregators.median import Median
from byzbench.aggregators.monna import MoNNA
from byzbench.aggregators.multikrum import MultiKrum
from byzbench.aggregators.phocas import Phocas
from byzbench.aggregators.signguard import SignGuard
from byzbench.aggregators.trmean import TrMean


@pytest.mark.parametrize(
    ("cls", "n", "f", "needle"),
    [(Krum, 6, 2, "krum needs n >= 2f + 3 (n=6)"), (TrMean, 4, 2, "trmean needs 2f < n (n=4)"),
     (Median, 0, 0, "median needs n >= 1"), (Mean, 3, -1, "f >= 0")],
)
def test_mean_median_trmean_krum_construction_errors_are_one_line(cls, n, f, needle):
    with pytest.raises(ConfigError) as e:
        cls(n, f)
    assert needle in str(e.value) and "\n" not in str(e.value)


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
