"""scripts/study_report.py: the study's tables are byzbench-report's output, each under the
command that prints it, and are written between the docs' markers; missing sweeps are
listed as not run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .fakes import fake_run

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "study_report.py"
spec = importlib.util.spec_from_file_location("study_report", SCRIPT)
sr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sr)


def _grid(root: Path) -> None:
    d = root / "outputs" / "sweeps" / "seesaw_vs_finite_norm" / "digits"
    i = 0
    for attack, acc in (("finite_norm", 0.90), ("seesaw", 0.80)):
        for seed in (0, 1):
            fake_run(d, str(i), overrides=[f"attack={attack}", "agg=krum", "attack.cap=2"],
                     seed=seed, curves={"test_accuracy": [0.1, acc + 0.01 * seed]})
            i += 1


def test_blocks_hold_the_report_output_and_commands(tmp_path):
    _grid(tmp_path)
    block, texts = sr.study_block(tmp_path)
    cmd = "byzbench-report outputs/sweeps/seesaw_vs_finite_norm/digits --versus finite_norm"
    assert cmd in block and "4 finished runs." in block
    assert "| krum | -0.100 ± 0.000 * |" in block  # seesaw - finite_norm, paired by seed and cap
    assert "Not run: no finished run below `outputs/sweeps/seesaw_ablation/digits`." in block
    assert "#### Final test_accuracy" in block  # report headings pushed under "###"
    summary = sr.summary_block(texts)
    assert "| seesaw | 1 | 1 | 1 | 0 |" in summary and "not run yet" in summary


def test_mnist1d_block_reads_nested_run_dirs(tmp_path):
    """The MNIST-1D grids sweep ``solver=mnist1d/<name>``: their run dirs nest one level
    deeper (``.../solver=mnist1d/adam/``) and are found."""
    d = tmp_path / "outputs" / "sweeps" / "seesaw_vs_finite_norm_mnist1d" / "mnist1d"
    for attack, acc in (("finite_norm", 0.7), ("seesaw", 0.5)):
        fake_run(d / f"attack={attack}" / "solver=mnist1d", "adam",
                 overrides=[f"attack={attack}", "agg=krum", "attack.cap=2",
                            "solver=mnist1d/adam"], seed=0,
                 curves={"test_accuracy": [0.1, acc]})
    block, texts = sr.study_block(tmp_path, sr.STUDIES_MNIST1D)
    assert "2 finished runs." in block and "| krum | -0.200 * |" in block
    assert "Not run: no finished run below `outputs/sweeps/seesaw_baseline_mnist1d" in block


def test_replace_block_between_markers(tmp_path):
    p = tmp_path / "doc.md"
    p.write_text("head\n<!-- x:begin -->\nold\n<!-- x:end -->\ntail\n")
    sr.replace_block(p, "x", "new table\n")
    assert p.read_text() == "head\n<!-- x:begin -->\nnew table\n<!-- x:end -->\ntail\n"
    with pytest.raises(SystemExit, match="markers"):
        sr.replace_block(p, "y", "z")


def test_docs_have_the_markers():
    root = SCRIPT.parents[1]
    for doc, name in (("docs/STUDY.md", "study-results"), ("README.md", "study-summary"),
                      ("docs/STUDY.md", "study-mnist1d")):
        text = (root / doc).read_text()
        assert f"<!-- {name}:begin -->" in text and f"<!-- {name}:end -->" in text
