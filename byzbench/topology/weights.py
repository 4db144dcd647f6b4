"""Gossip mixing weights ``W [n, n]`` of a graph (all n nodes, Byzantine included):
``W_ij > 0`` only on edges and the diagonal; node i's gossip combines what it holds
and what it received with row i.

* ``metropolis`` (default): ``W_ij = 1 / (1 + max(d_i, d_j))`` on edges, ``W_ii = 1 -
  sum_j W_ij``; symmetric and doubly stochastic on any graph (Xiao & Boyd, 2004; the
  weights of epfml's ``metropolis_weight``, He, Karimireddy, Jaggi, 2022).
* ``uniform``: ``W_ij = 1 / (1 + d_i)`` on node i's closed neighbourhood (the plain
  neighbourhood mean); row stochastic, doubly stochastic on regular graphs.
* ``max_degree``: ``W_ij = 1 / (1 + d_max)`` on edges, ``W_ii = 1 - d_i / (1 + d_max)``
  (Boyd, Diaconis, Xiao, 2004); symmetric, doubly stochastic.
* ``laplacian``: ``W = I - eta L`` with ``L`` the graph Laplacian and ``eta = step``, or
  ``1 / lambda_max(L)`` when ``step`` is None: Gaucher et al.'s unit edge weights
  with communication step ``1 / lambda_max`` (ICML 2025, ``topology.py``; they take
  lambda_max of the honest subgraph, byzbench of the whole graph).
"""

from __future__ import annotations

import numpy as np

from byzbench import require
from byzbench.topology.graphs import Graph

WEIGHTS = ("metropolis", "uniform", "max_degree", "laplacian")


def laplacian(graph: Graph) -> np.ndarray:
    """``L = D - A`` (float64)."""
    a = graph.adjacency.astype(np.float64)
    return np.diag(a.sum(1)) - a


def mixing_matrix(graph: Graph, method: str = "metropolis",
                  step: float | None = None) -> np.ndarray:
    """``W [n, n]`` (float64) for ``method`` (see the module docstring)."""
    require(method in WEIGHTS, "topology.weights", method, ", ".join(WEIGHTS))
    a = graph.adjacency.astype(np.float64)
    d = a.sum(1)
    n = graph.n
    if method == "metropolis":
        w = a / (1.0 + np.maximum(d[:, None], d[None, :]))
    elif method == "uniform":
        return (a + np.eye(n)) / (1.0 + d[:, None])
    elif method == "max_degree":
        w = a / (1.0 + (d.max() if n else 0.0))
    else:
        lap = laplacian(graph)
        lam = float(np.linalg.eigvalsh(lap)[-1]) if n else 0.0
        eta = step if step is not None else (1.0 / lam if lam > 0 else 0.0)
        require(isinstance(eta, (int, float)) and eta >= 0 and eta * d.max(initial=0) <= 1,
                "topology.step", step, "a number >= 0 with step * max degree <= 1")
        return np.eye(n) - eta * lap
    return w + np.diag(1.0 - w.sum(1))


def spectral_gap(w: np.ndarray) -> float:
    """``1 - |lambda_2(W)|``: the second largest eigenvalue modulus (epfml's
    ``spectral_gap``)."""
    if len(w) < 2:
        return 1.0
    ev = np.sort(np.abs(np.linalg.eigvals(w)))
    return float(1.0 - ev[-2])


def fiedler_vector(graph: Graph, nodes: np.ndarray | None = None) -> np.ndarray:
    """The unit eigenvector of the second smallest Laplacian eigenvalue of the subgraph
    on ``nodes`` (all by default), sign fixed so that its first nonzero entry is > 0."""
    a = graph.adjacency
    if nodes is not None:
        a = a[np.ix_(nodes, nodes)]
    lap = np.diag(a.sum(1).astype(np.float64)) - a
    if len(lap) < 2:
        return np.zeros(len(lap))
    v = np.linalg.eigh(lap)[1][:, 1]
    nz = np.flatnonzero(np.abs(v) > 1e-12)
    return v if not len(nz) or v[nz[0]] > 0 else -v
