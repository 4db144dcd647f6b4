"""Fake run dirs for the report tests: summary.json, metrics.csv, .hydra/overrides.yaml
and (optionally) .hydra/config.yaml, as byzbench writes them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def fake_run(root: Path, name: str, *, overrides: list[str], seed: int,
             curves: dict[str, list[float]], choices: dict | None = None, n: int = 10,
             f: int = 2, status: str = "ok", config: dict | None = None) -> Path:
    """A run dir whose ``metrics.csv`` holds ``curves`` (``"test_accuracy": [v0, v1, ...]``
    logged at rounds 0, 1, 2, ...); the final values are the curves' last ones.
    ``overrides`` are Hydra's ``key=value`` strings; choices default to the group
    overrides among them."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    ov = [*overrides, f"seed={seed}"]
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
    if config is not None:
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    groups = ("dataset", "model", "attack", "agg", "solver", "schedule", "partition",
              "experiment")
    ch = {"dataset": "digits", "model": "mlp", "solver": "sgd", "schedule": "constant",
          "partition": "iid", "experiment": None}
    ch.update({k: v for k, v in (o.split("=", 1) for o in overrides) if k in groups})
    ch.update(choices or {})
    rows = ["round,split,metric,value"]
    final = {}
    for key, vals in curves.items():
        split, metric = key.split("_", 1)
        rows += [f"{t},{split},{metric},{v}" for t, v in enumerate(vals)]
        final[key] = vals[-1]
    (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    s = {"status": status, "choices": ch, "seed": seed, "n": n, "f": f, "f_declared": f,
         "overrides": ov, "config_hash": "x", "wall_time": 1.0, "rounds_done": 2,
         "final": final}
    (d / "summary.json").write_text(json.dumps(s))
    return d


def multirun_yaml(root: Path, params: dict[str, str]) -> None:
    """The sweep's ``multirun.yaml`` (the order of swept values)."""
    lines = ["hydra:", "  sweeper:", "    params:"]
    lines += [f"      {k}: {v}" for k, v in params.items()]
    (root / "multirun.yaml").write_text("\n".join(lines) + "\n")


N, F = 20, 4  # f/n = 0.2


def write_run(root: Path, name: str, *, attack: str, agg: str, solver: str, seed: int,
              acc: float | None, loss: float | str = 1.0, status: str = "ok",
              byz_weight: list[float] | None = None, overrides: list[str] | None = None,
              n: int = N, f: int = F) -> Path:
    """A run dir as byzbench writes it: summary.json + metrics.csv (+ .hydra/overrides)."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    ov = [f"attack={attack}", f"agg={agg}", f"solver={solver}", f"seed={seed}",
          "progress=false"] + (overrides or [])
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
    choices = {"dataset": "digits", "model": "mlp", "attack": attack, "agg": agg,
               "solver": solver, "schedule": "constant", "partition": "iid",
               "experiment": None}
    s: dict = {"status": status, "choices": choices, "seed": seed}
    if status == "failed":
        s["error"] = "ConfigError: agg.f=4 is invalid: bulyan needs n >= 4f + 3"
    else:
        s.update(n=n, f=f, f_declared=f, overrides=ov, config_hash="x", wall_time=1.0,
                 rounds_done=4, final={"test_accuracy": acc, "test_loss": loss})
        rows = ["round,split,metric,value"]
        for t in range(5):
            if t % 2 == 0:
                rows.append(f"{t},test,accuracy,{acc * t / 4}")
            if t > 0:
                rows.append(f"{t},train,loss,{2.0 / t}")
                if byz_weight is not None:
                    rows.append(f"{t},train,byz_weight,{byz_weight[t - 1]}")
                rows.append(f"{t},time,round,0.01")
        (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    (d / "summary.json").write_text(json.dumps(s))
    return d
