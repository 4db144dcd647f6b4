"""A refactor changes no number: every golden case's metrics (wall-clock rows aside)
equal, value for value, what ``scripts/golden.py --write`` recorded before it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "golden", Path(__file__).resolve().parents[2] / "scripts" / "golden.py")
golden = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(golden)


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_golden_metrics_are_identical(name):
    expected = golden.read_golden(name)
    got = golden.run_case(name)
    assert [r[:3] for r in got] == [r[:3] for r in expected], "rows differ"
    diff = [(e, g[3]) for e, g in zip(expected, got) if e[3] != g[3]]
    assert not diff, f"{len(diff)} values differ, first: {diff[0]}"


def test_every_golden_case_has_its_file():
    assert sorted(p.stem for p in golden.GOLDEN.glob("*.csv")) == sorted(golden.CASES)
