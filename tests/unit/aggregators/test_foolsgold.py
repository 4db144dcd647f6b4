"""byzbench.aggregators.foolsgold: FoolsGold by hand and against the authors' code; its history
follows worker ids (permutations included)."""

from __future__ import annotations

import math

import numpy as np
import torch
from unit_helpers import f64, rows

from byzbench.aggregators.foolsgold import FoolsGold
from byzbench.build import build_experiment
from byzbench.loop import train
from byzbench.stages import SideInputs

from .helpers import cfg


def _fg_reference(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """FoolsGold steps 1-4 written with Python loops (authors' code structure)."""
    n = len(h)
    hn = h / h.norm(dim=1, keepdim=True)
    cs = (hn @ hn.T).numpy() - np.eye(n)
    maxcs = cs.max(axis=1)
    for i in range(n):
        for j in range(n):
            if i != j and maxcs[i] < maxcs[j]:
                cs[i, j] = cs[i, j] * maxcs[i] / maxcs[j]
    wv = np.clip(1 - cs.max(axis=1), 0, 1)
    wv = wv / wv.max()
    wv[wv == 1] = 0.99
    with np.errstate(divide="ignore"):
        wv = np.log(wv / (1 - wv)) + 0.5
    wv = np.clip(np.nan_to_num(wv, posinf=1.0, neginf=0.0), 0, 1)
    return torch.as_tensor(wv / wv.sum(), dtype=x.dtype) @ x


def test_foolsgold_by_hand():
    r3 = math.sqrt(3) / 2
    x = torch.tensor([[1.0, 0.0], [0.5, r3], [0.0, -1.0]], dtype=f64)
    # cs12 = 0.5, cs13 = 0, cs23 = -r3; v = (0.5, 0.5, 0); pardoning zeroes row 3's;
    # alpha = 1 - max = (0.5, 0.5, 1) -> /max -> 1 -> 0.99 -> logit: ln(1) + 0.5 = 0.5
    # for rows 1, 2; ln(99) + 0.5 > 1 -> 1 for row 3. Weights (0.5, 0.5, 1) / 2.
    rule = FoolsGold(3, 1)
    torch.testing.assert_close(rule(x), 0.25 * x[0] + 0.25 * x[1] + 0.5 * x[2])
    # sybils: two identical rows get weight 0
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=f64)
    torch.testing.assert_close(FoolsGold(3, 1)(y), y[2])


def test_foolsgold_row_opposed_to_all_others_matches_authors_code():
    # Row 3 has negative cosine with every other row: its max is the diagonal's 0 in the
    # authors' code (cosine_similarity - I), never a negative pardoning ratio.
    x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [-1.0, -0.2]], dtype=f64)
    torch.testing.assert_close(FoolsGold(3, 1)(x), _fg_reference(x, x))


def test_foolsgold_is_stateful_and_follows_worker_ids():
    a = rows(5, 4, 0)
    b = rows(5, 4, 1)
    rule = FoolsGold(5, 1)
    rule(a)
    out = rule(b)
    torch.testing.assert_close(rule.history, a + b)
    torch.testing.assert_close(out, _fg_reference(a + b, b))
    # rows permuted, identities told: same aggregate as unpermuted
    perm = torch.tensor([3, 0, 4, 1, 2])
    rule2 = FoolsGold(5, 1)
    rule2.observe(SideInputs(worker_ids=perm))
    rule2(a[perm])
    rule2.observe(SideInputs(worker_ids=perm.flip(0)))
    torch.testing.assert_close(rule2(b[perm.flip(0)]), out)


def test_foolsgold_history_follows_workers_under_permutation():
    exp, _ = build_experiment(cfg("agg=foolsgold", "attack=sign_flip", "rounds=3"))
    rule = exp.pipeline.rule
    calls, observe, call = [], rule.observe, type(rule).__call__

    class Spy(type(rule)):
        def __call__(self, x):
            calls.append((x.clone(), self.worker_ids))
            return call(self, x)

    rule.__class__ = Spy
    train(exp)
    real = [(x, ids) for x, ids in calls if ids is not None]  # the server's calls
    assert len(real) == 3
    want = torch.zeros_like(rule.history)
    for x, ids in real:
        want[ids] += x  # row k of round t is worker ids[k]
    torch.testing.assert_close(rule.history, want)
    assert observe is not None
