"""convergence.png from a run's metrics.csv (data file in, figure out)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``; close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    # not with_suffix: a stem like "..._byz_frac-0.1" already has a "suffix"
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def slug(parts: dict) -> str:
    """A file-name-safe ``k-v_k-v`` stem for one panel's selection."""
    s = "_".join(f"{k}-{v}" for k, v in parts.items())
    return re.sub(r"[^A-Za-z0-9_.=-]+", "", s.replace(" ", ""))


def convergence_plot(metrics_csv: Path, out: Path, title: str = "") -> None:
    """Train/test loss (log scale) and test accuracy (with a backdoor's attack success
    rate beside it, when logged) versus round."""
    df = pd.read_csv(metrics_csv)
    panels = [("loss", [("train", "loss"), ("test", "loss"), ("train", "loss_full")]),
              ("accuracy", [("test", "accuracy"), ("test", "asr")]),
              ("optimality gap", [("train", "opt_gap")])]
    panels = [(name, [(s, m) for s, m in series
                      if ((df.split == s) & (df.metric == m)).any()]) for name, series in panels]
    panels = [(name + " / asr" if ("test", "asr") in series else name, series)
              for name, series in panels if series]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, series) in zip(axes[0], panels):
        for s, m in series:
            d = df[(df.split == s) & (df.metric == m)]
            ax.plot(d["round"], d["value"], label=f"{s} {m}", marker="." if len(d) < 60 else None)
        ax.set_xlabel("round")
        ax.set_ylabel(name)
        if name in ("loss", "optimality gap"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
