"""byzbench.report on a synthetic sweep dir written here, with hand-computed tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from byzbench import report
from byzbench.report.loading import ReportError
from byzbench.report.versus import versus_table

from .fakes import write_run


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """attack {none, seesaw} x rule {mean, krum} x solver {sgd, adam} x seed {0, 1}."""
    root = tmp_path / "sweep"
    acc = {  # (solver, agg, attack): (seed 0, seed 1)
        ("sgd", "mean", "none"): (0.90, 0.94), ("sgd", "mean", "seesaw"): (0.10, 0.30),
        ("sgd", "krum", "none"): (0.88, 0.88), ("sgd", "krum", "seesaw"): (0.50, 0.10),
        ("adam", "mean", "none"): (0.96, 0.98), ("adam", "mean", "seesaw"): (0.40, 0.60),
        ("adam", "krum", "none"): (0.90, 0.92), ("adam", "krum", "seesaw"): (0.70, None),
    }
    i = 0
    for (solver, agg, attack), vals in acc.items():
        for seed, a in enumerate(vals):
            kw: dict = {}
            if agg == "krum":  # Krum selects one row: weight 1 on it, 0 elsewhere
                kw["byz_weight"] = [1, 0, 1, 0] if seed == 0 else [1, 1, 1, 0]
            else:
                kw["byz_weight"] = [0.2] * 4  # the mean gives every row 1/n: f/n = 0.2
            if (solver, agg, attack, seed) == ("sgd", "krum", "seesaw", 1):
                kw.update(status="diverged", loss="nan")
            if a is None:
                kw["status"] = "failed"
            write_run(root, str(i), attack=attack, agg=agg, solver=solver, seed=seed, acc=a,
                      **kw)
            i += 1
    (root / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      attack: none,seesaw\n      agg: mean,krum\n"
        "  overrides:\n    task:\n    - solver=sgd,adam\n    - seed=0,1\n")
    return root


def _cell(fin: pd.DataFrame, group: str, rule: str, attack: str) -> pd.Series:
    r = fin[(fin.group == group) & (fin.rule == rule) & (fin.attack == attack)]
    assert len(r) == 1
    return r.iloc[0]


def test_load_runs_and_tidy_store(sweep):
    runs = report.load_runs(sweep)
    assert len(runs) == 16
    # job dirs sort numerically (2 before 10), like Hydra's job numbers
    assert runs["run"].tolist()[:3] == ["0", "1", "2"] and runs["run"].iloc[10] == "10"
    assert (runs.status == "failed").sum() == 1 and (runs.status == "diverged").sum() == 1
    failed = runs[runs.status == "failed"].iloc[0]
    # failed summaries hold no overrides: they come from .hydra/overrides.yaml
    assert (failed["solver"], failed["agg"], failed["seed"]) == ("adam", "krum", 1)
    assert "bulyan" in failed.error
    assert runs.byz_frac.dropna().eq(0.2).all()
    res = report.load_results(sweep, runs)
    # per ok/diverged run: 3 accuracy + 4 loss + 4 byz_weight + 4 time rows = 15; 15 runs
    assert len(res) == 15 * 15
    for c in ("run", "attack", "agg", "solver", "seed", "round", "split", "metric", "value"):
        assert c in res.columns
    one = res[(res.run == "1") & (res.metric == "accuracy")]
    assert one["round"].tolist() == [0, 2, 4]
    assert one["value"].tolist() == pytest.approx([0.0, 0.94 / 2, 0.94])


def test_final_table_mean_sd_over_seeds(sweep):
    runs = report.add_labels(report.load_runs(sweep))
    assert report.varying(runs) == ["attack", "agg", "solver"]
    assert set(runs.group) == {"solver=sgd", "solver=adam"}
    fin = report.final_table(runs, "test_accuracy")
    c = _cell(fin, "solver=sgd", "mean", "none")
    # mean (0.90 + 0.94) / 2 = 0.92; sd = sqrt(2 * 0.02^2 / (2 - 1)) = 0.0282843
    assert c["mean"] == pytest.approx(0.92)
    assert c["sd"] == pytest.approx(math.sqrt(2 * 0.02**2))
    c = _cell(fin, "solver=sgd", "mean", "seesaw")  # (0.1 + 0.3) / 2, sd sqrt(2 * 0.1^2)
    assert (c["mean"], c["sd"]) == pytest.approx((0.2, math.sqrt(0.02)))
    c = _cell(fin, "solver=sgd", "krum", "seesaw")  # the diverged seed counts: (0.5 + 0.1) / 2
    assert (c["mean"], c["n_diverged"], c["n_seeds"]) == (pytest.approx(0.3), 1, 2)
    c = _cell(fin, "solver=adam", "krum", "seesaw")  # seed 1 failed: one seed, no sd
    assert (c["mean"], c["n_seeds"], c["n_failed"]) == (pytest.approx(0.7), 1, 1)
    assert math.isnan(c["sd"])
    # losses: the diverged run's non-finite loss counts as +inf, the worst value
    lf = report.final_table(runs, "test_loss")
    assert math.isinf(_cell(lf, "solver=sgd", "krum", "seesaw")["mean"])


def test_worst_case_over_attacks(sweep):
    runs = report.add_labels(report.load_runs(sweep))
    wc = report.worst_case(report.final_table(runs, "test_accuracy"), "test_accuracy")
    got = {(r.group, r.rule): (r.worst_attack, round(r["mean"], 6)) for _, r in wc.iterrows()}
    assert got == {
        ("solver=sgd", "mean"): ("seesaw", 0.2),     # min(0.92, 0.20)
        ("solver=sgd", "krum"): ("seesaw", 0.3),     # min(0.88, 0.30)
        ("solver=adam", "mean"): ("seesaw", 0.5),    # min(0.97, 0.50)
        ("solver=adam", "krum"): ("seesaw", 0.7),    # min(0.91, 0.70)
    }
    wl = report.worst_case(report.final_table(runs, "test_loss"), "test_loss")
    assert wl[(wl.group == "solver=sgd") & (wl.rule == "krum")].worst_attack.item() == "seesaw"


def test_selection_rate(sweep):
    runs = report.add_labels(report.load_runs(sweep))
    res = report.load_results(sweep, runs.drop(columns=["attack_label", "rule_label", "group"]))
    sel = report.selection_rate(res, runs)
    k = sel[(sel.group == "solver=sgd") & (sel.rule == "krum") & (sel.attack == "none")].iloc[0]
    # seed 0: mean(1, 0, 1, 0) = 0.5; seed 1: mean(1, 1, 1, 0) = 0.75; over seeds 0.625
    assert k["rate"] == pytest.approx(0.625) and k["f_over_n"] == pytest.approx(0.2)
    m = sel[(sel.rule == "mean")]
    assert m["rate"].to_numpy() == pytest.approx([0.2] * len(m))
    # adam/krum/seesaw: seed 1 failed (no metrics), so only seed 0: 0.5
    a = sel[(sel.group == "solver=adam") & (sel.rule == "krum") & (sel.attack == "seesaw")]
    assert a["rate"].item() == pytest.approx(0.5) and a["n_seeds"].item() == 1


def test_write_report_files_and_markdown(sweep, tmp_path, capsys):
    out = tmp_path / "rep"
    paths = report.write_report(sweep, out)
    for name in ("runs.csv", "results.csv", "results.parquet", "final_test_accuracy.md",
                 "worst_case_test_accuracy.md", "selection.md", "failed.md"):
        assert (out / name).is_file(), name
    assert paths["results_csv"] == out / "results.csv"
    back = pd.read_parquet(out / "results.parquet")
    assert len(back) == len(pd.read_csv(out / "results.csv")) == 225
    md = (out / "final_test_accuracy.md").read_text()
    # rows and columns follow the sweep's order (multirun.yaml), not the alphabet
    assert "| rule | none | seesaw |" in md
    assert md.index("| mean |") < md.index("| krum |")
    assert md.index("solver=sgd") < md.index("solver=adam")
    assert "| mean | 0.920 ± 0.028 | 0.200 ± 0.141 |" in md
    assert "0.700 [1 failed]" in md and "0.300 ± 0.283 [1 div]" in md
    wc = (out / "worst_case_test_accuracy.md").read_text()
    assert "| mean | 0.200 ± 0.141 (seesaw) | 0.500 ± 0.141 (seesaw) |" in wc
    assert "| krum | 0.625 |" in (out / "selection.md").read_text()
    assert "bulyan needs n >= 4f + 3" in (out / "failed.md").read_text()
    assert "| mean | 0.920 ± 0.028" in capsys.readouterr().out


def test_swept_parameters_become_labels_and_groups(tmp_path):
    root = tmp_path / "abl"
    i = 0
    for period in ("1", "10"):
        for bf, f in (("0.2", 4), ("0.4", 8)):
            for agg in ("median", "krum"):
                write_run(root, str(i), attack="seesaw", agg=agg, solver="sgd", seed=0,
                          acc=0.5, overrides=[f"attack.period={period}",
                                              f"cluster.byz_frac={bf}"], f=f)
                i += 1
    runs = report.add_labels(report.load_runs(root))
    assert set(runs.attack_label) == {"seesaw(period=1)", "seesaw(period=10)"}
    assert set(runs.group) == {"cluster.byz_frac=0.2", "cluster.byz_frac=0.4"}
    assert sorted(set(runs.byz_frac)) == [0.2, 0.4]
    text = report.tables(runs.drop(columns=["attack_label", "rule_label", "group"]),
                         report.load_results(root))["final_test_accuracy"]
    assert "| rule | seesaw(period=1) | seesaw(period=10) |" in text


def test_cli_errors_on_empty_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        report.main([str(tmp_path)])
    assert e.value.code == 2
    assert "no run dir" in capsys.readouterr().err


def test_tail_mean_over_the_last_rounds(sweep, tmp_path):
    res = report.load_results(sweep)
    tm = report.tail_mean(res, "test", "accuracy", window=3)
    # test accuracy is logged at rounds 0, 2, 4 as acc * t / 4; rounds > 4 - 3 are 2 and 4:
    # (acc / 2 + acc) / 2 = 0.75 acc; run 0 has acc 0.90 -> 0.675
    assert tm["0"] == pytest.approx(0.675)
    assert "15" not in tm.index  # the failed run has no metrics
    report.write_report(sweep, tmp_path / "rep", tail=3, quiet=True)
    md = (tmp_path / "rep" / "final_tail3_test_accuracy.md").read_text()
    # sgd/mean/none: seeds 0.75 * 0.90 = 0.675 and 0.75 * 0.94 = 0.705 -> 0.690 ± 0.021
    assert "| mean | 0.690 ± 0.021 |" in md
    assert (tmp_path / "rep" / "worst_case_tail3_test_accuracy.md").is_file()


def test_versus_pairs_seeds_and_counts(sweep, tmp_path, capsys):
    runs = report.add_labels(report.load_runs(sweep))
    vt = versus_table(runs, "test_accuracy", "none").set_index(["group", "rule"])
    m = vt.loc[("solver=sgd", "mean")]
    assert m["diff"] == pytest.approx(-0.72) and m["n_pairs"] == 2
    assert m["sd"] == pytest.approx(math.sqrt(2) * 0.08)  # diffs -0.80, -0.64
    k = vt.loc[("solver=sgd", "krum")]  # the diverged seed counts with its recorded value
    assert k["diff"] == pytest.approx(-0.58) and k["n_pairs"] == 2
    a = vt.loc[("solver=adam", "krum")]  # the failed seed drops out of the pair
    assert a["diff"] == pytest.approx(-0.20) and a["n_pairs"] == 1 and math.isnan(a["sd"])
    report.write_report(sweep, tmp_path / "rep", versus="none")
    text = (tmp_path / "rep" / "versus_none_test_accuracy.md").read_text()
    assert "| mean | -0.720 ± 0.113 * |" in text
    assert "| seesaw | 4 | 4 | 4 | 0 |" in text
    with pytest.raises(ReportError, match="--versus alie"):
        versus_table(runs, "test_accuracy", "alie")


def test_versus_pairs_attack_parameters(tmp_path):
    root = tmp_path / "caps"
    i = 0
    for cap, fn, ss in (("0.5", 0.9, 0.85), ("8", 0.9, 0.5)):
        for attack, acc in (("finite_norm", fn), ("seesaw", ss)):
            for seed in (0, 1):
                write_run(root, str(i), attack=attack, agg="mean", solver="sgd", seed=seed,
                          acc=acc + 0.01 * seed, overrides=[f"attack.cap={cap}"])
                i += 1
    vt = versus_table(report.add_labels(report.load_runs(root)), "test_accuracy", "finite_norm")
    got = dict(zip(vt["attack"], vt["diff"]))
    assert got == pytest.approx({"seesaw(cap=0.5)": -0.05, "seesaw(cap=8)": -0.40})
    assert (vt["n_pairs"] == 2).all() and (vt["sd"].abs() < 1e-12).all()


def test_group_label_leaves_out_keys_a_run_does_not_have(tmp_path):
    root = tmp_path / "base"
    write_run(root, "0", attack="none", agg="mean", solver="sgd", seed=0, acc=0.9)
    write_run(root, "1", attack="none", agg="mean", solver="sgd", seed=0, acc=0.8,
              overrides=["partition.alpha=0.3"])
    runs = report.add_labels(report.load_runs(root))
    assert sorted(runs.group) == ["", "partition.alpha=0.3"]  # not "partition.alpha=nan"
