"""``--select``: worst-case hyperparameter selection on the validation split, on a
synthetic sweep whose answers are written down here."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from byzbench import report
from byzbench.report.select import select_hparams

from .fakes import fake_run, multirun_yaml

ATTACKS = ("none", "alie", "sign_flip")
COMBOS = (("0.1", "0.0"), ("0.1", "0.9"), ("0.01", "0.0"), ("0.01", "0.9"))  # (lr, momentum)
# Final validation accuracy per (rule, lr, momentum): (none, alie, sign_flip).
VAL = {
    ("mean", "0.1", "0.0"): (0.90, 0.30, 0.50),   # worst 0.30
    ("mean", "0.1", "0.9"): (0.85, 0.60, 0.55),   # worst 0.55  <- chosen (final)
    ("mean", "0.01", "0.0"): (0.95, 0.20, 0.52),  # worst 0.20: best without attack, not chosen
    ("mean", "0.01", "0.9"): (0.80, 0.50, 0.54),  # worst 0.50
    ("krum", "0.1", "0.0"): (0.88, 0.70, 0.40),   # worst 0.40
    ("krum", "0.1", "0.9"): (0.86, 0.45, 0.65),   # worst 0.45
    ("krum", "0.01", "0.0"): (0.90, 0.62, 0.61),  # worst 0.61  <- chosen (first of a tie)
    ("krum", "0.01", "0.9"): (0.89, 0.61, 0.66),  # worst 0.61
}
# --best: (mean, 0.01, 0.0) peaks at 0.70 under alie and sign_flip at round 1, so its
# best-over-time worst case is min(0.95, 0.70, 0.70) = 0.70 > 0.55: chosen instead.
PEAK = {("mean", "0.01", "0.0", "alie"): 0.70, ("mean", "0.01", "0.0", "sign_flip"): 0.70}


def _curve(final: float, peak: float | None) -> list[float]:
    return [0.0, final / 2 if peak is None else peak, final]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sel"
    i = 0
    for (rule, lr, mom), vals in VAL.items():
        for attack, v in zip(ATTACKS, vals):
            for seed, eps in ((0, 0.01), (1, -0.01)):  # mean over seeds = v
                peak = PEAK.get((rule, lr, mom, attack))
                # test accuracy = validation - 0.05 (curves likewise)
                fake_run(root, str(i), seed=seed, overrides=[
                    f"agg={rule}", f"attack={attack}", f"solver.lr={lr}",
                    f"worker_momentum={mom}"], curves={
                    "val_accuracy": _curve(v + eps, peak),
                    "test_accuracy": _curve(v - 0.05 + eps, None if peak is None
                                            else peak - 0.05)})
                i += 1
    multirun_yaml(root, {"agg": "mean,krum", "attack": ",".join(ATTACKS),
                         "solver.lr": "0.1,0.01", "worker_momentum": "0.0,0.9"})
    return root


def _select(root: Path, how: str = "final"):
    runs = report.load_runs(root)
    res = report.load_results(root, runs)
    return select_hparams(runs, res, ["solver.lr", "worker_momentum"], how,
                          order=report._sweep_order(root))


def test_select_picks_best_worst_case_on_validation(sweep):
    table, chosen = _select(sweep)
    got = {r.rule: (r["solver.lr"], r["worker_momentum"], round(r.val_worst, 9),
                    round(r.test_worst, 9), r.worst_attack, r.n_combos)
           for _, r in table.iterrows()}
    assert got == {
        "mean": ("0.1", "0.9", 0.55, 0.50, "sign_flip", 4),
        # tie at 0.61 with (0.01, 0.9): the first in sweep order wins
        "krum": ("0.01", "0.0", 0.61, 0.56, "sign_flip", 4),
    }
    # the chosen runs: 3 attacks x 2 seeds per rule, at the chosen values only
    assert len(chosen) == 12
    assert set(zip(chosen["agg"], chosen["solver.lr"], chosen["worker_momentum"])) == {
        ("mean", "0.1", "0.9"), ("krum", "0.01", "0.0")}


def test_select_best_over_time(sweep):
    table, _ = _select(sweep, "best")
    m = table[table.rule == "mean"].iloc[0]
    assert (m["solver.lr"], m["worker_momentum"]) == ("0.01", "0.0")
    assert m.val_worst == pytest.approx(0.70)
    # test at the chosen values, best over time: min(0.90, 0.65, 0.65) (peaks - 0.05)
    assert m.test_worst == pytest.approx(0.65)


def test_select_missing_attack_is_never_chosen(sweep):
    """A combination whose runs against one attack all failed counts as the worst."""
    runs = report.load_runs(sweep)
    bad = (runs["agg"] == "mean") & (runs["solver.lr"] == "0.1") & \
        (runs.worker_momentum == "0.9") & (runs.attack == "alie")
    runs.loc[bad, "status"] = "failed"
    table, _ = select_hparams(runs, report.load_results(sweep, runs),
                              ["solver.lr", "worker_momentum"])
    m = table[table.rule == "mean"].iloc[0]
    assert (m["solver.lr"], m["worker_momentum"], m.val_worst) == ("0.01", "0.9",
                                                                    pytest.approx(0.50))


def test_select_cli_writes_table_and_errors(sweep, tmp_path, capsys):
    out = tmp_path / "rep"
    report.main([str(sweep), "--out", str(out), "--select", "solver.lr,worker_momentum",
                 "--quiet"])
    md = (out / "hparams.md").read_text()
    assert "| mean | 0.1 | 0.9 | 0.550 | 0.500 (sign_flip) | 4 |" in md
    assert (out / "hparams.csv").is_file()
    with pytest.raises(SystemExit) as e:
        report.main([str(sweep), "--out", str(out), "--select", "solver.momentum"])
    assert e.value.code == 2 and "--select solver.momentum" in capsys.readouterr().err


def test_select_needs_a_validation_split(tmp_path, capsys):
    root = tmp_path / "noval"
    for i, (lr, attack) in enumerate(itertools.product(("0.1", "0.01"), ATTACKS)):
        fake_run(root, str(i), seed=0, overrides=[f"attack={attack}", f"solver.lr={lr}"],
                 curves={"test_accuracy": [0.1, 0.5]})
    with pytest.raises(SystemExit) as e:
        report.main([str(root), "--select", "solver.lr", "--quiet"])
    assert e.value.code == 2 and "dataset.val_frac" in capsys.readouterr().err


def test_heatmaps_at_the_selected_values(sweep, tmp_path):
    """--select with --heatmaps: each heatmap cell uses the selected hyperparameters, so
    (one f, one partition here) it is the selection's worst-case test accuracy."""
    out = tmp_path / "rep"
    report.write_report(sweep, out, quiet=True, select=["solver.lr", "worker_momentum"],
                        heatmaps=True)
    import pandas as pd

    grid = pd.read_csv(out / "heatmap_worst_test_accuracy.csv")
    got = dict(zip(grid["rule"], grid["value"].round(9)))
    assert got == {"mean": 0.50, "krum": 0.56}
