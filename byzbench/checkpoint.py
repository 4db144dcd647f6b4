"""Checkpoints and exact resume: a killed or preempted run continues where it stopped,
with the numbers of the uninterrupted run.

A checkpoint holds everything the future of a run depends on (:func:`experiment_state`
lists it): theta, the model's buffers (BatchNorm running statistics), the optimizer's and
scheduler's state_dicts, the worker-momentum buffers, every stage's and the attack's
declared state (``state_dict()``), the workers' (algorithm's) state, every generator's
state (row permutation, sampling, attack, query, participation, the pipeline stages',
torch's global CPU generator that dropout draws from, and CUDA's on a GPU run), the
previous aggregate, the round, the round-0 statistics, the metrics logged so far, the
config hash and the device; with ``topology=gossip`` also every node's parameters and
solver state, and every node pipeline's and per-recipient attack's state
(``Gossip.state_dict``).

Files: ``<run dir>/checkpoints/round_<t>.pt``, written to a temporary file that is
renamed into place (``os.replace``) once complete; the one before is kept (the fallback
should the newest be unreadable), older ones are deleted after the write. They are read
with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, so
opening someone else's run dir never runs a pickle.
Numpy arrays in a stage's state (ClippedClustering's norm history) are stored as tensors
and restored as arrays. When a run finishes, its checkpoints are deleted.

When: every ``checkpoint.every`` rounds (0: never by count) and whenever
``checkpoint.minutes`` of wall time passed since the last one (0: never by time), the
latter spaced so that writing takes at most ``checkpoint.max_share`` of the time (the
write time is measured). SIGTERM, SIGUSR1 and SIGUSR2 (what SLURM and submitit send
before they stop a job) make the run write a checkpoint at the end of the current round
and exit with :data:`PREEMPTED_EXIT`, or through submitit's own handler (which requeues
the job) when one was installed for that signal.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from byzbench import ConfigError
from byzbench.loop import Experiment, RoundState

log = logging.getLogger("byzbench")

FORMAT = 1
KEEP = 2  # checkpoints kept per run: the newest and the one before
PREEMPTED_EXIT = 124  # exit status of a run stopped by a signal after its checkpoint
SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2")
_NAME = re.compile(r"round_(\d+)\.pt$")
_NDARRAY, _NPSCALAR = "__ndarray__", "__npscalar__"


class CheckpointError(Exception):
    """A checkpoint file that cannot be used (one line, naming the file)."""


# ---------------------------------------------------------------- plain containers

def to_plain(obj: Any, where: str = "state") -> Any:
    """``obj`` with numpy arrays and scalars replaced by tagged tensors, checked to hold
    only what ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings,
    None, dicts with string keys, lists, tuples); anything else is a TypeError naming
    its path."""
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: _np_tensor(obj, where)}
    if isinstance(obj, np.generic):
        return {_NPSCALAR: _np_tensor(np.asarray(obj), where)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} of type {type(k).__name__} cannot be saved")
            out[k] = to_plain(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        vals = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return vals if isinstance(obj, list) else tuple(vals)
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be saved in a checkpoint "
                    "(tensors, numbers, strings and containers only)")


def _np_tensor(a: np.ndarray, where: str) -> torch.Tensor:
    try:
        return torch.from_numpy(np.array(a, copy=True))
    except TypeError:
        raise TypeError(f"{where}: a numpy array of dtype {a.dtype} cannot be saved") from None


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain` (tagged tensors back to numpy arrays and scalars)."""
    if isinstance(obj, dict):
        if set(obj) == {_NDARRAY}:
            return obj[_NDARRAY].numpy().copy()
        if set(obj) == {_NPSCALAR}:
            return obj[_NPSCALAR].numpy()[()]
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_plain(v) for v in obj)
    return obj


# ---------------------------------------------------------------- experiment state

def _generators(exp: Experiment) -> dict[str, torch.Generator | None]:
    """Every generator the round draws from outside the stages (theirs are in their
    state_dicts)."""
    return {"perm": exp.sampling_gen, "sampling": exp.sampler.generator,
            "attack": exp.attack_gen, "query": exp.query_gen,
            "participation": exp.participation.generator}


def experiment_state(exp: Experiment, rs: RoundState) -> dict[str, Any]:
    """Everything the rounds after ``rs.t`` depend on, as plain containers."""
    dev = exp.theta.device
    state = {
        "round": rs.t, "prev_u": rs.prev_u, "extra": dict(rs.extra),
        "theta": exp.theta.detach(), "device": str(dev),
        "buffers": dict(exp.model.named_buffers()),
        "optimizer": exp.optimizer.state_dict(),
        "scheduler": None if exp.scheduler is None else exp.scheduler.state_dict(),
        "momentum": exp.momentum.state_dict(),
        "pipeline": exp.pipeline.state_dict(), "attack": exp.attack.state_dict(),
        "workers": exp.workers.state_dict(),
        "generators": {k: None if g is None else g.get_state()
                       for k, g in _generators(exp).items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        "log": exp.log.state_dict(),
        "topology": None if exp.topology is None else exp.topology.state_dict(),
    }
    return to_plain(state)


def load_experiment_state(exp: Experiment, state: dict[str, Any]) -> RoundState:
    """Restore what :func:`experiment_state` saved into the freshly built ``exp``;
    returns the round state the loop continues from."""
    st = from_plain(state)
    with torch.no_grad():
        exp.theta.copy_(st["theta"])
        bufs = dict(exp.model.named_buffers())
        for k, v in st["buffers"].items():
            bufs[k].copy_(v)
    exp.optimizer.load_state_dict(st["optimizer"])
    if exp.scheduler is not None:
        exp.scheduler.load_state_dict(st["scheduler"])
    exp.momentum.load_state_dict(st["momentum"])
    exp.pipeline.load_state_dict(st["pipeline"])
    exp.attack.load_state_dict(st["attack"])
    exp.workers.load_state_dict(st["workers"])
    for k, g in _generators(exp).items():
        if g is not None:
            g.set_state(st["generators"][k])
    torch.set_rng_state(st["torch_rng"])
    if st["cuda_rng"] is not None:
        torch.cuda.set_rng_state(st["cuda_rng"], exp.theta.device)
    exp.log.load_state_dict(st["log"])
    if exp.topology is not None:
        exp.topology.load_state_dict(st["topology"])
    return RoundState(t=int(st["round"]), prev_u=st["prev_u"], extra=dict(st["extra"]))


# ---------------------------------------------------------------- files

def save_file(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same dir,
    flushed to disk, then renamed over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_file(path: Path) -> dict[str, Any]:
    """A checkpoint's payload, read with ``weights_only=True``; any failure (truncated,
    corrupt, an object other than tensors, numbers, strings and containers) is one
    :class:`CheckpointError` line naming the file."""
    try:
        payload = torch.load(path, map_location=None, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                              f"{first[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a byzbench checkpoint "
                              f"(format {FORMAT})")
    return payload


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The run dir's checkpoints, latest round first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


# ---------------------------------------------------------------- the run's checkpointer

class Checkpointer:
    """Writes the checkpoints of one run and resumes it (``train``'s ``after_round``).

    Args:
        run_dir: the run's output directory.
        config_hash: the run's config hash (``byzbench.run.config_hash``).
        every: checkpoint every this many rounds (0: not by count).
        minutes: checkpoint when this much wall time passed since the last (0: not by time).
        max_share: time-based checkpoints are spaced so that write time / interval
            <= max_share.
        resume: load the latest usable checkpoint of this config (else start over).
    """

    def __init__(self, run_dir: Path, config_hash: str, every: int = 0, minutes: float = 10.0,
                 max_share: float = 0.02, resume: bool = True):
        self.dir = Path(run_dir) / "checkpoints"
        self.hash, self.every, self.minutes, self.max_share = config_hash, every, minutes, max_share
        self.resume_enabled = resume
        self.last_path: Path | None = None
        self._mine: list[Path] = []  # checkpoints of this run (loaded or written), oldest first
        self.write_s = 0.0  # duration of the last write
        self.writes = 0
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._since = time.perf_counter()

    # -- resume
    def resume(self, exp: Experiment) -> RoundState:
        """Restore ``exp`` from the latest readable checkpoint of this config and return
        where to continue; ``RoundState()`` (round 0) when there is none. A checkpoint
        of another config is a ConfigError; an unreadable one is one warning line, then
        the previous one is tried."""
        self._since = time.perf_counter()
        try:  # a state that cannot be saved fails now, not at the first checkpoint
            experiment_state(exp, RoundState())
        except TypeError as e:
            raise ConfigError(f"checkpoint is invalid for this run: {e}") from None
        if not self.resume_enabled:
            return RoundState()
        for path in checkpoint_files(self.dir.parent):
            try:
                payload = load_file(path)
            except CheckpointError as e:
                log.warning("%s; trying the previous checkpoint", e)
                continue
            if payload.get("config_hash") != self.hash:
                raise ConfigError(
                    f"resume=true is invalid here: checkpoint {path} was written by config "
                    f"hash {payload.get('config_hash')}, this run's config hash is {self.hash} "
                    "(rerun the same config, or pass resume=false or another run dir to "
                    "start over)")
            if payload["state"]["device"] != str(exp.theta.device):
                raise ConfigError(f"device={exp.theta.device} is invalid for resuming: "
                                  f"checkpoint {path} was written on {payload['state']['device']}")
            rs = load_experiment_state(exp, payload["state"])
            self.last_path, self._mine = path, [path]
            log.info("resumed from %s (round %d)", path, rs.t)
            return rs
        if checkpoint_files(self.dir.parent):
            log.warning("no readable checkpoint in %s: starting over from round 0", self.dir)
        return RoundState()

    # -- saving
    def due(self, t: int) -> bool:
        """Whether round ``t`` (rounds done) ends with a checkpoint."""
        if self.every > 0 and t % self.every == 0:
            return True
        if self.minutes <= 0:
            return False
        interval = max(60.0 * self.minutes, self.write_s / self.max_share)
        return time.perf_counter() - self._since >= interval

    def save(self, exp: Experiment, rs: RoundState) -> Path:
        """Write the checkpoint of round ``rs.t``; then delete the older ones."""
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"round_{rs.t:08d}.pt"
        save_file(path, {"format": FORMAT, "config_hash": self.hash, "round": rs.t,
                         "state": experiment_state(exp, rs)})
        # Keep this run's newest KEEP (a fallback should the newest go bad); files of
        # another config or an earlier start-over go.
        self._mine = ([p for p in self._mine if p != path] + [path])[-KEEP:]
        for old in checkpoint_files(self.dir.parent):
            if old not in self._mine:
                old.unlink(missing_ok=True)
        self.last_path = path
        self.writes += 1
        self.write_s = time.perf_counter() - t0
        self._since = time.perf_counter()
        return path

    def __call__(self, exp: Experiment, rs: RoundState) -> bool:
        """End of round ``rs.t``: checkpoint when due or when a stop signal arrived;
        True (stop the run) after a signal."""
        if rs.t >= exp.rounds:
            return False  # the run ends now: its summary follows
        if self.signum is not None or self.due(rs.t):
            try:
                self.save(exp, rs)
            except OSError as e:  # a full disk costs the checkpoint, not the run
                log.warning("checkpoint of round %d not written (%s: %s)", rs.t,
                            type(e).__name__, e)
                self._since = time.perf_counter()
        return self.signum is not None

    def clear(self) -> None:
        """Delete the checkpoints (the run finished)."""
        for p in checkpoint_files(self.dir.parent):
            p.unlink(missing_ok=True)
        if self.dir.is_dir() and not any(self.dir.iterdir()):
            self.dir.rmdir()

    # -- signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum

    @contextmanager
    def signals(self):
        """Within the block, SIGTERM, SIGUSR1 and SIGUSR2 ask for a checkpoint at the end
        of the current round and a stop (main thread only: elsewhere signals cannot be
        caught and keep their handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for name in SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        try:
            yield self
        finally:
            for sig, prev in self._previous.items():
                signal.signal(sig, prev)

    def exit_preempted(self) -> None:
        """After a signal's checkpoint: hand the signal to the handler that was there
        before (submitit's requeues the job and exits), else exit with
        :data:`PREEMPTED_EXIT`."""
        sig = self.signum
        prev = self._previous.get(sig) if sig is not None else None
        log.warning("stopped by signal %s at a checkpoint (%s): rerun with resume=true "
                    "to continue", sig, self.last_path)
        if callable(prev):
            prev(sig, None)
        raise SystemExit(PREEMPTED_EXIT)


def from_config(cfg: Any, run_dir: Path, config_hash: str) -> Checkpointer:
    """The run's checkpointer from ``cfg.checkpoint`` and ``cfg.resume``."""
    c = cfg.checkpoint
    return Checkpointer(run_dir, config_hash, every=int(c.every), minutes=float(c.minutes),
                        max_share=float(c.max_share), resume=bool(cfg.get("resume", True)))
