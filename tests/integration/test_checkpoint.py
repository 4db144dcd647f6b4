"""Checkpoints and exact resume (byzbench.checkpoint): a run stopped at a round and
resumed from its checkpoint ends with the metrics of the uninterrupted run, value for
value (wall-clock rows aside); SIGKILL and SIGTERM in a subprocess; the file format's
safety (weights_only), its fallbacks and its one-line errors."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from byzbench import ConfigError
from byzbench.checkpoint import (
    PREEMPTED_EXIT,
    Checkpointer,
    CheckpointError,
    checkpoint_files,
    from_plain,
    load_file,
    to_plain,
)
from byzbench.run import config_hash, execute

from .conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "ckpt_driver.py"
ROUNDS, EVERY = 10, 2
BASE = [f"rounds={ROUNDS}", "eval_every=3", "cluster.n_workers=7", "cluster.byz_frac=0.3",
        "batch_size=8", "progress=false", "model.hidden=[8]", "plot=false", "threads=1",
        f"checkpoint.every={EVERY}"]
# Each config's state: momentum buffers, Adam, a scheduler, bucketing's generator and
# cclip's center; per-client momentum under partial participation and FedAvg; an adaptive
# attack querying the rule; FoolsGold's history (per client, participation); numpy state
# (ClippedClustering's norm history) and an attack's state (Sparse's mask); dropout
# (torch's global generator); BatchNorm's running statistics (model buffers).
CONFIGS = {
    "cclip_bucketing_momentum_adam": ["attack=alie", "agg=cclip", "preagg=[bucketing]",
                                      "worker_momentum=0.9", "solver=adam", "schedule=cosine"],
    "fedavg_participation": ["algorithm=fedavg", "algorithm.local_steps=2", "solver.lr=1",
                             "cluster.n_workers=16", "cluster.participation=0.5",
                             "attack=ipm", "agg=trmean", "worker_momentum=0.5"],
    "seesaw_krum": ["attack=seesaw", "agg=krum"],
    "foolsgold": ["attack=label_flip", "agg=foolsgold", "cluster.n_workers=12",
                  "cluster.participation=0.5", "cluster.byz_per_round=fixed"],
    "clipped_clustering_sparse": ["attack=sparse", "agg=clipped_clustering"],
    "dropout_epfml_cnn": ["model=epfml_cnn", "dataset.flatten=false", "attack=alie",
                          "agg=median"],
    "batchnorm_resnet20": ["model=resnet20_bn", "dataset.flatten=false", "model.width=4",
                           "attack=alie", "agg=median"],
}


def _overrides(name: str, *extra: str) -> list[str]:
    other_model = any(o.startswith("model=") for o in CONFIGS[name])
    base = [o for o in BASE if not (o.startswith("model.hidden") and other_model)]
    return [*base, *CONFIGS[name], *extra]


def _rows(run_dir: Path) -> pd.DataFrame:
    m = pd.read_csv(run_dir / "metrics.csv")
    return m[m.split != "time"].reset_index(drop=True)


def _kill_round(name: str) -> int:
    """A round (1-based) to stop in, after at least one checkpoint: seeded by the name."""
    return random.Random(name).randint(EVERY + 1, ROUNDS)


class _Killed(BaseException):
    """Stands for a kill: nothing in the run catches it."""


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as threads=1 does in the CLI: the subprocesses' numbers
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The uninterrupted run of each config (in-process, one thread), computed once."""
    out, n = tmp_path_factory.mktemp("ref"), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: (execute(compose_cfg(*_overrides(name)), out / name, {}),
                       _rows(out / name)) for name in CONFIGS}
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_run_stopped_mid_round_resumes_identically(tmp_path, name, references, monkeypatch,
                                                   one_thread):
    """Stopped in the middle of round k (after the aggregation, before the step): the
    rerun loads the checkpoint of the last multiple of EVERY below k and ends with the
    reference's metrics; summary.json says where it resumed; checkpoints are deleted."""
    import byzbench.loop as loop

    k, cfg = _kill_round(name), compose_cfg(*_overrides(name))
    log_round = loop.log_round

    def dies_at_k(exp, t, *args):
        if t == k:
            raise _Killed
        return log_round(exp, t, *args)

    monkeypatch.setattr(loop, "log_round", dies_at_k)
    with pytest.raises(_Killed):
        execute(cfg, tmp_path, {})
    monkeypatch.setattr(loop, "log_round", log_round)
    assert not (tmp_path / "summary.json").exists()
    saved = (k - 1) // EVERY * EVERY
    assert [p.name for p in checkpoint_files(tmp_path)][0] == f"round_{saved:08d}.pt"
    s = execute(cfg, tmp_path, {})
    ref_summary, ref_rows = references[name]
    assert s["resumed_from"] == saved and ref_summary["resumed_from"] == 0
    pd.testing.assert_frame_equal(_rows(tmp_path), ref_rows)
    assert s["final"] == ref_summary["final"] and s["status"] == "ok"
    assert checkpoint_files(tmp_path) == []


# Gossip: every node's parameters and Adam state, a stateful per-node rule (cclip's
# centre, one pipeline per node), an adaptive per-recipient attack, a scheduler.
GOSSIP = {
    "gossip_ring_clipped_dissensus_adam": ["topology=gossip", "topology.graph=ring",
                                           "agg=clipped_gossip", "attack=dissensus",
                                           "solver=adam", "schedule=cosine",
                                           "topology.byzantine.placement=attached"],
    "gossip_er_cclip_seesaw": ["topology=gossip", "topology.graph=erdos_renyi",
                               "agg=cclip", "attack=seesaw", "solver.momentum=0.9",
                               "topology.declared_f=byzantine_neighbours",
                               "topology.byzantine.placement=attached"],
}


@pytest.mark.parametrize("name", sorted(GOSSIP))
def test_gossip_run_stopped_mid_round_resumes_identically(tmp_path, name, monkeypatch,
                                                          one_thread):
    """topology=gossip: killed in round k's communication step, the rerun resumes from
    the last checkpoint and ends with the uninterrupted run's metrics."""
    import byzbench.topology.train as gossip_train

    cfg = compose_cfg(*BASE, *GOSSIP[name])
    ref = execute(cfg, tmp_path / "ref", {})
    k, step = _kill_round(name), gossip_train.gossip_round

    def dies_at_k(topo, X, t, *args, **kw):
        if t + 1 == k:
            raise _Killed
        return step(topo, X, t, *args, **kw)

    monkeypatch.setattr(gossip_train, "gossip_round", dies_at_k)
    with pytest.raises(_Killed):
        execute(cfg, tmp_path / "run", {})
    monkeypatch.setattr(gossip_train, "gossip_round", step)
    saved = (k - 1) // EVERY * EVERY
    assert [p.name for p in checkpoint_files(tmp_path / "run")][0] == f"round_{saved:08d}.pt"
    s = execute(cfg, tmp_path / "run", {})
    assert s["resumed_from"] == saved and s["status"] == "ok"
    pd.testing.assert_frame_equal(_rows(tmp_path / "run"), _rows(tmp_path / "ref"))
    assert s["final"] == ref["final"]


def _driver(run_dir: Path, name: str, k: int, sig: str, nth: int = 1,
            extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The CLI in a subprocess (this checkout's byzbench), sending itself ``sig`` in
    round ``k``."""
    env = {**{k_: v for k_, v in os.environ.items() if k_ != "HYDRA_FULL_ERROR"},
           "PYTHONPATH": str(ROOT)}
    args = [*_overrides(name, *extra), f"hydra.run.dir={run_dir}"]
    return subprocess.run([sys.executable, str(DRIVER), str(k), sig, str(nth), *args],
                          cwd=run_dir.parent, env=env, capture_output=True, text=True,
                          timeout=600)


def _sigkill_then_sigterm(tmp_path: Path, name: str, references) -> None:
    """SIGKILL in round k1, rerun: SIGTERM in round k2 > k1 (checkpoint at the end of
    that round, exit PREEMPTED_EXIT), rerun: the run ends with the reference's metrics."""
    run = tmp_path / "run"
    run.mkdir()
    k1 = _kill_round(name)
    k1 = min(k1, ROUNDS - 2)
    k2 = k1 + 1
    r = _driver(run, name, k1, "SIGKILL")
    assert r.returncode == -9, r.stderr[-2000:]
    assert not (run / "summary.json").exists() and checkpoint_files(run)
    r = _driver(run, name, k2, "SIGTERM")
    assert r.returncode == PREEMPTED_EXIT, r.stderr[-2000:]
    assert not (run / "summary.json").exists()
    assert checkpoint_files(run)[0].name == f"round_{k2:08d}.pt"  # the end of round k2
    r = _driver(run, name, 0, "SIGTERM")  # never sent: round 0 is not a round
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((run / "summary.json").read_text())
    ref_summary, ref_rows = references[name]
    assert s["resumed_from"] == k2
    pd.testing.assert_frame_equal(_rows(run), ref_rows)
    assert s["final"] == ref_summary["final"]


def test_sigkill_in_a_subprocess_then_rerun_is_identical(tmp_path, references):
    """The CLI killed (SIGKILL) in round k, rerun: the reference's metrics."""
    name = "cclip_bucketing_momentum_adam"
    run = tmp_path / "run"
    run.mkdir()
    k = _kill_round(name)
    r = _driver(run, name, k, "SIGKILL")
    assert r.returncode == -9, r.stderr[-2000:]
    r = _driver(run, name, 0, "SIGKILL")  # never sent: round 0 is not a round
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["resumed_from"] == (k - 1) // EVERY * EVERY > 0
    pd.testing.assert_frame_equal(_rows(run), references[name][1])
    assert s["final"] == references[name][0]["final"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sigkill_and_sigterm_every_config(tmp_path, name, references):
    _sigkill_then_sigterm(tmp_path, name, references)


def _signal_in_round(monkeypatch, k: int, sig: int) -> None:
    import byzbench.loop as loop

    log_round = loop.log_round

    def signals_at_k(exp, t, *args):
        if t == k:
            os.kill(os.getpid(), sig)
        return log_round(exp, t, *args)

    monkeypatch.setattr(loop, "log_round", signals_at_k)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_signal_checkpoints_at_the_end_of_the_round_and_exits_for_requeue(
        tmp_path, sig, references, monkeypatch, one_thread):
    """In the middle of round k: the round finishes, its checkpoint is written, the run
    exits with PREEMPTED_EXIT (no summary) and the handlers are restored; the rerun
    resumes from round k, identically."""
    import signal

    name, k = "foolsgold", 5
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR1)
    cfg = compose_cfg(*_overrides(name))
    _signal_in_round(monkeypatch, k, getattr(signal, sig))
    with pytest.raises(SystemExit) as e:
        execute(cfg, tmp_path, {})
    monkeypatch.undo()
    assert e.value.code == PREEMPTED_EXIT
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR1)) == before
    assert not (tmp_path / "summary.json").exists()
    assert checkpoint_files(tmp_path)[0].name == f"round_{k:08d}.pt"
    s = execute(cfg, tmp_path, {})
    assert s["resumed_from"] == k
    pd.testing.assert_frame_equal(_rows(tmp_path), references[name][1])


def test_signal_goes_on_to_the_handler_that_was_there_first(tmp_path, monkeypatch, one_thread):
    """Under submitit, its USR2 handler (requeue, then exit) runs after the checkpoint."""
    import signal

    calls = []

    def submitit_like(signum, frame):
        calls.append(signum)
        raise SystemExit(144)

    old = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        _signal_in_round(monkeypatch, 3, signal.SIGUSR2)
        with pytest.raises(SystemExit) as e:
            execute(compose_cfg(*_overrides("seesaw_krum")), tmp_path, {})
        assert e.value.code == 144 and calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is submitit_like
        assert checkpoint_files(tmp_path)[0].name == "round_00000003.pt"
    finally:
        signal.signal(signal.SIGUSR2, old)


@pytest.mark.slow
def test_multirun_rerun_continues_the_partial_run_and_skips_finished_ones(tmp_path, references):
    """A sweep of two seeds killed (SIGKILL) in round 5 of its second run; the rerun
    skips the first (summary untouched) and resumes the second from its checkpoint."""
    name = "seesaw_krum"
    sweep = tmp_path / "sweep"
    env = {**{k_: v for k_, v in os.environ.items() if k_ != "HYDRA_FULL_ERROR"},
           "PYTHONPATH": str(ROOT)}
    args = ["-m", *_overrides(name), "seed=1,0", f"hydra.sweep.dir={sweep}"]
    cmd = [sys.executable, str(DRIVER), "5", "SIGKILL", "2", *args]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == -9, r.stderr[-2000:]
    first = (sweep / "0" / "summary.json").stat().st_mtime_ns
    assert not (sweep / "1" / "summary.json").exists() and checkpoint_files(sweep / "1")
    r = subprocess.run(cmd[:2] + ["0", "SIGKILL", "1"] + args, cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (sweep / "0" / "summary.json").stat().st_mtime_ns == first
    s = json.loads((sweep / "1" / "summary.json").read_text())
    assert s["resumed_from"] == 4 and s["seed"] == 0
    pd.testing.assert_frame_equal(_rows(sweep / "1"), references[name][1])


def _pids_with(*parts: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(x in cmd for x in parts):
                pids.append(int(p.name))
    return pids


@pytest.mark.slow
def test_submitit_local_job_signalled_is_requeued_and_resumes(tmp_path):
    """hydra/launcher=submitit_local: USR2 (submitit's preemption signal) sent to the
    running job makes it checkpoint at the end of the round and hand over to submitit,
    which requeues it (exit 144, the local requeue code); the requeued job resumes
    from that checkpoint and ends with the uninterrupted run's metrics."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import signal

    sweep = tmp_path / "sweep"
    name = "seesaw_krum"
    over = [*_overrides(name), "rounds=3000", "eval_every=1000", "checkpoint.every=50"]
    env = {**{k_: v for k_, v in os.environ.items() if k_ != "HYDRA_FULL_ERROR"},
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "byzbench.run", "-m",
                             "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20",
                             *over, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and not checkpoint_files(sweep / "0"):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.05)
        tasks = _pids_with("submitit.core._submit", str(sweep))
        assert len(tasks) == 1, tasks
        os.kill(tasks[0], signal.SIGUSR2)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    s = json.loads((sweep / "0" / "summary.json").read_text())
    assert s["status"] == "ok" and s["resumed_from"] > 0, s
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.*"))
    assert "Requeued job" in logs
    torch.set_num_threads(1)
    ref = execute(compose_cfg(*over), tmp_path / "ref", {})
    assert s["final"] == ref["final"]
    pd.testing.assert_frame_equal(_rows(sweep / "0"), _rows(tmp_path / "ref"))


# ---------------------------------------------------------------- the file format

def test_numpy_state_round_trips_through_plain_containers():
    state = {"rule": {"norm_history": np.array([1.5, 2.0]), "k": np.int64(3),
                      "mask": np.array([True, False]), "t": torch.ones(2), "none": None},
             "rows": [(1, "train", "loss", 0.5)]}
    plain = to_plain(state)
    assert isinstance(plain["rule"]["norm_history"]["__ndarray__"], torch.Tensor)
    back = from_plain(plain)
    assert back["rule"]["norm_history"].dtype == np.float64
    np.testing.assert_array_equal(back["rule"]["norm_history"], [1.5, 2.0])
    assert back["rule"]["mask"].dtype == bool and back["rule"]["k"] == 3
    assert isinstance(back["rule"]["k"], np.integer) and back["rows"] == state["rows"]
    with pytest.raises(TypeError, match=r"state\.rule\.obj: a object cannot be saved"):
        to_plain({"rule": {"obj": object()}})


class _Payload:
    """An arbitrary object: unpickling it would run code."""


def test_checkpoint_holding_an_arbitrary_object_is_refused_in_one_line(tmp_path):
    path = tmp_path / "round_00000002.pt"
    torch.save({"format": 1, "config_hash": "x", "state": {"evil": _Payload()}}, path)
    with pytest.raises(CheckpointError) as e:
        load_file(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "cannot be read" in msg


def _saved_run(tmp_path: Path, name: str = "seesaw_krum", *extra: str):
    """A run stopped after its checkpoints of rounds 4 and 6 (the two kept)."""
    cfg = compose_cfg(*_overrides(name, *extra, "rounds=7"))
    from byzbench.build import build_experiment
    from byzbench.loop import train

    exp, _ = build_experiment(cfg)
    ck = Checkpointer(tmp_path, config_hash(cfg), every=2, minutes=0)
    train(exp, after_round=lambda e, rs: ck(e, rs) or rs.t == 6)
    assert [p.name for p in checkpoint_files(tmp_path)] == ["round_00000006.pt",
                                                             "round_00000004.pt"]
    return cfg


def test_corrupt_checkpoint_falls_back_to_the_previous_then_starts_over(tmp_path, caplog):
    cfg = _saved_run(tmp_path)
    newest, previous = checkpoint_files(tmp_path)
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    caplog.set_level(logging.WARNING, logger="byzbench")
    s = execute(cfg, tmp_path, {})
    assert s["resumed_from"] == 4
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(newest) in warned[0] and "\n" not in warned[0]

    caplog.clear()
    cfg = _saved_run(tmp_path / "b")
    for p in checkpoint_files(tmp_path / "b"):
        p.write_bytes(b"garbage")
    s = execute(cfg, tmp_path / "b", {})
    assert s["resumed_from"] == 0 and s["status"] == "ok"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3 and "starting over from round 0" in warned[-1]


def test_checkpoint_of_another_config_is_one_line_and_resume_false_starts_over(tmp_path):
    _saved_run(tmp_path)
    other = compose_cfg(*_overrides("seesaw_krum", "rounds=7", "seed=5"))
    with pytest.raises(ConfigError) as e:
        execute(other, tmp_path, {})
    msg = str(e.value)
    assert "\n" not in msg and "config hash" in msg and "round_00000006.pt" in msg
    s = execute(compose_cfg(*_overrides("seesaw_krum", "rounds=7", "seed=5",
                                        "resume=false")), tmp_path, {})
    assert s["resumed_from"] == 0 and checkpoint_files(tmp_path) == []


def test_checkpoint_write_is_atomic_and_keeps_the_previous(tmp_path):
    _saved_run(tmp_path)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
    payload = load_file(checkpoint_files(tmp_path)[0])
    assert payload["round"] == 6 and payload["state"]["round"] == 6


def test_settings_are_checked_and_do_not_change_the_config_hash():
    base = compose_cfg(*BASE)
    assert config_hash(base) == config_hash(compose_cfg(*BASE, "checkpoint.every=7",
                                                        "checkpoint.minutes=1"))
    from byzbench.build import check_top

    for key, bad in (("every", -1), ("minutes", -2), ("max_share", 0)):
        with pytest.raises(ConfigError, match=f"checkpoint.{key}="):
            check_top(compose_cfg(*BASE, f"checkpoint.{key}={bad}"))


def test_time_based_checkpoints_are_spaced_by_their_write_time(tmp_path):
    """At most every ``minutes``, and never more often than write_time / max_share."""
    ck = Checkpointer(tmp_path, "h", every=0, minutes=0.5, max_share=0.02)
    ck._since = time.perf_counter() - 29
    assert not ck.due(3)
    ck._since = time.perf_counter() - 31
    assert ck.due(3)
    ck.write_s = 1.0  # a 1 s write: at most every 50 s
    assert not ck.due(3)
    ck._since = time.perf_counter() - 51
    assert ck.due(3)
    assert Checkpointer(tmp_path, "h", every=5, minutes=0).due(10)
    assert not Checkpointer(tmp_path, "h", every=5, minutes=0).due(11)


def test_unsaveable_state_fails_at_the_start_and_a_failed_write_spares_the_run(
        tmp_path, monkeypatch, caplog):
    import byzbench.checkpoint as ckpt_mod
    from byzbench.algorithms.dsgd import DSGD

    cfg = compose_cfg(*_overrides("seesaw_krum"))
    monkeypatch.setattr(DSGD, "state_dict", lambda self: {"fn": print})
    with pytest.raises(ConfigError, match=r"^checkpoint is invalid for this run: "
                                          r"state\.workers\.fn: a builtin_function"):
        execute(cfg, tmp_path / "a", {})
    monkeypatch.undo()

    def full_disk(path, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod, "save_file", full_disk)
    caplog.set_level(logging.WARNING, logger="byzbench")
    s = execute(cfg, tmp_path / "b", {})
    assert s["status"] == "ok" and s["rounds_done"] == ROUNDS
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == ROUNDS // EVERY - 1 and "No space left" in warned[0]
