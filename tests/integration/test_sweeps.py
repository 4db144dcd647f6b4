"""Sweeps end to end through the installed CLI: joblib launcher, crash isolation, kill and
resume, submitit (slow), and the report command on a real sweep dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY, byzbench_cmd, run_cli

FAST = [*TINY, "plot=false"]


def _summaries(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


def _mtimes(sweep: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/summary.json")}


def _report(sweep: Path, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("byzbench-report")
    cmd = [exe] if exe else [sys.executable, "-m", "byzbench.report"]
    return subprocess.run([*cmd, str(sweep)], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


# Both launchers are slow (the joblib one alone took 60 s of a 5-minute fast suite);
# resume itself stays in the fast suite (tests/integration/test_run.py).
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "basic"])
def test_killed_sweep_resumes_isolates_failures_and_reports(tmp_path, launcher):
    """Kill the whole process group (launcher workers included) after the first finished
    run. The rerun skips every finished run (summary.json untouched), reruns the failed
    and the missing ones; a failing run is recorded with its error and the sweep goes on;
    ``byzbench-report`` reads the result."""
    if launcher == "joblib":
        pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    launch = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" \
        else []
    # n = 7, f = 2: bulyan needs n >= 4f + 3 = 11, so jobs 0-2 fail at build time.
    args = ["-m", *launch, "agg=bulyan,mean", "seed=0,1,2", *FAST, "rounds=20",
            f"hydra.sweep.dir={sweep}"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    proc = subprocess.Popen(byzbench_cmd() + args, cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if any(v.get("status") == "ok" for v in _summaries(sweep).values()):
                break
            time.sleep(0.05)
        finished_early = proc.poll() is not None
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert not finished_early, "the sweep ended before it could be killed"
    if launcher == "joblib":
        assert "joblib" in (sweep / "multirun.yaml").read_text().lower()
    before = _summaries(sweep)
    ok_before = {k for k, v in before.items() if v["status"] == "ok"}
    failed_before = {k for k, v in before.items() if v["status"] == "failed"}
    assert ok_before and ok_before <= {"3", "4", "5"} and failed_before <= {"0", "1", "2"}
    assert len(before) < 6
    for k in failed_before:
        assert "ConfigError" in before[k]["error"] and "bulyan" in before[k]["error"]
    t0 = _mtimes(sweep)
    time.sleep(0.02)  # mtime granularity: a rewrite must show

    r = run_cli(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    after, t1 = _summaries(sweep), _mtimes(sweep)
    assert len(after) == 6
    assert {k for k, v in after.items() if v["status"] == "ok"} == {"3", "4", "5"}
    assert {k for k, v in after.items() if v["status"] == "failed"} == {"0", "1", "2"}
    for k in ok_before:  # not rerun: the file was not rewritten
        assert t1[k] == t0[k], f"finished run {k} was rerun"
        assert after[k] == before[k]
    for k in failed_before:  # failed runs are retried (and fail again, deterministically)
        assert t1[k] > t0[k]

    rep = _report(sweep, tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:]
    out = sweep / "report"
    assert (out / "results.csv").is_file() and (out / "final_test_accuracy.md").is_file()
    assert "bulyan" in (out / "failed.md").read_text()
    assert "6 runs (3 failed, 3 ok)" in rep.stdout or "6 runs (3 ok, 3 failed)" in rep.stdout


@pytest.mark.slow
def test_submitit_local_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                 "seed=0,1", *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = _summaries(sweep)
    assert len(s) == 2 and all(v["status"] == "ok" for v in s.values())
    assert {v["seed"] for v in s.values()} == {0, 1}
