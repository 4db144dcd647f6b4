"""FLTrust (Cao, Fang, Liu, Gong, NDSS 2021)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import kernels, require
from byzbench.data.root import check_server_data, draw_root  # noqa: F401 (re-exported)
from byzbench.stages import Rule, SideInputs


class FLTrust(Rule):
    r"""FLTrust: the server's own gradient :math:`g_0`, computed on a small clean root
    dataset, sets trust and scale:

    .. math:: TS_i = \mathrm{ReLU}(\cos(x_i, g_0)), \qquad
        u = \frac{1}{\sum_j TS_j} \sum_i TS_i \frac{\|g_0\|}{\|x_i\|} x_i .

    If every trust score is 0 the output is the zero vector (no step; the paper's
    formula divides by zero there); zero rows and non-finite rows get trust 0.

    Root data (``server_data``): ``size`` samples (paper: 100) drawn from the training
    set with the run's own ``server`` random stream, ``uniform`` (paper: uniformly at
    random) or ``balanced`` (``size / C`` per class), and *removed from the training
    set before it is partitioned* among workers (held out from their shards).
    Each round the server's minibatch of ``batch_size`` samples (with replacement) from
    the root data is one extra row of the *same* vectorized gradient pass as the
    workers (same parameters, same loss, same worker momentum), and the loop hands it
    to the rule with ``observe(server_grad=...)`` before aggregating; an omniscient
    attacker querying the pipeline sees it too (Cao et al.'s adaptive attack assumes
    the attacker knows the root data). The paper's server runs local iterations on the
    root data like the clients; in byzbench's gradient setting both send one
    minibatch gradient per round.

    Standalone use (no ``observe`` call, e.g. unit tests): the coordinate-wise median
    of the rows stands in for :math:`g_0` (stated so, not FLTrust's trust root).

    Args:
        n: rows it will receive (injected).
        f: declared Byzantine count (injected; unused by the rule).
        server_data: ``{size: int >= 1, draw: uniform | balanced}``, read by
            ``byzbench.build`` to carve the root dataset.

    ``last_weights [n]`` holds each row's coefficient ``TS_i ||g_0|| / (||x_i|| sum TS)``
    (scale factors included, so they need not sum to one).

    Reference: X. Cao, M. Fang, J. Liu, N. Z. Gong, "FLTrust: Byzantine-robust
    Federated Learning via Trust Bootstrapping", NDSS 2021.
    """

    needs = frozenset({"server_grad"})


    def __init__(self, n: int = 1, f: int = 0, server_data: dict | None = None):
        require(f >= 0, "agg.f", f, "f >= 0")
        # None: no root data (standalone use; a run then stops with one line in the build).
        self.server_data = None if server_data is None else check_server_data(server_data)
        self.n, self.f = n, f
        self.server_grad: Tensor | None = None
        self.last_weights: Tensor | None = None

    def observe(self, side: SideInputs) -> None:
        """The server's root-data gradient for the next call (set by the loop)."""
        self.server_grad = side.server_grad

    @kernels.single_blas
    def __call__(self, x: Tensor) -> Tensor:
        """``x [n, d] -> [d]``."""
        n = x.shape[0]
        g0 = self.server_grad
        if g0 is None:
            g0 = kernels.columnwise(kernels.median_block, x).to(x.device, x.dtype)
        g0 = g0.to(device=x.device, dtype=x.dtype)
        ref_bad = not bool(torch.isfinite(g0).all())
        sq, bad = kernels.similarity.row_sq_norms(x)
        norms = np.sqrt(sq)
        n0 = float(torch.linalg.vector_norm(g0))
        if ref_bad or n0 == 0.0:
            self.last_weights = x.new_zeros(n)
            return torch.zeros_like(x[0])
        dots = np.where(bad, 0.0, kernels.to_np(torch.nan_to_num(x) @ g0))
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(norms > 0, dots / (np.where(norms > 0, norms, 1.0) * n0), 0.0)
        ts = np.where(bad, 0.0, np.maximum(np.clip(cos, -1.0, 1.0), 0.0))
        if ts.sum() <= 0:
            self.last_weights = x.new_zeros(n)
            return torch.zeros_like(x[0])
        w = ts * n0 / np.where(norms > 0, norms, 1.0) / ts.sum()
        self.last_weights = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        return kernels.combine(x, w, bad)


    def batch(self, xs: Tensor) -> Tensor:
        """``[k, n, d] -> [k, d]``: each problem with the same server gradient (a loop:
        the rule is one matrix-vector product per problem)."""
        return torch.stack([self(x) for x in xs])

