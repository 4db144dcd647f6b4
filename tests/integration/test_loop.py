"""The training loop's contracts: local threat model and label flipping inside the
vectorized pass, non-finite attacks, permutation bookkeeping, every option builds."""

from __future__ import annotations

import pytest
import torch

from byzbench import ConfigError
from byzbench.attacks.base import Attack
from byzbench.build import build_experiment
from byzbench.grads import loop_grads
from byzbench.loop import train

from .conftest import TINY, compose_cfg, conf_options


class Recorder(Attack):
    """Wraps an attack and a sampler to capture what the loop gave them (the wrapped
    attack's declarations are the recorder's)."""

    def __init__(self, exp):
        self.attack, self.sample = exp.attack, exp.sampler.sample
        self.local, self.poisons_data = exp.attack.local, exp.attack.poisons_data
        self.byz_momentum = exp.attack.byz_momentum
        self.calls, self.idx = [], []
        exp.attack, exp.sampler.sample = self, self._sample

    def transform_batch(self, x, y, num_classes):
        return self.attack.transform_batch(x, y, num_classes)

    def _sample(self, rows):
        idx = self.sample(rows)
        self.idx.append(idx)
        return idx

    def __call__(self, honest, ctx):
        out = self.attack(honest, ctx)
        self.calls.append((honest.clone(), ctx, out.clone()))
        return out


def test_label_flip_trains_byzantine_rows_on_flipped_labels():
    exp, _ = build_experiment(compose_cfg(*TINY, "attack=label_flip", "rounds=2"))
    rec = Recorder(exp)
    theta0 = exp.theta.detach().clone()
    train(exp)
    n_h, f = exp.spec.n_honest, exp.spec.f
    idx = rec.idx[0]
    assert idx.shape[0] == n_h + f  # Byzantine workers computed in the same pass
    X = exp.data.prepare(exp.data.x_train[idx])
    Y = exp.data.y_train[idx]
    C = exp.data.num_classes
    flipped = torch.cat([Y[:n_h], (C - 1) - Y[n_h:]])
    G_ref, _ = loop_grads(exp.model, theta0, X, flipped)
    honest, ctx, out = rec.calls[0]
    torch.testing.assert_close(honest, G_ref[:n_h], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ctx.byz_grads, G_ref[n_h:], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out, G_ref[n_h:], rtol=1e-4, atol=1e-6)
    # and they really differ from gradients on the true labels
    G_true, _ = loop_grads(exp.model, theta0, X, Y)
    assert not torch.allclose(G_true[n_h:], G_ref[n_h:])


def test_omniscient_attack_sees_only_honest_rows_and_context():
    exp, _ = build_experiment(compose_cfg(*TINY, "attack=sign_flip", "rounds=3"))
    rec = Recorder(exp)
    train(exp)
    assert all(i.shape[0] == exp.spec.n_honest for i in rec.idx)
    assert [c[1].t for c in rec.calls] == [0, 1, 2]
    assert rec.calls[0][1].prev_aggregate is None
    assert rec.calls[1][1].prev_aggregate is not None and rec.calls[0][1].byz_grads is None
    torch.testing.assert_close(rec.calls[0][2][0], -rec.calls[0][0].mean(0))


@pytest.mark.parametrize(("attack", "agg", "status"), [
    ("nan_grad", "mean", "diverged"), ("inf_grad", "mean", "diverged"),
    ("nan_grad", "median", "ok"), ("inf_grad", "krum", "ok"), ("nan_grad", "trmean", "ok"),
])
def test_non_finite_attacks_never_crash(attack, agg, status, tmp_path):
    from byzbench.run import execute

    cfg = compose_cfg(*TINY, f"attack={attack}", f"agg={agg}", "plot=true")
    s = execute(cfg, tmp_path, {"attack": attack, "agg": agg})
    assert s["status"] == status
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "convergence.png").is_file()
    if status == "diverged":
        assert s["rounds_done"] == 1
    else:
        assert s["final"]["test_accuracy"] > 0.0


def test_byzantine_weight_is_logged_for_selection_rules():
    exp, _ = build_experiment(compose_cfg(*TINY, "attack=sign_flip", "agg=krum"))
    train(exp)
    exp.log.flush()
    w = [v for _, s, m, v in exp.log.rows if m == "byz_weight"]
    assert len(w) == exp.rounds and all(v in (0.0, 1.0) for v in w)  # Krum picks one row


SAFE = {"dataset": ["digits", "synthetic_logreg", "synthetic_linreg"]}


@pytest.mark.parametrize("group", ["attack", "agg", "preagg", "partition", "solver", "schedule"])
def test_every_option_composes_and_builds(group):
    """Each option with the default task: builds, or refuses with a one-line ConfigError."""
    for path in conf_options(group):
        opt = f"[{path.stem}]" if group == "preagg" else path.stem
        over = [*TINY, "cluster.n_workers=11", "cluster.byz_frac=0.2", f"{group}={opt}"]
        try:
            exp, info = build_experiment(compose_cfg(*over))
        except ConfigError as e:
            assert "\n" not in str(e), (path.stem, e)
            continue
        assert info["n"] == 11 and info["f"] == 2


def test_datasets_that_need_files_fail_in_one_line(tmp_path):
    for name in ("mnist", "fashion_mnist", "cifar10"):
        cfg = compose_cfg(*TINY, f"dataset={name}", f"dataset.root={tmp_path}",
                          "dataset.download=false")
        with pytest.raises(ConfigError) as e:
            build_experiment(cfg)
        assert str(tmp_path) in str(e.value) and "download" in str(e.value)
        assert "\n" not in str(e.value)
