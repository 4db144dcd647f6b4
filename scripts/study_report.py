"""The seesaw study's tables, printed by ``byzbench-report`` from its sweeps, written into
docs/STUDY.md and README.md between their ``study-results`` / ``study-summary`` markers.

    python scripts/study_report.py            # print the blocks
    python scripts/study_report.py --write    # and rewrite them in docs/STUDY.md, README.md
    python scripts/study_report.py --task mnist1d --write   # the MNIST-1D block of STUDY.md

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
STUDIES_MNIST1D = (  # the same protocol on MNIST-1D (cnn1d, conf/solver/mnist1d)
    ("MNIST-1D: no attack (baseline; IID and Dirichlet 0.3)", "seesaw_baseline_mnist1d/mnist1d",
     None, ("final",)),
    ("MNIST-1D: IID grid (caps 0.5, 2, 8)", "seesaw_vs_finite_norm_mnist1d/mnist1d",
     "finite_norm", ("final", "versus", "worst", "selection")),
    ("MNIST-1D: Dirichlet(0.3) grid (caps 0.5, 2, 8)",
     "seesaw_vs_finite_norm_mnist1d_dirichlet/mnist1d", "finite_norm",
     ("final", "versus", "worst")),
)
TASKS = {"digits": (STUDIES, "study-results"), "mnist1d": (STUDIES_MNIST1D, "study-mnist1d")}


def _demote(text: str, levels: int) -> str:
    """Push markdown headings ``levels`` deeper (the report's ``#`` becomes ``###``)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", text,
                  flags=re.M)


def _command(sweep: str, versus: str | None) -> str:
    return f"byzbench-report {SWEEPS}/{sweep}" + (f" --versus {versus}" if versus else "")


def study_block(root: Path, studies: tuple = STUDIES) -> tuple[str, dict[str, dict[str, str]]]:
    """The STUDY.md block and, per study title, its report texts by table kind."""
    parts, texts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (title, sweep, versus, shown) in enumerate(studies):
            d = root / SWEEPS / sweep
            parts.append(f"### {title}\n\n```bash\n{_command(sweep, versus)}\n```\n")
            if not list(d.rglob("summary.json")):
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
            n = len(list(d.rglob("summary.json")))
            parts.append(f"{n} finished runs.\n")
            parts += [_demote(got[k], 3) for k in shown]
    return "\n".join(parts), texts


def summary_block(texts: dict[str, dict[str, str]], studies: tuple = STUDIES) -> str:
    """The paired-contrast counts and the worst cases of both grids."""
    parts = []
    for title, sweep, versus, _ in studies[1:3]:
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
    ap.add_argument("--task", choices=sorted(TASKS), default="digits",
                    help="digits: the study's block and README's summary; mnist1d: the "
                    "MNIST-1D block (its grids' tables and summary) of docs/STUDY.md")
    ap.add_argument("--write", action="store_true",
                    help="rewrite the task's blocks in docs/STUDY.md (and README.md)")
    a = ap.parse_args()
    studies, marker = TASKS[a.task]
    block, texts = study_block(a.root, studies)
    summary = summary_block(texts, studies)
    if a.task == "mnist1d":
        block = f"{block}\n#### Summary\n\n{summary}"
    print(block)
    if a.task == "digits":
        print(summary)
    if a.write:
        replace_block(ROOT / "docs" / "STUDY.md", marker, block)
        if a.task == "digits":
            replace_block(ROOT / "README.md", "study-summary", summary)

if __name__ == "__main__":
    main()
