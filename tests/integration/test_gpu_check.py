"""scripts/gpu_check.sh: its CPU dry run (same steps, tiny sizes) passes and writes the
one log where $OUT points."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # several minutes: one fresh interpreter per step
def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    p = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = (tmp_path / "gpu_check.log").read_text()
    assert p.returncode == 0, log[-3000:]
    assert "all steps passed" in log
    for step in ("tests", "bench_round_mlp", "bench_models", "bench_aggregators",
                 "profile_round"):
        assert f"=== {step}: exit 0" in log, step
