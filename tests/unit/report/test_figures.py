"""byzbench.figures and scripts/figures.py on synthetic sweep dirs: PNG + PDF files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd

from byzbench import figures, report

from .fakes import write_run

ROOT = Path(__file__).resolve().parents[3]


def _sweep(root: Path) -> Path:
    """attack {none, finite_norm, seesaw} x rule {mean, krum} x solver {sgd, adam} x
    f/n {0.1, 0.2} x seed {0, 1}."""
    i = 0
    for solver in ("sgd", "adam"):
        for attack in ("none", "finite_norm", "seesaw"):
            for agg in ("mean", "krum"):
                for bf, f in (("0.1", 2), ("0.2", 4)):
                    for seed in (0, 1):
                        acc = 0.9 - (attack != "none") * (0.3 if agg == "mean" else 0.1) \
                            - 0.5 * f / 20 + 0.01 * seed
                        write_run(root, str(i), attack=attack, agg=agg, solver=solver,
                                  seed=seed, acc=acc, byz_weight=[0.2] * 4,
                                  overrides=[f"cluster.byz_frac={bf}"], f=f)
                        i += 1
    return root


def _valid(paths: list[Path], stem: str) -> None:
    pngs = [p for p in paths if p.name.startswith(stem) and p.suffix == ".png"]
    assert pngs, f"no {stem}*.png in {[p.name for p in paths]}"
    for png in pngs:
        pdf = png.parent / (png.name[:-4] + ".pdf")
        assert pdf.read_bytes()[:4] == b"%PDF"
        img = matplotlib.image.imread(png)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert np.ptp(img[..., :3]) > 0  # not a blank canvas


def test_make_figures_writes_png_and_pdf(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    bench = pd.DataFrame([{"rule": r, "n": n, "d": d, "seconds": 1e-6 * n * d * (k + 1)}
                          for k, r in enumerate(("mean", "krum"))
                          for n, d in ((10, 1000), (20, 1000), (40, 1000), (20, 100),
                                       (20, 10000))])
    bench.to_csv(tmp_path / "bench.csv", index=False)
    paths = figures.make_figures(sweep, tmp_path / "out", bench_csv=tmp_path / "bench.csv")
    assert all(p.parent == tmp_path / "out" for p in paths)
    # convergence and vs-fraction: one figure per other swept axis value (f/n, solver)
    _valid(paths, "convergence_test_accuracy_cluster.byz_frac-0.1")
    _valid(paths, "convergence_test_accuracy_cluster.byz_frac-0.2")
    _valid(paths, "heatmap_test_accuracy")
    _valid(paths, "vs_byz_fraction_test_accuracy")
    _valid(paths, "aggregator_runtime")
    assert len([p for p in paths if p.suffix == ".png"]) == 2 + 2 + 1 + 1


def test_heatmap_values_are_the_final_table(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path / "sweep")
    runs = report.add_labels(report.load_runs(sweep))
    sub = runs[runs["cluster.byz_frac"] == "0.1"]
    seen = []
    real = figures.plt.Axes.imshow

    def spy(self, a, *args, **kw):
        seen.append(np.array(a))
        return real(self, a, *args, **kw)

    monkeypatch.setattr(figures.plt.Axes, "imshow", spy)
    figures.heatmap(sub, tmp_path / "h")
    sgd = seen[0]  # first panel: sgd; rows mean, krum; columns none, finite_norm, seesaw
    # mean + seesaw at f = 2: 0.9 - 0.3 - 0.5 * 2 / 20 = 0.55 (+0.01 for seed 1) -> 0.555
    assert sgd.shape == (2, 3)
    assert abs(sgd[0, 2] - 0.555) < 1e-9
    assert abs(sgd[1, 0] - 0.855) < 1e-9  # krum + none: 0.9 - 0.05 + 0.005


def test_runtime_takes_column_names(tmp_path):
    df = pd.DataFrame({"gar": ["a", "a", "a", "b", "b", "b"], "workers": [5, 10, 10] * 2,
                       "dim": [100, 100, 1000] * 2, "sec": [1, 2, 3, 2, 4, 6]})
    paths = figures.runtime(df, tmp_path / "rt", n="workers", d="dim", rule="gar",
                            seconds="sec")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.is_file() for p in paths)


def test_script_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("figs", ROOT / "scripts" / "figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sweep = tmp_path / "sweep"
    for i, attack in enumerate(("none", "seesaw")):
        write_run(sweep, str(i), attack=attack, agg="krum", solver="sgd", seed=0, acc=0.5)
    assert mod.main([str(sweep), "--quiet"]) == 0
    out = sweep / "report"
    assert (out / "results.csv").is_file() and (out / "heatmap_test_accuracy.pdf").is_file()
    assert (out / "convergence_test_accuracy.png").is_file()
    assert "heatmap_test_accuracy.png" in capsys.readouterr().out
    assert mod.main([str(tmp_path / "empty")]) == 2
    bench = pd.DataFrame({"n": [10, 20, 10, 20], "d": [100, 100, 1000, 1000],
                          "stage": ["krum"] * 4, "seconds": [1.0, 2.0, 3.0, 4.0]})
    bench.to_csv(tmp_path / "b.csv", index=False)
    assert mod.main(["--bench", str(tmp_path / "b.csv"), "--out", str(tmp_path / "rt")]) == 0
    assert (tmp_path / "rt" / "aggregator_runtime.pdf").is_file()


def test_runtime_reads_bench_aggregators_csv(tmp_path):
    """The columns scripts/bench_aggregators.py writes (rule name in ``stage``)."""
    rows = [{"device": "cpu", "n": n, "d": d, "stage": s, "f": n // 5, "seconds": 1e-7 * n * d,
             "floor": "mean", "floor_seconds": 1e-8 * n * d, "ratio": 10.0, "peak_mib": 1.0,
             "threads": 1} for s in ("krum", "nnm+cclip") for n in (10, 30) for d in (100, 1000)]
    pd.DataFrame(rows).to_csv(tmp_path / "bench.csv", index=False)
    paths = figures.runtime(tmp_path / "bench.csv", tmp_path / "rt")
    _valid(paths, "rt")


def test_vs_local_steps_one_line_per_rule_rows_participation(tmp_path):
    """FedAvg sweep axes (algorithm.local_steps x cluster.participation): one figure,
    x = K, whose plotted points are the seed means of the final accuracy."""
    i = 0
    for k in (1, 5, 20):
        for p in ("1.0", "0.5"):
            for agg in ("mean", "krum"):
                for seed in (0, 1):
                    write_run(tmp_path / "s", str(i), attack="alie", agg=agg, solver="sgd",
                              seed=seed, acc=0.5 + 0.01 * k + 0.1 * seed,
                              overrides=[f"algorithm.local_steps={k}",
                                         f"cluster.participation={p}"])
                    i += 1
    runs = report.add_labels(report.load_runs(tmp_path / "s"))
    seen = []
    orig = figures.plt.Axes.errorbar

    def spy(ax, x, y, *a, **kw):
        seen.append((kw.get("label"), list(x), list(y)))
        return orig(ax, x, y, *a, **kw)

    figures.plt.Axes.errorbar = spy
    try:
        paths = figures.vs_local_steps(runs, tmp_path / "out" / "vs_k")
    finally:
        figures.plt.Axes.errorbar = orig
    _valid(paths, "vs_k")
    assert len(seen) == 4  # 2 rules x 2 participation rows
    for label, x, y in seen:
        assert x == [1.0, 5.0, 20.0] and label in ("mean", "krum")
        np.testing.assert_allclose(y, [0.5 + 0.01 * k + 0.05 for k in (1, 5, 20)])


def test_script_takes_the_report_options(tmp_path, capsys):
    """scripts/figures.py shares byzbench-report's options: --heatmaps draws the
    worst-case f x heterogeneity heatmaps next to the other figures."""
    spec = importlib.util.spec_from_file_location("figs", ROOT / "scripts" / "figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sweep = _sweep(tmp_path / "sweep")
    assert mod.main([str(sweep), "--heatmaps", "--quiet", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    # one heatmap figure per solver (the other swept axis); f from cluster.byz_frac
    assert "heatmap_worst_test_accuracy_g-solver=sgd.png" in printed
    _valid(sorted((tmp_path / "o").glob("heatmap_worst_*")), "heatmap_worst_test_accuracy")
