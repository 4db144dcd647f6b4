"""The seesaw study's tables, printed by ``byzbench-report`` from its sweeps, written into
docs/STUDY.md and README.md between their ``study-results`` / ``study-summary`` markers.

    python scripts/study_report.py            # print the blocks
    python scripts/study_report.py --write    # and rewrite them in docs/STUDY.md, README.md

Each table is a ``byzbench-report`` output, and the command that prints it stands above
it in the block. Sweeps that have not run are listed as missing (nothing is invented).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from byzbench.report import write_report
from byzbench.report.tables import replace_between

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = "outputs/sweeps"
STUDIES = (  # (title, sweep dir below SWEEPS, --versus, tables shown)
    ("No attack (baseline; IID and Dirichlet 0.3)", "seesaw_baseline/digits", None,
     ("final",)),
    ("IID grid (caps 0.5, 2, 8)", "seesaw_vs_finite_norm/digits", "finite_norm",
     ("final", "versus", "worst", "selection")),
    ("Dirichlet(0.3) grid (caps 0.5, 2, 8)", "seesaw_vs_finite_norm_dirichlet/digits",
     "finite_norm", ("final", "versus", "worst")),
    ("Period ablation at cap 2 (IID)", "seesaw_ablation/digits", None, ("final",)),
)


def _demote(text: str, levels: int) -> str:
    """Push markdown headings ``levels`` deeper (the report's ``#`` becomes ``###``)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", text,
                  flags=re.M)


def _command(sweep: str, versus: str | None) -> str:
    return f"byzbench-report {SWEEPS}/{sweep}" + (f" --versus {versus}" if versus else "")


def study_block(root: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """The STUDY.md block and, per study title, its report texts by table kind."""
    parts, texts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (title, sweep, versus, shown) in enumerate(STUDIES):
            d = root / SWEEPS / sweep
            parts.append(f"### {title}\n\n```bash\n{_command(sweep, versus)}\n```\n")
            if not list(d.glob("*/summary.json")):
                parts.append(f"Not run: no finished run below `{SWEEPS}/{sweep}`.\n")
                continue
            out = Path(tmp) / str(i)
            paths = write_report(d, out, quiet=True, versus=versus)
            got = {"final": paths["final_test_accuracy"].read_text(),
                   "worst": paths["worst_case_test_accuracy"].read_text(),
                   "selection": paths["selection"].read_text()}
            if versus:
                got["versus"] = paths[f"versus_{versus}_test_accuracy"].read_text()
            texts[title] = got
            n = len(list(d.glob("*/summary.json")))
            parts.append(f"{n} finished runs.\n")
            parts += [_demote(got[k], 3) for k in shown]
    return "\n".join(parts), texts


def summary_block(texts: dict[str, dict[str, str]]) -> str:
    """README's block: the paired-contrast counts and the worst cases of both grids."""
    parts = []
    for title, sweep, versus, _ in STUDIES[1:3]:
        if title not in texts:
            parts.append(f"**{title.split(' grid')[0]}**: not run yet.\n")
            continue
        counts = texts[title]["versus"].split("## Count over all groups, rules and parameters")[1]
        worst = texts[title]["worst"].split("\n", 2)[2]
        parts.append(f"**{title.split(' grid')[0]}** (`{_command(sweep, versus)}`): paired "
                     "contrast with finite_norm at the same cap, over rules x solvers x "
                     "caps (clearly = beyond 2 standard errors and 1 point):\n\n"
                     f"{counts.strip()}\n")
        parts.append("Worst case over attacks and caps (mean ± sd over seeds):\n\n" + worst)
    return "\n".join(parts)


def replace_block(path: Path, name: str, block: str) -> None:
    """Rewrite the text between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    try:
        path.write_text(replace_between(path.read_text(), begin, end, block.strip()))
    except ValueError:
        raise SystemExit(f"study_report.py: {path} lacks the {begin} / {end} markers") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="holds outputs/sweeps")
    ap.add_argument("--write", action="store_true",
                    help="rewrite the blocks in docs/STUDY.md and README.md")
    a = ap.parse_args()
    block, texts = study_block(a.root)
    summary = summary_block(texts)
    print(block)
    print(summary)
    if a.write:
        replace_block(ROOT / "docs" / "STUDY.md", "study-results", block)
        replace_block(ROOT / "README.md", "study-summary", summary)


if __name__ == "__main__":
    main()
