"""The line maximizer's bound on real rules: tuned ALIE and tuned IPM (default budget
``auto``, ``search: scan``) reach >= 0.97 of the best damage of a dense log-spaced scan of
the same range. Fast suite: n = 11, f = 2, d = 30 (auto budget 512) against a 600-point
scan; slow suite: the issue's setting, n = 20, f = 4, d = 1000 (auto budget 16) against a
2000-point scan (all 14 cases pass, lowest 0.986). ``scripts/tuned_vs_scan.py`` prints
the full table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from byzbench.attacks.tuning import auto_budget

pytest.importorskip("byzbench.aggregators.krum")
SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "tuned_vs_scan.py"
spec = importlib.util.spec_from_file_location("tuned_vs_scan", SCRIPT)
tvs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tvs)

# At d = 30 the dense scan's best for nnm+krum / IPM is a needle: within 3 % of it only on
# scales [1.4988, 1.5117] (9.3e-4 of the log range), flanked by 0.58 of the best; the scan
# reaches 0.932 at any budget from 128 to 512 (tuning.auto_budget's docstring).
NEEDLE = {("nnm+krum", "ipm")}


@pytest.mark.parametrize("attack", sorted(tvs.ATTACKS))
@pytest.mark.parametrize("rule", tvs.RULES)
def test_tuned_reaches_dense_scan(rule, attack):
    r = tvs.compare(rule, attack, n=11, f=2, d=30, dense=600)["scan"]
    assert r["evals"] <= auto_budget(30) == 512
    if (rule, attack) in NEEDLE:
        assert 0.9 < r["ratio"] < 0.97, r  # documented shortfall: fails when it changes
        return
    assert r["ratio"] >= 0.97, r


def test_auto_budget():
    assert [auto_budget(d) for d in (1, 30, 100, 999, 1000, 10**6)] == [512, 512, 160, 17,
                                                                       16, 16]


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(tvs.ATTACKS))
@pytest.mark.parametrize("rule", tvs.RULES)
def test_tuned_reaches_dense_2000_scan_at_the_issue_setting(rule, attack):
    r = tvs.compare(rule, attack, n=20, f=4, d=1000, dense=2000)["scan"]
    assert r["evals"] <= 16
    assert r["ratio"] >= 0.97, r
