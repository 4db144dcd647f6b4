"""README's component tables list every shipped option (regenerate with
scripts/component_tables.py), and README starts with the two set-up commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_component_tables_are_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "component_tables.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_readme_first_commands_are_setup_run_and_test():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert block[0].startswith("pip install -e . && byzbench")
    assert block[1].startswith('pip install -e ".[test]" && python -m pytest')
    ci = (ROOT / ".ci" / "run").read_text()
    # CI: README's test command, with the flower extra so that the Flower tests run too
    assert 'pip install -q -e ".[test,flower]"' in ci and "python -m pytest" in ci


def test_readme_use_commands_compose_and_build(tmp_path):
    """Every single-run ``byzbench ...`` line of README's "Use" block composes and
    builds (a renamed option or key would fail here)."""
    import shlex

    from hydra import compose, initialize_config_dir

    from byzbench.build import build_experiment
    from byzbench.run import CONF_DIR

    use = (ROOT / "README.md").read_text().split("## Use", 1)[1]
    block = use.split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
    runs = [shlex.split(ln)[1:] for ln in lines if ln.startswith("byzbench ") and " -m " not in ln]
    assert len(runs) >= 8
    for over in runs:
        if "dataset=mnist1d" in over:  # generated and cached in the data root
            over = [*over, f"dataset.root={tmp_path}"]
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*over, "device=cpu"])
        exp, _ = build_experiment(cfg)
        assert exp.rounds == cfg.rounds, over
