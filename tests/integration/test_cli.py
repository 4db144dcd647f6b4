"""The installed `byzbench` command end to end on tiny offline data."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from .conftest import TINY, run_cli

REPO = Path(__file__).resolve().parents[2]


def _check_run_dir(d: Path) -> dict:
    for name in ("metrics.csv", "summary.json", "convergence.png"):
        assert (d / name).is_file(), f"{name} missing in {d}"
    df = pd.read_csv(d / "metrics.csv")
    assert list(df.columns) == ["round", "split", "metric", "value"]
    assert {"loss", "agg_error", "agg_norm"} <= set(df[df.split == "train"].metric)
    assert {"round", "aggregation"} <= set(df[df.split == "time"].metric)
    assert {"loss", "accuracy"} <= set(df[df.split == "test"].metric)
    return json.loads((d / "summary.json").read_text())


def test_single_run_writes_three_files(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["attack=seesaw", "agg=krum", "solver=adam", *TINY, f"hydra.run.dir={out}"],
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    s = _check_run_dir(out)
    assert s["status"] == "ok"
    assert s["choices"]["attack"] == "seesaw" and s["choices"]["agg"] == "krum"
    assert (s["n"], s["f"], s["f_declared"]) == (7, 2, 2)
    assert {"torch", "byzbench"} <= set(s["versions"])
    assert 0.0 <= s["final"]["test_accuracy"] <= 1.0


def test_multirun_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "attack=none,seesaw", "agg=mean,krum", *TINY, "plot=true",
                 f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(runs) == 4
    combos = set()
    for d in runs:
        s = _check_run_dir(d)
        combos.add((s["choices"]["attack"], s["choices"]["agg"]))
    assert combos == {("none", "mean"), ("none", "krum"), ("seesaw", "mean"), ("seesaw", "krum")}


BAD = [
    (["cluster.byz_frac=1.5"], "cluster.byz_frac=1.5"),
    (["cluster.n_workers=0"], "cluster.n_workers=0"),
    (["rounds=0"], "rounds=0"),
    (["solver.lr=-1"], "solver.lr=-1"),
    # n=7, f=floor(0.45*7)=3 violates Krum's n >= 2f + 3 = 9
    (["agg=krum", "cluster.byz_frac=0.45"], "krum needs n >= 2f + 3"),
    (["+agg.bogus=1"], "agg.bogus"),
    (["agg=bulyan"], "bulyan"),
    # federated mode
    (["algorithm=fedavg", "algorithm.local_steps=0"], "algorithm.local_steps=0"),
    (["algorithm=fedavg", "algorithm.client_lr=0"], "algorithm.client_lr=0"),
    (["cluster.participation=0"], "cluster.participation=0"),
    (["cluster.participation=1.2"], "cluster.participation=1.2"),
    (["cluster.byz_per_round=most"], "cluster.byz_per_round='most'"),
    # n=20, f=4: m=10 sampled clients, told f=2; Bulyan needs 4f+3 = 11 > 10
    (["cluster.n_workers=20", "cluster.byz_frac=0.2", "cluster.participation=0.5", "agg=bulyan"],
     "cluster.participation=0.5"),
]


def test_bad_config_from_installed_command_is_one_line(tmp_path):
    r = run_cli([*TINY, "cluster.byz_frac=1.5", f"hydra.run.dir={tmp_path / 'x'}"], cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines == ["byzbench: error: cluster.byz_frac=1.5 is invalid: a fraction in [0, 1)"]


@pytest.mark.parametrize(("override", "needle"), BAD)
def test_bad_config_is_one_clear_line(tmp_path, monkeypatch, capsys, override, needle):
    """The entry point in-process (same code path as the command, without the
    interpreter start-up): exit code 2 and one line naming the parameter."""
    from byzbench.run import main

    monkeypatch.setattr(sys, "argv", ["byzbench", *TINY, *override,
                                      f"hydra.run.dir={tmp_path / 'x'}"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("byzbench: error:"), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_unknown_option_names_the_group(tmp_path):
    r = run_cli(["agg=nosuchrule", f"hydra.run.dir={tmp_path / 'x'}"], cwd=tmp_path)
    assert r.returncode != 0
    assert "agg/nosuchrule" in r.stderr and "Traceback" not in r.stderr


def test_typo_in_top_level_key_is_an_error(tmp_path):
    r = run_cli(["roundz=3", f"hydra.run.dir={tmp_path / 'x'}"], cwd=tmp_path)
    assert r.returncode != 0 and "roundz" in r.stderr and "Traceback" not in r.stderr


def test_non_editable_install_ships_configs(tmp_path):
    """`pip install .` (no -e): the wheel carries byzbench/conf and the command works
    from an unrelated directory."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheel_dir), str(REPO)], check=True, timeout=300)
    (whl,) = wheel_dir.glob("byzbench-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "byzbench/conf/config.yaml" in names
    assert any(n.startswith("byzbench/conf/agg/") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(whl).extractall(site)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    code = ("import byzbench, sys; assert byzbench.__file__.startswith(sys.argv[1]), "
            "byzbench.__file__; from byzbench.run import main; sys.argv = sys.argv[:1] + "
            "sys.argv[2:]; main()")
    out = cwd / "run"
    r = run_cli([str(site), *TINY, "rounds=2", f"hydra.run.dir={out}"], cwd=cwd,
                cmd=[sys.executable, "-c", code], env={"PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "summary.json").is_file()
