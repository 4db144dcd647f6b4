"""Every parameter of every option, and every top-level key, fed bad values: a wrong
type, a negative, zero, nan, inf, an empty string and a huge value. Each gives one
ConfigError line that names the key, or is accepted by the component (the accepted
cases are counted and printed with ``-s``: a documented acceptance, e.g. a negative
``attack.z`` flips ALIE's side); never another exception."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from byzbench import ConfigError
from byzbench.build import build_solver, instantiate_component
from byzbench.run import CONF_DIR

BAD = {"wrong type": ["x"], "negative": -1, "zero": 0, "nan": math.nan, "inf": math.inf,
       "empty string": "", "huge": 10**12}
GROUPS = ("agg", "preagg", "attack", "partition", "algorithm", "schedule", "solver", "model",
          "dataset")
# What build.py injects per group (shapes of a small classification task).
SHAPES = {"resnet20": (3, 32, 32), "resnet20_bn": (3, 32, 32), "lenet": (1, 28, 28),
          "cnn": (1, 28, 28), "epfml_cnn": (1, 28, 28), "byzfl_cnn_mnist": (1, 28, 28),
          "byzfl_fc_mnist": (1, 28, 28)}


def _inject(group: str, option: str) -> dict:
    g = torch.Generator().manual_seed(0)
    if group in ("agg", "preagg"):
        return {"n": 12, "f": 2, "generator": g}
    if group == "attack":
        return {"n": 12, "f": 2, "f_declared": 2, "num_classes": 10}
    if group == "model":
        return {"input_shape": SHAPES.get(option, (64,)), "num_classes": 10}
    if group == "dataset":
        return {"generator": g}
    if group == "algorithm":
        return {"model": torch.nn.Linear(4, 2), "task": "classification", "grad_path": "loop"}
    if group == "solver":
        return {"params": [torch.zeros(3, requires_grad=True)]}
    if group == "schedule":
        opt = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1)
        return {"optimizer": opt}
    return {}


def _cases():
    for group in GROUPS:
        for path in sorted((Path(CONF_DIR) / group).rglob("*.yaml")):
            node = yaml.safe_load(path.read_text()) or {}
            option = str(path.relative_to(Path(CONF_DIR) / group).with_suffix(""))
            for key in node:
                if not key.startswith("_") and key not in ("root", "download", "val_frac",
                                                           "tune", "server_randomness"):
                    yield group, option, key, node


CASES = list(_cases())
ACCEPTED: list[str] = []


@pytest.mark.parametrize("group, option, key, node", CASES,
                         ids=[f"{g}/{o}.{k}" for g, o, k, _ in CASES])
def test_bad_values_are_one_line_errors_or_accepted(group, option, key, node, tmp_path,
                                                    one_thread):
    for what, value in BAD.items():
        bad = dict(node, **{key: value})
        if group == "dataset":
            bad["root"] = str(tmp_path)  # never a download, never the user's data
            if "max_train" in bad and key != "max_train":
                bad["max_train"] = 64
        try:
            if group == "solver":  # through the solver's own build step (its checks)
                build_solver(bad, None, torch.zeros(3, requires_grad=True))
            elif group == "schedule":
                build_solver({"_target_": "torch.optim.SGD", "lr": 0.1}, bad,
                             torch.zeros(3, requires_grad=True))
            else:
                instantiate_component(bad, group, **_inject(group, option))
        except ConfigError as e:
            msg = str(e)
            assert "\n" not in msg, msg
            assert f"{group}.{key}" in msg or f"{group} is invalid" in msg or group in msg, msg
        else:
            ACCEPTED.append(f"{group}/{option}.{key}={value!r} ({what})")


def test_fuzz_counts(capsys):
    """Prints the fuzz's counts (keys x values, accepted) for the closing note."""
    with capsys.disabled():
        print(f"\nfuzz: {len(CASES)} keys x {len(BAD)} bad values = {len(CASES) * len(BAD)} "
              f"tries; {len(ACCEPTED)} accepted")


TOP = ("seed", "rounds", "batch_size", "eval_every", "eval_train", "device", "threads",
       "worker_momentum", "worker_momentum_style", "grad_path", "progress", "plot", "resume",
       "cluster.n_workers", "cluster.byz_frac", "cluster.f_declared", "cluster.byz_data",
       "cluster.participation", "cluster.byz_per_round")
HYDRA_BAD = {"wrong type": "[x]", "negative": "-1", "zero": "0", "nan": "nan", "inf": "inf",
             "empty string": "''", "huge": str(10**12)}


@pytest.mark.parametrize("key", TOP)
def test_top_level_bad_values_are_one_line_errors(key):
    """Hydra's schema rejects a wrong type naming the key (its own short message);
    ``check_top`` rejects a bad value in one line naming the key; ``seed=-1`` is one."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from byzbench.build import check_top

    for what, value in HYDRA_BAD.items():
        try:
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                cfg = compose(config_name="config", overrides=[f"{key}={value}"])
        except ConfigCompositionException as e:
            assert key.split(".")[-1] in str(e) or key in str(e.__cause__), (what, str(e))
            continue
        try:
            check_top(cfg)
        except ConfigError as e:
            assert "\n" not in str(e) and key in str(e), str(e)
        else:
            ACCEPTED.append(f"{key}={value} ({what})")


@pytest.mark.parametrize("key", ["eval_train", "progress", "plot", "resume"])
@pytest.mark.parametrize("value", ["0", "-1", "maybe", str(10**12)])
def test_top_level_booleans_take_only_true_or_false(key, value):
    from byzbench.config import check_overrides

    with pytest.raises(ConfigError, match=f"{key}='{value}' is invalid: true or false"):
        check_overrides([f"{key}={value}"])
    check_overrides([f"{key}=true", f"{key}=False"])
