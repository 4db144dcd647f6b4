"""Gradient splitting, GAS (Liu, Gao, Yang, ICML 2023)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.stages import Rule

SPLITS = ("contiguous", "random")
_AGG_CONF = Path(__file__).resolve().parents[1] / "conf" / "agg"


class GAS(Rule):
    r"""GAS: split the coordinates into ``p`` groups, run a base robust rule on every
    group, score each row by its distance to the group aggregates, average the
    ``n - f`` best rows:

    .. math:: s_i = \sum_{q=1}^{p} \big\|x_i^{(q)} - \mathrm{AGR}(x_1^{(q)}, \dots,
        x_n^{(q)})\big\|, \qquad u = \frac{1}{n - f} \sum_{i \in S} x_i,

    with S the ``n - f`` rows of smallest score (ties: lower row index). Splitting makes
    the base rule face ``d/p``-dimensional sub-vectors, where its error bound
    (which grows with d) is smaller.

    Groups: ``contiguous`` (default: ``p`` consecutive blocks of sizes differing by
    at most one) or ``random`` (one fixed random partition of the coordinates, drawn
    once from the run's generator). ``p`` is capped at d. The base rule is any option
    of ``conf/agg`` (by name, e.g. ``krum``, with its YAML defaults) or a config node
    ``{_target_: ...}``; it receives the same n and f. It should be stateless (one
    instance serves all groups). Non-finite rows get score ``+inf``.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected). Needs ``f < n``.
        p: number of groups, >= 1 (byzbench default 10; the paper studies p as a
            hyper-parameter).
        base: base rule name in ``conf/agg`` or a config node (default ``krum``, as in
            the paper's GAS-Krum).
        split: ``contiguous | random``.
        generator: injected seeded generator (``random`` split, and randomized bases).

    ``last_weights [n]`` is ``1/(n - f)`` on the selected rows.

    Reference: Y. Liu, C. Gao, Z. Yang (et al.), "Byzantine-robust Learning on
    Heterogeneous Data via Gradient Splitting", ICML 2023.
    """

    substages = ("base",)
    state_keys = ("_perm",)  # the column permutation, drawn once from the generator
    generator_keys = ("generator",)


    def __init__(self, n: int, f: int, p: int = 10, base: Any = "krum",
                 split: str = "contiguous", generator: torch.Generator | None = None):
        from byzbench.build import instantiate_component

        require(f >= 0, "agg.f", f, "f >= 0")
        require(f < n, "agg.f", f, f"gas needs f < n (n={n})")
        require(isinstance(p, int) and p >= 1, "agg.p", p, "an integer >= 1")
        require(split in SPLITS, "agg.split", split, f"one of {SPLITS}")
        if isinstance(base, str):
            path = _AGG_CONF / f"{base}.yaml"
            require(path.is_file() and base != "gas", "agg.base", base,
                    "the name of another conf/agg option (e.g. krum, median)")
            from omegaconf import OmegaConf

            base = OmegaConf.load(path)
        self.base = instantiate_component(base, "agg.base", n=n, f=f, generator=generator)
        self.n, self.f, self.p, self.split = n, f, p, split
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self._perm: Tensor | None = None
        self.last_weights: Tensor | None = None
        self.last_scores: np.ndarray | None = None

    def groups(self, d: int, device: torch.device) -> list[Tensor | slice]:
        """Column index sets of the ``min(p, d)`` groups."""
        p = min(self.p, d)
        bounds = [(q * d) // p for q in range(p + 1)]
        if self.split == "contiguous":
            return [slice(bounds[q], bounds[q + 1]) for q in range(p)]
        if self._perm is None or self._perm.numel() != d:
            self._perm = torch.randperm(d, generator=self.generator,
                                        device=self.generator.device).to(device)
        perm = self._perm.to(device)
        return [perm[bounds[q]:bounds[q + 1]].sort().values for q in range(p)]

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        f = self.f
        kernels.check_rows("gas", n, f < n, f"n > f (f={f})")
        _, bad = kernels.similarity.row_sq_norms(x)
        scores = np.zeros(n)
        for cols in self.groups(d, x.device):
            sub = x[:, cols]
            agg = self.base(sub)
            dist = kernels.to_np(torch.linalg.vector_norm(sub - agg, dim=1))
            scores += np.nan_to_num(dist, nan=np.inf, posinf=np.inf)
        scores[bad] = np.inf
        self.last_scores = scores
        idx = kernels.stable_smallest(scores, n - f)
        w = np.zeros(n)
        w[idx] = 1.0 / len(idx)
        self.last_weights = kernels.one_hot(n, idx, x)
        return kernels.combine(x, w, bad)
