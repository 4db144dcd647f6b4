"""``byzbench``: the Hydra entrypoint. compose -> build -> train -> write files.

The config directory is located from this file (absolute path), so the installed
console script works from any directory, editable or not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from byzbench import ConfigError
from byzbench.config import check_overrides, register
from byzbench.metrics import versions, write_summary

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
log = logging.getLogger("byzbench")

register()


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config minus keys that do not change the numbers."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for k in ("progress", "plot", "threads", "resume", "checkpoint"):
        c.pop(k, None)
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _set_threads(cfg: DictConfig, hc: Any) -> None:
    threads = cfg.threads
    if threads == "auto":
        launcher = str(OmegaConf.select(hc, "launcher._target_", default=""))
        threads = 1 if "joblib" in launcher.lower() else None
    if threads:
        torch.set_num_threads(int(threads))


def execute(cfg: DictConfig, out_dir: Path, choices: dict[str, Any],
            overrides: list[str] | None = None) -> dict[str, Any]:
    """Build and train one run; write metrics.csv, summary.json, convergence.png.
    Returns the summary."""
    from byzbench.build import build_experiment
    from byzbench.checkpoint import from_config
    from byzbench.loop import train

    check_overrides(list(overrides or []))
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    summary: dict[str, Any] = {
        "choices": choices, "seed": int(cfg.seed), "config_hash": config_hash(cfg),
        "overrides": list(overrides or []), "versions": versions(),
    }
    exp, info = build_experiment(cfg)
    summary.update(info)
    ckpt = from_config(cfg, out_dir, summary["config_hash"])
    state = ckpt.resume(exp)  # round 0 unless a checkpoint of this config is there
    summary["resumed_from"] = state.t
    with ckpt.signals():
        result = train(exp, state, after_round=ckpt)
    metrics_csv = out_dir / "metrics.csv"
    exp.log.write_csv(metrics_csv)
    if result.status == "preempted":  # checkpoint written: no summary, the run goes on later
        ckpt.exit_preempted()
    summary.update(status=result.status, rounds_done=result.rounds_done, final=result.final,
                   wall_time=time.time() - start, **result.extra)
    write_summary(out_dir / "summary.json", summary)
    ckpt.clear()
    if cfg.plot:
        title = " ".join(f"{k}={v}" for k, v in choices.items() if v is not None)
        from byzbench.plots import convergence_plot  # matplotlib only when plotting

        convergence_plot(metrics_csv, out_dir / "convergence.png", title)
    return summary


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = list(hc.overrides.task)
    _set_threads(cfg, hc)
    done = finished_summary(out_dir, cfg)
    if done is not None:
        log.info("skipped: %s already holds a finished run of this config", out_dir)
        if not multirun:
            print(f"byzbench: run dir {out_dir}")
        return _objective(done.get("final", {}))
    try:
        summary = execute(cfg, out_dir, choices, overrides)
    except ConfigError as e:
        if not multirun:
            print(f"byzbench: error: {e}", file=sys.stderr)
            sys.exit(2)
        _write_failed(out_dir, cfg, choices, f"ConfigError: {e}", overrides=overrides)
        log.error("run failed: %s", e)
        return None
    except Exception as e:  # noqa: BLE001 - one failing run must not stop a sweep
        _write_failed(out_dir, cfg, choices, f"{type(e).__name__}: {e}", traceback.format_exc(),
                      overrides=overrides)
        if not multirun and _out_of_memory(e):
            print(f"byzbench: error: out of memory ({type(e).__name__}): the setting asks for "
                  "more than this machine has (batch_size, cluster.n_workers, model size)",
                  file=sys.stderr)
            sys.exit(2)
        if not multirun:
            raise
        log.error("run failed: %s: %s", type(e).__name__, e)
        return None
    final = summary["final"]
    log.info("status=%s %s", summary["status"],
             " ".join(f"{k}={v:.4g}" for k, v in final.items()))
    if not multirun:  # a multirun prints its sweep dir once, at the end (SweepDirCallback)
        print(f"byzbench: run dir {out_dir}")
    return _objective(final)


class SweepDirCallback(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml): when a multirun ends,
    print its sweep directory and the command that tabulates it."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = str(Path(str(config.hydra.sweep.dir)).absolute())
        print(f"byzbench: sweep dir {sweep}\nbyzbench: report with: byzbench-report "
              f"{shlex.quote(sweep)}")


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "allocate" in str(e) or "out of memory" in str(e)))


def _objective(final: dict[str, Any]) -> float | None:
    """What a sweeper optimizes: test accuracy, or test loss for regression."""
    return final.get("test_accuracy", final.get("test_loss"))


def finished_summary(out_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The summary in ``out_dir`` if it records a finished run (status ok or diverged)
    of the same resolved config (hash), else None: rerunning a sweep into the same
    sweep dir skips finished runs and reruns failed or missing ones."""
    path = out_dir / "summary.json"
    if not cfg.get("resume", True) or not path.is_file():
        return None
    try:
        s = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if s.get("status") in ("ok", "diverged") and s.get("config_hash") == config_hash(cfg):
        return s
    return None


def _write_failed(out_dir: Path, cfg: DictConfig, choices: dict[str, Any], error: str,
                  tb: str | None = None, overrides: list[str] | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"status": "failed", "error": error, "choices": choices,
                               "seed": int(cfg.seed), "overrides": overrides or [],
                               "versions": versions()}
    try:  # n and f when the cluster itself is valid
        from byzbench.build import check_top

        spec = check_top(cfg)
        summary.update(n=spec.n, f=spec.f, f_declared=spec.f_declared)
    except Exception:  # noqa: BLE001 - the cluster may be what failed
        pass
    try:
        summary["config_hash"] = config_hash(cfg)
    except Exception:  # noqa: BLE001 - an unresolvable config is itself the error
        pass
    if tb:
        summary["traceback"] = tb
    write_summary(out_dir / "summary.json", summary)


def main() -> None:
    """Console-script entry point."""
    hydra_main()


if __name__ == "__main__":
    main()
