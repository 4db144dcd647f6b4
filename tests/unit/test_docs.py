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
