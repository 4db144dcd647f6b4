"""Finding the results: a run prints its dir, a multirun its sweep dir and the report
command; a rule against every attack in one command (Hydra's glob sweep), reported with
a validation-based hyperparameter selection."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

from byzbench import report

from .conftest import TINY, conf_options, run_cli

REPO = Path(__file__).resolve().parents[2]


def test_single_run_prints_its_dir(tmp_path, monkeypatch, capsys):
    from byzbench.run import main

    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["byzbench", *TINY, "plot=false", "threads=1",
                                      f"hydra.run.dir={out}"])
    main()
    assert f"byzbench: run dir {out}" in capsys.readouterr().out.splitlines()


@pytest.mark.slow  # a 4-run CLI sweep (10 s): the fast suite keeps test_cli's sweep
def test_glob_sweep_over_attacks_prints_sweep_dir_and_reports(tmp_path):
    """``attack='glob(mi*,exclude=[mimic])'`` composes to every attack option starting
    with mi except mimic (min_max, min_sum), as the README's every-attack command does."""
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "attack=glob(mi*,exclude=[mimic])", "agg=median", "solver.lr=0.1,0.05",
                 "dataset.val_frac=0.2", *TINY, "plot=false", "threads=1",
                 f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                # this checkout's code, whichever byzbench is installed
                cmd=[sys.executable, "-m", "byzbench.run"], env={"PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-2000:]
    want = sorted(p.stem for p in conf_options("attack")
                  if p.stem.startswith("mi") and p.stem != "mimic")
    runs = report.load_runs(sweep)
    assert sorted(set(runs["attack"])) == want == ["min_max", "min_sum"]
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    lines = r.stdout.strip().splitlines()
    assert lines[-2:] == [f"byzbench: sweep dir {sweep}",
                          f"byzbench: report with: byzbench-report {shlex.quote(str(sweep))}"]
    assert runs["final_val_accuracy"].between(0, 1).all()
    report.write_report(sweep, quiet=True, select=["solver.lr"])
    sel = pd.read_csv(sweep / "report" / "hparams.csv")
    assert len(sel) == 1 and sel["solver.lr"].item() in (0.1, 0.05)
