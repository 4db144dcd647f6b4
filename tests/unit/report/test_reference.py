"""``--reference``: ours vs published numbers on a synthetic sweep and a small reference
CSV (accuracy in percent there, fractions in ours)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from byzbench import report
from byzbench.report.reference import compare, load_reference

from .fakes import fake_run, multirun_yaml

# final test accuracy (mean over seeds) per (attack, agg, worker_momentum)
OURS = {("alie", "cclip", "0.0"): 0.70, ("alie", "cclip", "0.9"): 0.79,
        ("alie", "mean", "0.0"): 0.30, ("alie", "mean", "0.9"): 0.45,
        ("none", "cclip", "0.0"): 0.97, ("none", "cclip", "0.9"): 0.98,
        ("none", "mean", "0.0"): 0.98, ("none", "mean", "0.9"): 0.99}
# bucketing is fixed by the experiment, not overridden: only .hydra/config.yaml has it
CONFIG = {"preagg": {"bucketing": {"_target_": "byzbench.preaggregators.bucketing.Bucketing",
                                   "s": 2}}, "partition": {"_target_": "x"}}

REF = """experiment,attack,agg,worker_momentum,preagg,partition,metric,mean,sd,source
repro_x,alie,cclip,0.90,bucketing,,test_accuracy,80.0,1.0,Table 3
repro_x,alie,mean,0.9,[bucketing],,test_accuracy,60.0,5.0,Table 3
repro_x,none,cclip,,,,test_accuracy,98.0,,Table 3
repro_x,ipm,cclip,0.9,,,test_accuracy,70.0,1.0,Table 3
repro_x,alie,cclip,0.9,none,,test_accuracy,80.0,1.0,Table 3
repro_x,alie,cclip,0.9,,,test_loss,0.5,,Table 4
repro_x,alie,cclip,0.9,,,test_loss,0.5,0.01,Table 4
"""


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "ref"
    i = 0
    for (attack, agg, mom), v in OURS.items():
        for seed, eps in ((0, -0.01), (1, 0.0), (2, 0.01)):  # mean v, sd 0.01
            fake_run(root, str(i), seed=seed, config=CONFIG,
                     choices={"experiment": "repro_x"},
                     overrides=[f"attack={attack}", f"agg={agg}", f"worker_momentum={mom}"],
                     curves={"test_accuracy": [0.1, v + eps], "test_loss": [2.0, 0.6]})
            i += 1
    multirun_yaml(root, {"attack": "alie,none", "agg": "cclip,mean",
                         "worker_momentum": "0.0,0.9"})
    (tmp_path / "ref.csv").write_text(REF)
    return root


def test_compare_matches_keys_units_and_flags(sweep):
    runs = report.load_runs(sweep)
    cmp = compare(runs, report.load_results(sweep, runs), load_reference(sweep.parent / "ref.csv"),
                  sweep)
    r = cmp.set_index(["row", "group"])
    # row 0: ours 79.0 +- 1.0 (percent), published 80 +- 1: diff -1, tolerance max(2, 3) = 3
    a = r.loc[(0, "")]
    assert (a.ours, a.ours_sd, a.n_seeds) == (pytest.approx(79.0), pytest.approx(1.0), 3)
    assert (a["diff"], a.tolerance, a.flag) == (pytest.approx(-1.0), 3.0, "ok")
    # row 1: ours 45, published 60 +- 5: |diff| 15 > max(10, 3) -> OUT
    b = r.loc[(1, "")]
    assert (b["diff"], b.tolerance, b.flag) == (pytest.approx(-15.0), 10.0, "OUT")
    # row 2 names no worker_momentum: one row per swept value, 97 and 98 vs 98 (no sd: 3)
    c = cmp[cmp.row == 2].set_index("group")
    assert list(c.index) == ["worker_momentum=0.0", "worker_momentum=0.9"]
    assert c.ours.tolist() == pytest.approx([97.0, 98.0]) and c.flag.tolist() == ["ok", "ok"]
    # row 3: ipm never ran; row 4: preagg none, but the runs used bucketing
    assert r.loc[(3, "")].flag == "not run" and r.loc[(4, "")].flag == "not run"
    # rows 5-6: a loss compares unscaled; without sd it is not flagged, with sd 0.01 it is
    assert r.loc[(5, "")].ours == pytest.approx(0.6) and r.loc[(5, "")].flag == "no sd"
    assert r.loc[(6, "")].flag == "OUT" and r.loc[(6, "")].tolerance == pytest.approx(0.02)


def test_experiment_key_must_match(sweep, tmp_path):
    (tmp_path / "other.csv").write_text(REF.replace("repro_x", "repro_y"))
    runs = report.load_runs(sweep)
    cmp = compare(runs, report.load_results(sweep, runs), load_reference(tmp_path / "other.csv"),
                  sweep)
    assert set(cmp.flag) == {"not run"}


def test_cli_reference_table_and_figure(sweep, tmp_path, capsys):
    out = tmp_path / "rep"
    report.main([str(sweep), "--out", str(out), "--reference", str(tmp_path / "ref.csv")])
    md = (out / "reference_ref.md").read_text()
    row = ("| experiment=repro_x, attack=alie, agg=cclip, worker_momentum=0.90, "
           "preagg=bucketing | test_accuracy | 80.00 ± 1.00 | 79.00 ± 1.00 (n=3) | -1.00 "
           "| 3.00 | ok |")
    assert row in md, md
    assert "2 of 8 rows OUT; 2 not run." in md
    assert "79.00 ± 1.00" in capsys.readouterr().out
    back = pd.read_csv(out / "reference_ref.csv")
    assert len(back) == 8 and back.loc[back.flag == "not run", "ours"].isna().all()
    img = matplotlib.image.imread(out / "reference_ref.png")
    assert img.shape[0] > 100 and np.ptp(img[..., :3]) > 0
    assert (out / "reference_ref.pdf").read_bytes()[:4] == b"%PDF"


def test_without_reference_nothing_changes(sweep, tmp_path):
    out = tmp_path / "rep"
    report.write_report(sweep, out, quiet=True)
    assert not list(out.glob("reference_*")) and not list(out.glob("heatmap_worst*"))
    assert not (out / "hparams.md").exists()


def test_bad_reference_is_one_line(sweep, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("attack,value\nalie,1\n")
    with pytest.raises(SystemExit) as e:
        report.main([str(sweep), "--reference", str(tmp_path / "bad.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "missing column(s) metric, mean" in err
    (tmp_path / "frac.csv").write_text("attack,metric,mean\nalie,test_accuracy,0.8\n")
    with pytest.raises(SystemExit):
        report.main([str(sweep), "--reference", str(tmp_path / "frac.csv"), "--quiet"])
    assert "accuracies must be in percent" in capsys.readouterr().err
