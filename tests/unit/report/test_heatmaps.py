"""ByzFL-style heatmaps (f x heterogeneity, worst case over attacks) on a synthetic sweep
with hand-computed cells."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from byzbench import report
from byzbench.report.heatmaps import grid_markdown, heterogeneity_axes, worst_case_grid

from .fakes import fake_run, multirun_yaml

N = 10
FS = {"0.1": 1, "0.3": 3}           # cluster.byz_frac -> f (n = 10)
HET = {"0.1": 0.2, "10.0": 0.0}     # partition.alpha -> accuracy lost to heterogeneity
DROP = {"mean": 0.10, "cwmed": 0.05}  # accuracy lost per Byzantine worker under alie


def _final(rule: str, attack: str, bf: str, alpha: str) -> float:
    """Test accuracy (mean over seeds) of one cell: alie costs DROP[rule] per f,
    ipm half of that; so alie is always the worst attack."""
    cost = {"none": 0.0, "alie": 1.0, "ipm": 0.5}[attack] * DROP[rule] * FS[bf]
    return 0.9 - cost - HET[alpha]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "heat"
    i = 0
    for rule in DROP:
        for attack in ("none", "alie", "ipm"):
            for bf, f in FS.items():
                for alpha in HET:
                    v = _final(rule, attack, bf, alpha)
                    for seed, eps in ((0, 0.01), (1, -0.01)):
                        # the curve peaks 0.01 above its final value under alie
                        peak = v + eps + (0.01 if attack == "alie" else 0.0)
                        fake_run(root, str(i), seed=seed, n=N, f=f, overrides=[
                            f"agg={rule}", f"attack={attack}", "partition=dirichlet",
                            f"cluster.byz_frac={bf}", f"partition.alpha={alpha}"],
                            curves={"test_accuracy": [0.1, peak, v + eps]})
                        i += 1
    multirun_yaml(root, {"agg": "mean,cwmed", "attack": "none,alie,ipm",
                         "cluster.byz_frac": "0.1,0.3", "partition.alpha": "0.1,10.0"})
    return root


def _grid(root: Path, how: str = "final", x: str = "f"):
    runs = report.load_runs(root)
    return worst_case_grid(runs, report.load_results(root, runs), "test_accuracy", how, x,
                           order=report._sweep_order(root))


def test_heterogeneity_axis_is_the_swept_partition_keys(sweep):
    assert heterogeneity_axes(report.load_runs(sweep)) == ["partition.alpha"]


@pytest.mark.parametrize("how", ["final", "best"])
def test_cells_are_worst_case_over_attacks(sweep, how):
    grid = _grid(sweep, how)
    assert len(grid) == 2 * 2 * 2  # rules x f x alpha
    for _, r in grid.iterrows():
        bf = {1: "0.1", 3: "0.3"}[int(r["f"])]
        # alie is the worst attack; "best" takes the seed-mean curve's peak (+0.01)
        want = _final(r["rule"], "alie", bf, r["heterogeneity"]) + (0.01 if how == "best"
                                                                     else 0.0)
        assert r["value"] == pytest.approx(want), r.to_dict()
        assert r["worst_attack"] == "alie" and r["n_attacks"] == 3
    assert grid.attrs["x_order"] == [1, 3] and grid.attrs["y_order"] == ["0.1", "10.0"]


def test_x_axis_as_fraction_and_markdown(sweep):
    grid = _grid(sweep, x="byz_frac")
    assert sorted(set(grid["byz_frac"])) == [0.1, 0.3]
    md = grid_markdown(_grid(sweep), "f")
    # mean, alpha=0.1: f=1 -> 0.9 - 0.1 - 0.2 = 0.6; f=3 -> 0.9 - 0.3 - 0.2 = 0.4
    assert "## mean\n" in md and "| 0.1 | 0.600 | 0.400 |" in md
    assert md.index("## mean") < md.index("## cwmed")  # sweep order


def test_missing_attack_cell_is_the_worst(sweep):
    runs = report.load_runs(sweep)
    gone = (runs["agg"] == "cwmed") & (runs["attack"] == "ipm") & (runs["f"] == 3) & \
        (runs["partition.alpha"] == "10.0")
    runs = runs[~gone]
    grid = worst_case_grid(runs, report.load_results(sweep, runs))
    r = grid[(grid["rule"] == "cwmed") & (grid["f"] == 3) & (grid["heterogeneity"] == "10.0")]
    assert r["value"].item() == -np.inf and r["worst_attack"].item() == "ipm"


def test_cli_heatmaps_write_table_and_figure(sweep, tmp_path):
    out = tmp_path / "rep"
    paths = report.write_report(sweep, out, quiet=True, heatmaps=True, how="best")
    assert (out / "heatmap_worst_test_accuracy_best.csv").is_file()
    md = (out / "heatmap_worst_test_accuracy_best.md").read_text()
    assert "| 0.1 | 0.610 | 0.410 |" in md  # mean, alpha 0.1, best = final + 0.01
    png = paths["heatmap_worst_test_accuracy_best.png"]
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 100 and np.ptp(img[..., :3]) > 0
    assert (out / "heatmap_worst_test_accuracy_best.pdf").read_bytes()[:4] == b"%PDF"


def test_n_growing_with_f_is_the_x_axis(tmp_path):
    """ByzFL's setting: a fixed number of honest workers, n = n_h + f. The swept
    cluster.n_workers follows f, so it is no group; cells are per f."""
    root = tmp_path / "byzfl"
    i = 0
    for f in (1, 2):
        for attack in ("none", "alie"):
            fake_run(root, str(i), seed=0, n=8 + f, f=f, overrides=[
                "agg=mean", f"attack={attack}", f"cluster.n_workers={8 + f}",
                f"cluster.byz_frac={f / (8 + f)}"],
                curves={"test_accuracy": [0.1, 0.9 - 0.1 * f * (attack == "alie")]})
            i += 1
    runs = report.load_runs(root)
    grid = worst_case_grid(runs, report.load_results(root, runs))
    assert grid.attrs["groups"] == [""]
    assert dict(zip(grid["f"], grid["value"].round(9))) == {1: 0.8, 2: 0.7}
