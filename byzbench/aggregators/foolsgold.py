"""FoolsGold (Fung, Yoon, Beschastnikh, RAID 2020)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import host, kernels, require
from byzbench.stages import Rule, SideInputs


class FoolsGold(Rule):
    r"""FoolsGold: down-weight workers whose *accumulated* updates are too similar to
    each other (sybils pushing one direction). Stateful across rounds.

    Per worker k the history :math:`H_k = \sum_{s \le t} x_k^{(s)}` is kept; with
    :math:`cs_{ij} = \cos(H_i, H_j)` for i != j, :math:`cs_{ii} = 0` (the authors'
    ``cosine_similarity - I``) and :math:`v_i = \max_j cs_{ij}`:

    1. pardoning: :math:`cs_{ij} \leftarrow cs_{ij} v_i / v_j` when :math:`v_i < v_j`;
    2. :math:`\alpha_i = 1 - \max_j cs_{ij}`, clipped to [0, 1], divided by its maximum,
       1 replaced by 0.99;
    3. logit: :math:`\alpha_i = \kappa (\ln(\alpha_i / (1 - \alpha_i)) + 0.5)`, clipped
       to [0, 1] (``+inf`` -> 1, ``-inf`` -> 0);
    4. :math:`u = \sum_i \alpha_i x_i / \sum_i \alpha_i` (the current updates).

    Steps 1-3 follow the paper's Algorithm 1 and the authors' code
    (DistSys/FoolsGold ``foolsgold()``), without the optional feature-importance
    weighting of the cosine (needs model-layer structure). Step 4: the paper applies
    :math:`\sum_i \alpha_i \Delta_i` scaled by the learning rate; byzbench normalizes
    by :math:`\sum_i \alpha_i` (``normalize: true``) so the output is a weighted
    average, scale-consistent with the other rules; ``normalize: false`` gives
    :math:`\frac1n \sum_i \alpha_i x_i` (the mean with FoolsGold's weights).
    If every weight is 0 (e.g. all histories parallel: FoolsGold cannot tell sybils
    from honest workers; not covered by the paper) the plain mean of the finite rows
    is returned.

    Worker identity: the training loop permutes rows every round, so it tells the
    rule which worker each row is (``observe(worker_ids=...)``); called directly, row
    k is worker k. After a row-mixing pre-aggregator (bucketing, nnm) rows are no
    longer workers: the ids are ignored when the row count differs (row k = slot k).
    Non-finite rows do not enter the history and get weight 0.

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; unused by the rule).
        kappa: confidence parameter of the logit, > 0 (paper: 1).
        normalize: divide by the sum of weights (default) or by n.

    ``last_weights [n]`` is each row's coefficient in the output.

    Reference: C. Fung, C. J. M. Yoon, I. Beschastnikh, "The Limitations of Federated
    Learning in Sybil Settings", RAID 2020 (arXiv:1808.04866).
    """

    state_keys = ("history",)
    needs = frozenset({"worker_ids"})


    def __init__(self, n: int = 1, f: int = 0, kappa: float = 1.0, normalize: bool = True):
        require(f >= 0, "agg.f", f, "f >= 0")
        require(kappa > 0, "agg.kappa", kappa, "> 0")
        self.n, self.f, self.kappa, self.normalize = n, f, float(kappa), bool(normalize)
        self.history: Tensor | None = None
        self.worker_ids: Tensor | None = None
        self.last_weights: Tensor | None = None

    def observe(self, side: SideInputs) -> None:
        """Which worker each row of the next call comes from (set by the loop; None
        for an attacker's queries)."""
        self.worker_ids = side.worker_ids

    def weights(self, h: Tensor) -> np.ndarray:
        """FoolsGold weights ``[n]`` from the histories ``h [n, d]`` (steps 1-3)."""
        dist, _, bad = kernels.similarity.cosine_distances(h)
        # cos(H_i, H_j) with a zero diagonal (the authors' cosine_similarity - I): every
        # max below is >= 0, so the pardoning ratio never flips a sign. Bad and zero rows
        # have cosine 0 with everything.
        cs = 1.0 - dist
        n = cs.shape[0]
        np.fill_diagonal(cs, 0.0)
        v = cs.max(axis=1) if n else np.zeros(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(v[:, None] < v[None, :], v[:, None] / v[None, :], 1.0)
        cs = cs * ratio
        np.fill_diagonal(cs, 0.0)
        alpha = 1.0 - cs.max(axis=1) if n else np.zeros(0)
        alpha = np.clip(np.nan_to_num(alpha, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        alpha[bad] = 0.0
        top = alpha.max() if n else 0.0
        if top <= 0:
            return np.zeros(n)
        alpha = alpha / top
        alpha[alpha == 1.0] = 0.99
        with np.errstate(divide="ignore"):
            alpha = self.kappa * (np.log(alpha / (1.0 - alpha)) + 0.5)
        alpha = np.clip(np.nan_to_num(alpha, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        alpha[bad] = 0.0
        return alpha

    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n, d = x.shape
        ids = self.worker_ids
        if ids is None or ids.numel() != n:
            ids = torch.arange(n)
        ids = ids.to("cpu", torch.long)
        size = max(int(ids.max()) + 1, n)
        hist = self.history
        if hist is None or hist.shape[1] != d or hist.dtype != x.dtype:
            hist = torch.zeros(size, d, dtype=x.dtype, device=x.device)
        elif hist.shape[0] < size:
            hist = torch.cat([hist, hist.new_zeros(size - hist.shape[0], d)])
        finite = torch.isfinite(x).all(dim=1)
        step = torch.where(finite[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        hist = hist.index_add(0, ids.to(x.device), step)  # a new tensor: never in place
        self.history = hist
        rows = hist.index_select(0, ids.to(x.device))
        alpha = self.weights(rows)
        bad = ~host.to_host(finite).numpy()
        alpha[bad] = 0.0
        if alpha.sum() <= 0:
            alpha = np.where(bad, 0.0, 1.0)
            w = alpha / max(alpha.sum(), 1.0)
        else:
            w = alpha / (alpha.sum() if self.normalize else n)
        self.last_weights = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        if bad.all():
            return x.mean(0)
        return kernels.combine(x, w, bad)
