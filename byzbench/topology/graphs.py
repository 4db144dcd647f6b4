"""Communication graphs of a decentralized run (undirected, simple). With placement
``attached`` (default) the named graph is the honest nodes' graph and the Byzantine
nodes are attached to it (:func:`attach`); otherwise it spans all n nodes and
``placement`` chooses which of them are Byzantine.

Every constructor returns a :class:`Graph` with its edges as an ``[E, 2]`` array of
``i < j`` pairs, sorted and without duplicates. Random graphs draw from a numpy
generator seeded by their ``seed`` (the graph is part of the experiment's design,
not of a run's randomness).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from byzbench import ConfigError, require


@dataclass(frozen=True)
class Graph:
    """An undirected simple graph on nodes ``0..n-1``; ``edges [E, 2]`` with i < j."""

    n: int
    edges: np.ndarray
    name: str = "graph"

    @property
    def adjacency(self) -> np.ndarray:
        """``[n, n]`` boolean, symmetric, zero diagonal."""
        a = np.zeros((self.n, self.n), dtype=bool)
        if len(self.edges):
            a[self.edges[:, 0], self.edges[:, 1]] = True
            a[self.edges[:, 1], self.edges[:, 0]] = True
        return a

    @property
    def degrees(self) -> np.ndarray:
        return self.adjacency.sum(1)

    def neighbours(self, i: int) -> np.ndarray:
        """Node i's neighbours, in increasing id order."""
        return np.flatnonzero(self.adjacency[i])


def _graph(n: int, pairs, name: str) -> Graph:
    e = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
    e = e[e[:, 0] != e[:, 1]]
    e = np.sort(e, axis=1)
    e = np.unique(e, axis=0) if len(e) else e
    return Graph(n=n, edges=e, name=name)


def _check_n(n: int, least: int, graph: str) -> None:
    require(isinstance(n, int) and n >= least, "cluster.n_workers", n,
            f"topology.graph={graph} needs an integer >= {least}")


def complete(n: int) -> Graph:
    """Every pair of nodes linked (the parameter server's information pattern)."""
    _check_n(n, 1, "complete")
    return _graph(n, ((i, j) for i in range(n) for j in range(i + 1, n)), "complete")


def ring(n: int) -> Graph:
    """Cycle ``0 - 1 - ... - (n-1) - 0`` (n = 2: one edge)."""
    _check_n(n, 2, "ring")
    return _graph(n, ((i, (i + 1) % n) for i in range(n)), "ring")


def star(n: int) -> Graph:
    """Node 0 linked to every other node."""
    _check_n(n, 2, "star")
    return _graph(n, ((0, i) for i in range(1, n)), "star")


def torus(n: int, rows: int | None = None) -> Graph:
    """2-D periodic grid of ``rows x (n / rows)`` nodes (node ``r * c + k`` at row r,
    column k), the Cartesian product of two rings; ``rows`` None: the largest divisor
    of n not above sqrt(n). As epfml's ``TorusGraph`` (He et al., 2022)."""
    _check_n(n, 4, "torus")
    if rows is None:
        rows = max(r for r in range(1, int(np.sqrt(n)) + 1) if n % r == 0)
    require(isinstance(rows, int) and rows >= 1 and n % rows == 0, "topology.graph.rows",
            rows, f"a divisor of n_workers={n}")
    cols = n // rows
    pairs = []
    for r in range(rows):
        for c in range(cols):
            v = r * cols + c
            pairs.append((v, r * cols + (c + 1) % cols))
            pairs.append((v, ((r + 1) % rows) * cols + c))
    return _graph(n, pairs, "torus")


def erdos_renyi(n: int, p: float | None = None, seed: int = 0) -> Graph:
    """G(n, p): each of the n(n-1)/2 pairs linked independently with probability p
    (numpy generator seeded ``seed``; pairs in lexicographic order); ``p`` None:
    ``min(1, 2 ln(n) / n)``, twice the connectivity threshold."""
    _check_n(n, 1, "erdos_renyi")
    if p is None:
        p = min(1.0, 2.0 * np.log(max(n, 2)) / n)
    require(isinstance(p, (int, float)) and 0.0 <= p <= 1.0, "topology.graph.p", p,
            "a probability in [0, 1]")
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(len(i)) < p
    return _graph(n, zip(i[keep], j[keep]), "erdos_renyi")


def random_regular(n: int, k: int, seed: int = 0, tries: int = 1000) -> Graph:
    """A uniformly paired k-regular graph (configuration model, a new pairing until it
    is simple: no loop, no repeated edge); needs ``n k`` even and ``k < n``."""
    _check_n(n, 2, "random_regular")
    require(isinstance(k, int) and 0 <= k < n and (n * k) % 2 == 0, "topology.graph.k", k,
            f"an integer in [0, n_workers={n}) with n_workers * k even")
    rng = np.random.default_rng(seed)
    stubs = np.repeat(np.arange(n), k)
    for _ in range(tries):
        e = rng.permutation(stubs).reshape(-1, 2)
        if (e[:, 0] != e[:, 1]).all():
            g = _graph(n, e, "random_regular")
            if len(g.edges) == len(e):
                return g
    raise ConfigError(f"topology.graph.k={k} is invalid: no simple {k}-regular graph on "
                      f"{n} nodes found in {tries} pairings")


def two_worlds(n: int, links: int = 1) -> Graph:
    """Two cliques of ``n // 2`` and ``n - n // 2`` nodes; node i < n // 2 of the first
    is also linked to nodes ``(i + k) mod (n // 2) + n // 2`` of the second for
    k < ``links``. As Gaucher et al.'s ``two_worlds`` (ICML 2025, ``topology.py``)."""
    _check_n(n, 2, "two_worlds")
    h = n // 2
    require(isinstance(links, int) and 0 <= links <= n - h, "topology.graph.links", links,
            f"an integer in [0, {n - h}]")
    pairs = [(i, j) for i in range(h) for j in range(i + 1, h)]
    pairs += [(i, j) for i in range(h, n) for j in range(i + 1, n)]
    pairs += [(i, (i + k) % h + h) for i in range(h) for k in range(links)]
    return _graph(n, pairs, "two_worlds")


def dumbbell(n: int) -> Graph:
    """Two cliques of ``n // 2`` and ``n - n // 2`` nodes joined by one bridge edge
    ``(0, n - 1)``, as epfml's ``Dumbbell`` (He, Karimireddy, Jaggi, 2022) without its
    Byzantine and random edges (place Byzantine nodes with ``topology.byzantine``)."""
    _check_n(n, 2, "dumbbell")
    h = n // 2
    pairs = [(i, j) for i in range(h) for j in range(i + 1, h)]
    pairs += [(i, j) for i in range(h, n) for j in range(i + 1, n)]
    pairs.append((0, n - 1))
    return _graph(n, pairs, "dumbbell")


def edge_list(n: int, path: str) -> Graph:
    """Edges read from a text file, one ``i j`` pair of node ids in [0, n) per line
    (``#`` starts a comment; commas allowed as separators)."""
    p = Path(path)
    require(p.is_file(), "topology.graph.path", path, "an existing edge-list file")
    pairs = []
    for k, line in enumerate(p.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        parts = line.split()
        ok = len(parts) == 2 and all(s.lstrip("-").isdigit() for s in parts)
        require(ok and all(0 <= int(s) < n for s in parts), "topology.graph.path", path,
                f"line {k} ({line!r}) is not two node ids in [0, n_workers={n})")
        pairs.append((int(parts[0]), int(parts[1])))
    return _graph(n, pairs, "edge_list")


GRAPHS = {"complete": complete, "ring": ring, "star": star, "torus": torus,
          "erdos_renyi": erdos_renyi, "random_regular": random_regular,
          "two_worlds": two_worlds, "dumbbell": dumbbell, "edge_list": edge_list}


def make_graph(n: int, name: str, **params) -> Graph:
    """The graph ``name`` (a key of GRAPHS) on n nodes with its parameters."""
    require(name in GRAPHS, "topology.graph.name", name, ", ".join(GRAPHS))
    import inspect

    allowed = set(inspect.signature(GRAPHS[name]).parameters) - {"n", "tries"}
    for k in params:
        names = ", ".join(sorted(allowed)) or "(none)"
        require(k in allowed, f"topology.graph.{k}", params[k],
                f"not a parameter of graph {name}: allowed {names}")
    return GRAPHS[name](n, **params)


def connected(adj: np.ndarray) -> bool:
    """Whether the graph of the boolean adjacency ``adj [m, m]`` is connected (m >= 1)."""
    m = len(adj)
    if m <= 1:
        return True
    seen = np.zeros(m, dtype=bool)
    seen[0] = True
    frontier = seen.copy()
    while frontier.any():
        nxt = adj[frontier].any(0) & ~seen
        seen |= nxt
        frontier = nxt
    return bool(seen.all())


PLACEMENTS = ("attached", "random", "highest_degree", "ids")


def attach(graph: Graph, f: int, links: int = 1) -> Graph:
    """``graph`` as the honest nodes' graph plus f Byzantine nodes ``n_h .. n_h + f - 1``,
    each linked to ``links`` honest nodes spread evenly: Byzantine node j to honest nodes
    ``(floor(j n_h / f) + floor(t n_h / links)) mod n_h``, t < links (He, Karimireddy,
    Jaggi 2022's convention: epfml's ``Dumbbell`` and ``TwoCliquesWithByzantine`` attach
    the Byzantine nodes to an honest graph, one link each)."""
    h = graph.n
    require(isinstance(links, int) and 1 <= links <= h, "topology.byzantine.links", links,
            f"an integer in [1, {h}] (the honest nodes)")
    pairs = [tuple(e) for e in graph.edges.tolist()]
    for j in range(f):
        pairs += [((j * h // f + t * h // links) % h, h + j) for t in range(links)]
    return _graph(h + f, pairs, graph.name)


def byzantine_nodes(graph: Graph, f: int, placement: str = "random",
                    ids: list[int] | None = None, seed: int = 0) -> np.ndarray:
    """The f Byzantine node ids (sorted): ``attached`` (the last f ids, as
    :func:`attach` builds them), ``random`` (uniform f-subset, numpy generator seeded
    ``seed``), ``highest_degree`` (the f largest degrees, ties to the lower id), or
    ``ids`` (exactly the given list, of length f)."""
    require(placement in PLACEMENTS, "topology.byzantine.placement", placement,
            ", ".join(PLACEMENTS))
    n = graph.n
    if placement == "attached":
        return np.arange(n - f, n, dtype=np.int64)
    if placement == "ids":
        ok = (ids is not None and len(ids) == f and len(set(ids)) == f
              and all(isinstance(i, int) and 0 <= i < n for i in ids))
        require(ok, "topology.byzantine.ids", ids,
                f"{f} distinct node ids in [0, {n}) (f = floor(byz_frac * n_workers))")
        return np.sort(np.asarray(ids, dtype=np.int64))
    if placement == "highest_degree":
        order = np.lexsort((np.arange(n), -graph.degrees))
        return np.sort(order[:f])
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=f, replace=False)).astype(np.int64)
