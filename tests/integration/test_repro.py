"""The reproduction experiments (conf/experiment/repro_*.yaml) run end to end through the
real torchvision loaders on tiny fake MNIST / CIFAR-10 files written here, with the
published n, f and loop conventions, 2 rounds; their reference CSVs name swept values."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from byzbench.run import CONF_DIR, execute

from .conftest import compose_cfg, conf_options, run_cli

REPRO = [p for p in conf_options("experiment") if p.stem.startswith("repro_")]
REF_DIR = Path(CONF_DIR).resolve().parents[1] / "docs" / "reference"
TINY = ["rounds=2", "eval_every=1", "batch_size=2", "progress=false", "plot=false", "threads=1",
        "dataset.download=false"]
# What each published setup fixes (n, f, byz_data, momentum style, model).
PUBLISHED = {
    "repro_epfml_noniid_mnist": (25, 5, "iid", "heavy_ball", "epfml_cnn"),
    "repro_epfml_noattack_mnist": (24, 0, "iid", "heavy_ball", "epfml_cnn"),
    "repro_cclip_cifar10": (25, 5, "iid", "heavy_ball", "resnet20_bn"),
    "repro_cclip_cifar10_ipm": (25, 11, "iid", "heavy_ball", "resnet20_bn"),
    "repro_byzfl_heatmap_mnist": (11, 1, "none", "ema", "byzfl_cnn_mnist"),
}


def _write_idx(path: Path, arr) -> None:
    import struct

    import torch

    head = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(head + arr.to(torch.uint8).numpy().tobytes())


@pytest.fixture
def fake_root(tmp_path, monkeypatch) -> Path:
    """MNIST (400 train = 40 per class, 30 test) and CIFAR-10 (5 x 60 train, 60 test) in
    torchvision's raw layouts; CIFAR's md5 checks blanked (fake files cannot match)."""
    import pickle

    import torch
    from torchvision.datasets import CIFAR10

    root = tmp_path / "data"
    g = torch.Generator().manual_seed(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 400), ("t10k", 30)):
        _write_idx(raw / f"{split}-images-idx3-ubyte",
                   torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", torch.arange(n) % 10)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        x = torch.randint(0, 256, (60, 3072), generator=g, dtype=torch.uint8).numpy()
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": x, "labels": [j % 10 for j in range(60)]}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)]}, fh)
    monkeypatch.setattr(CIFAR10, "train_list", [[f, None] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[f, None] for f, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": None})
    return root


def _grid(path: Path) -> dict[str, list[str]]:
    params = yaml.safe_load(path.read_text())["hydra"]["sweeper"]["params"]
    out = {}
    for k, v in params.items():
        s = str(v)
        out[k] = ["[]", "[bucketing]"] if k == "preagg" else [x.strip() for x in s.split(",")]
    return out


def _run(path: Path, root: Path, out: Path, *extra: str) -> dict:
    ov = [f"experiment={path.stem}", f"dataset.root={root}", *TINY, *extra]
    cfg = compose_cfg(*ov)
    choices = {"attack": None, "agg": None}
    return execute(cfg, out, choices, ov)


# Fast-suite size: fewer workers (and a narrower ResNet) than published, same code path.
REDUCED = {
    "repro_epfml_noniid_mnist": ["cluster.n_workers=5"],
    "repro_epfml_noattack_mnist": ["cluster.n_workers=4"],
    "repro_cclip_cifar10": ["cluster.n_workers=5", "model.width=4"],
    "repro_cclip_cifar10_ipm": ["cluster.n_workers=5", "model.width=4"],
    "repro_byzfl_heatmap_mnist": [],  # n = 11 (10 honest + f = 1) is already small
}


@pytest.mark.parametrize("path", REPRO, ids=lambda p: p.stem)
def test_repro_experiment_runs_reduced_on_fake_files(path, fake_root, tmp_path):
    """First value of every swept axis, fewer workers, 2 rounds: builds and trains
    through the real loaders, the published conventions and models."""
    first = [f"{k}={v[0]}" for k, v in _grid(path).items()]
    s = _run(path, fake_root, tmp_path / "run", *first, *REDUCED[path.stem])
    assert s["status"] == "ok" and s["rounds_done"] == 2
    assert 0.0 <= s["final"]["test_accuracy"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("path", REPRO, ids=lambda p: p.stem)
def test_repro_experiment_runs_on_fake_files(path, fake_root, tmp_path):
    """The first value of every swept axis, the published n, f and conventions
    (ResNet-20 with 25 workers: minutes on a busy 2-core CPU)."""
    first = [f"{k}={v[0]}" for k, v in _grid(path).items()]
    s = _run(path, fake_root, tmp_path / "run", *first)
    n, f, byz_data, style, model = PUBLISHED[path.stem]
    assert s["status"] == "ok" and s["rounds_done"] == 2
    assert (s["n"], s["f"]) == (n, f)
    assert 0.0 <= s["final"]["test_accuracy"] <= 1.0
    cfg = compose_cfg(f"experiment={path.stem}", *first)
    assert cfg.cluster.byz_data == byz_data and cfg.worker_momentum_style == style
    assert cfg.model._target_.endswith(
        {"epfml_cnn": "epfml_cnn.build", "resnet20_bn": "resnet20.build",
         "byzfl_cnn_mnist": "byzfl_cnn_mnist.build"}[model])
    if model == "resnet20_bn":
        assert s["grad_path"] == "loop"  # BatchNorm: per-worker loop


def test_every_published_number_names_a_swept_configuration():
    """docs/reference/<experiment>.csv: the agreed columns (extra key columns may follow
    ``partition``, e.g. ``partition.noniid``), accuracies in percent, and every key value
    is one the experiment sweeps (or fixes), so the report can match rows to runs."""
    head = ["experiment", "attack", "agg", "worker_momentum", "preagg", "partition"]
    tail = ["metric", "mean", "sd", "source"]
    files = sorted(REF_DIR.glob("*.csv"))
    assert files, "no reference tables"
    for f in files:
        rows = list(csv.DictReader(f.open()))
        cols = list(rows[0])
        assert rows and cols[:6] == head and cols[-4:] == tail, f.name
        extra = cols[6:-4]
        path = Path(CONF_DIR) / "experiment" / f"{f.stem}.yaml"
        assert path.is_file(), f"{f.name}: no experiment {f.stem}"
        grid = _grid(path)
        cfg = compose_cfg(f"experiment={f.stem}")
        for r in rows:
            assert r["experiment"] == f.stem
            for key in ("attack", "agg", "worker_momentum", "preagg", *extra):
                if r[key]:
                    fixed = [str(cfg.get(key))] if key == "worker_momentum" else []
                    assert r[key] in grid.get(key, fixed), (f.name, key, r[key])
            assert not r["partition"] or r["partition"] == cfg.partition._target_.split(".")[-2]
            assert r["metric"] in ("test_accuracy", "tail150_test_accuracy"), r["metric"]
            assert 1.0 <= float(r["mean"]) <= 100.0 and r["source"]  # percent
            assert r["sd"] == "" or float(r["sd"]) >= 0


@pytest.mark.slow
@pytest.mark.parametrize("path", REPRO, ids=lambda p: p.stem)
def test_every_swept_value_runs_on_fake_files(path, fake_root, tmp_path):
    """One run per swept value (the others at their first value), 2 rounds each."""
    grid = _grid(path)
    first = {k: v[0] for k, v in grid.items()}
    for key, values in grid.items():
        for v in values[1:]:
            ov = [f"{k}={x}" for k, x in {**first, key: v}.items()]
            s = _run(path, fake_root, tmp_path / f"{key}={v}".replace("/", "_"), *ov)
            assert s["status"] == "ok", (key, v)


@pytest.mark.slow
def test_cli_sweep_resumes_in_the_fixed_dir(fake_root, tmp_path):
    """`byzbench -m experiment=repro_epfml_noniid_mnist` on a 2-run grid writes into the
    fixed sweep dir; rerunning the same command skips the finished runs."""
    root = Path(CONF_DIR).resolve().parents[1]
    args = ["-m", "experiment=repro_epfml_noniid_mnist", f"dataset.root={fake_root}", *TINY,
            "seed=0", "worker_momentum=0.9", "preagg=[],[bucketing]", "attack=epfml/alie",
            "agg=epfml/cclip"]
    cmd = [sys.executable, "-m", "byzbench.run"]
    env = {"PYTHONPATH": str(root)}
    r = run_cli(args, tmp_path, cmd=cmd, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = tmp_path / "outputs" / "sweeps" / "repro_epfml_noniid_mnist"
    summaries = sorted(sweep.rglob("summary.json"))
    assert len(summaries) == 2
    stats = [json.loads(p.read_text()) for p in summaries]
    assert all(s["status"] == "ok" and (s["n"], s["f"]) == (25, 5) for s in stats)
    mtimes = [p.stat().st_mtime_ns for p in summaries]
    r = run_cli(args, tmp_path, cmd=cmd, env=env)
    assert r.returncode == 0
    assert [p.stat().st_mtime_ns for p in summaries] == mtimes


def test_reproduce_md_holds_the_printed_reference_tables():
    """docs/REPRODUCE.md shows the published numbers as scripts/reference_tables.py
    prints them from the CSVs (tables in docs come from data)."""
    import subprocess

    root = REF_DIR.parents[1]
    out = subprocess.run([sys.executable, str(root / "scripts" / "reference_tables.py")],
                         capture_output=True, text=True, check=True).stdout
    doc = (root / "docs" / "REPRODUCE.md").read_text()
    for block in out.strip().split("\n\n"):
        assert block.strip() in doc, block.splitlines()[0]
    for path in REPRO:
        assert f"experiment={path.stem}" in doc


@pytest.mark.parametrize("name", sorted(p.stem for p in REF_DIR.glob("*.csv")))
def test_report_compares_a_repro_run_with_its_reference(name, fake_root, tmp_path):
    """A reduced repro run on fake files, then ``byzbench-report --reference``: the row
    of the published table for the run's configuration gets our value and a flag."""
    from byzbench.report.cli import main as report_main

    path = Path(CONF_DIR) / "experiment" / f"{name}.yaml"
    first = {k: v[0] for k, v in _grid(path).items()}
    ov = [f"experiment={name}", f"dataset.root={fake_root}", *TINY,
          *(f"{k}={v}" for k, v in first.items()), *REDUCED[name]]
    sweep = tmp_path / "sweep"
    choices = {k: first[k] for k in ("attack", "agg") if k in first}
    s = execute(compose_cfg(*ov), sweep / "run0", choices, ov)
    assert s["status"] == "ok"
    out = tmp_path / "report"
    report_main([str(sweep), "--reference", str(REF_DIR / f"{name}.csv"), "--out", str(out),
                 "--quiet"])
    table = list(csv.DictReader((out / f"reference_{name}.csv").open()))
    ran = [r for r in table if r["flag"] not in ("not run",)]
    assert ran, "no published row matched the run"
    for r in ran:
        assert 0.0 <= float(r["ours"]) <= 100.0 and r["flag"] in ("ok", "OUT", "no sd")
