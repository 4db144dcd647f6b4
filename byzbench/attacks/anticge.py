"""The attack against CGE (ByzantineMomentum ``attacks/anticge.py``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import host, require
from byzbench.attacks._ops import empty_rows
from byzbench.attacks.base import Attack, RoundContext, repeat_rows


class AntiCGE(Attack):
    """Against CGE (keep the n - f_decl smallest-norm rows): send the *negated* sum of
    the honest gradients CGE would keep, rescaled to a norm just below the largest norm
    that is still kept, so every Byzantine row is kept:

    ``b = -(m_max / ||S||) S``, with ``S = sum_{k < h - f_decl} g_(k)`` (honest rows by
    increasing norm, ties to the lower index) and
    ``m_max = (1 - margin) ||g_(h - f_decl)||`` (h honest rows, f_decl = what the rule
    was told). All f rows are equal.

    Edge cases as BM: more Byzantine rows than declared (f > f_decl) -> nan rows (a
    Byzantine row is necessarily kept); ``S = 0`` -> b = 0 is not rescaled. Beyond BM:
    f_decl = 0 (CGE keeps everything) uses the largest honest norm; h - f_decl <= 0
    uses S = g_(0) (BM's accumulator starts there).

    Variant ``first_twice: true`` reproduces BM's code exactly: its accumulator starts
    from a copy of g_(0) and then adds g_(0), ..., g_(h - f_decl - 1), so the smallest
    gradient is counted twice (the comment says "the sum of the would-be selected
    honest gradients": byzbench's default). BM uses ``math.nextafter`` for the norm
    just below; byzbench uses a relative ``margin`` (default 1e-6) so the norm stays
    below after float32 rounding. Non-finite honest norms count as +inf.

    Args:
        first_twice: BM's double-counted first gradient.
        margin: relative gap below the kept norm, in [0, 1).
        f_declared: injected (what the rule was told); the round's ``ctx.f_declared``
            is used at run time.

    Reference: LPD-EPFL/ByzantineMomentum ``attacks/anticge.py`` (S. Rouault), against
    CGE (Gupta, Liu, Vaidya).
    """

    def __init__(self, first_twice: bool = False, margin: float = 1e-6):
        require(0 <= margin < 1, "attack.margin", margin, "0 <= margin < 1")
        self.first_twice, self.margin = bool(first_twice), float(margin)

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        f_decl = ctx.f_declared
        if ctx.f > f_decl:
            return torch.full((ctx.f, honest.shape[1]), float("nan"), dtype=honest.dtype,
                              device=honest.device)
        h = honest.shape[0]
        norms = host.to_host(torch.linalg.vector_norm(honest.double(), dim=1)).numpy()
        norms = np.where(np.isfinite(norms), norms, np.inf)
        order = np.lexsort((np.arange(h), norms))
        maxpos = h - f_decl
        top = norms[order[min(max(maxpos, 0), h - 1)]]
        m_max = (1.0 - self.margin) * float(top) if maxpos < h else float(norms[order[-1]])
        keep = order[:max(maxpos, 1)]
        if self.first_twice:
            keep = np.concatenate([order[:1], keep])
        s = honest[torch.as_tensor(keep, device=honest.device)].sum(dim=0)
        sn = float(torch.linalg.vector_norm(s))
        b = -s * (m_max / sn) if sn > 0 and np.isfinite(m_max) else -s
        return repeat_rows(b, ctx.f)
