"""Graphs, Byzantine placement and mixing weights on hand-checked small cases."""

from __future__ import annotations

import numpy as np
import pytest

from byzbench import ConfigError
from byzbench.topology import graphs as G
from byzbench.topology.weights import WEIGHTS, fiedler_vector, mixing_matrix, spectral_gap


def edges(g):
    return [tuple(map(int, e)) for e in g.edges]


def test_small_graphs_by_hand():
    assert edges(G.ring(4)) == [(0, 1), (0, 3), (1, 2), (2, 3)]
    assert edges(G.ring(2)) == [(0, 1)]
    assert edges(G.star(4)) == [(0, 1), (0, 2), (0, 3)]
    assert edges(G.complete(3)) == [(0, 1), (0, 2), (1, 2)]
    # 2 x 3 torus: rows are 3-rings, columns 2-rings (one edge each).
    assert edges(G.torus(6)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 4), (2, 5), (3, 4),
                                 (3, 5), (4, 5)]
    assert G.torus(16).degrees.tolist() == [4] * 16
    # two_worlds(6, 1): cliques {0,1,2}, {3,4,5} and i -> i + 3.
    assert edges(G.two_worlds(6, 1)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 4), (2, 5),
                                         (3, 4), (3, 5), (4, 5)]
    assert edges(G.dumbbell(6)) == [(0, 1), (0, 2), (0, 5), (1, 2), (3, 4), (3, 5), (4, 5)]


def test_random_graphs_seeded_and_regular():
    a, b = G.erdos_renyi(30, 0.2, seed=3), G.erdos_renyi(30, 0.2, seed=3)
    assert np.array_equal(a.edges, b.edges)
    assert not np.array_equal(a.edges, G.erdos_renyi(30, 0.2, seed=4).edges)
    assert len(G.erdos_renyi(10, 1.0).edges) == 45 and len(G.erdos_renyi(10, 0.0).edges) == 0
    r = G.random_regular(20, 3, seed=1)
    assert r.degrees.tolist() == [3] * 20 and len(r.edges) == 30
    with pytest.raises(ConfigError, match="topology.graph.k"):
        G.random_regular(5, 3)


def test_edge_list_file(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("# a path\n0 1\n1,2\n\n2 1\n")
    assert edges(G.edge_list(3, str(p))) == [(0, 1), (1, 2)]
    p.write_text("0 7\n")
    with pytest.raises(ConfigError, match=r"topology.graph.path=.*line 1"):
        G.edge_list(3, str(p))


def test_make_graph_unknown_key_and_name():
    with pytest.raises(ConfigError, match="topology.graph.q="):
        G.make_graph(5, "ring", q=1)
    with pytest.raises(ConfigError, match="topology.graph.name='moon'"):
        G.make_graph(5, "moon")


def test_placement():
    star = G.star(6)
    assert G.byzantine_nodes(star, 1, "highest_degree").tolist() == [0]
    assert G.byzantine_nodes(G.ring(6), 2, "highest_degree").tolist() == [0, 1]
    assert G.byzantine_nodes(star, 2, "ids", [5, 2]).tolist() == [2, 5]
    r = G.byzantine_nodes(star, 3, "random", seed=7)
    assert len(set(r.tolist())) == 3 and r.tolist() == G.byzantine_nodes(star, 3, seed=7).tolist()
    with pytest.raises(ConfigError, match="topology.byzantine.ids"):
        G.byzantine_nodes(star, 2, "ids", [1])


def test_attached_placement_hand_checked():
    """The named graph is the honest nodes'; Byzantine node j links to honest node
    floor(j n_h / f) (+ floor(t n_h / links) for more links)."""
    g = G.attach(G.ring(4), 2)
    assert g.n == 6 and g.edges.tolist() == [[0, 1], [0, 3], [0, 4], [1, 2], [2, 3], [2, 5]]
    assert G.byzantine_nodes(g, 2, "attached").tolist() == [4, 5]
    assert G.attach(G.ring(4), 1, links=2).edges.tolist() == [
        [0, 1], [0, 3], [0, 4], [1, 2], [2, 3], [2, 4]]
    assert G.attach(G.ring(4), 0).edges.tolist() == G.ring(4).edges.tolist()
    with pytest.raises(ConfigError, match="topology.byzantine.links=5"):
        G.attach(G.ring(4), 1, links=5)


def test_connected():
    a = G.ring(6).adjacency
    assert G.connected(a)
    keep = np.array([0, 1, 3, 4])  # ring minus 2 and 5: two paths
    assert not G.connected(a[np.ix_(keep, keep)])


@pytest.mark.parametrize("graph", [G.ring(7), G.star(5), G.erdos_renyi(12, 0.4, 2),
                                   G.two_worlds(9, 2), G.torus(12)], ids=lambda g: g.name)
def test_metropolis_and_max_degree_doubly_stochastic(graph):
    for method in ("metropolis", "max_degree", "laplacian"):
        w = mixing_matrix(graph, method)
        assert np.allclose(w, w.T) and np.allclose(w.sum(0), 1) and np.allclose(w.sum(1), 1)
        assert (w >= -1e-12).all()
        off = ~(graph.adjacency | np.eye(graph.n, dtype=bool))
        assert (w[off] == 0).all()
    u = mixing_matrix(graph, "uniform")
    assert np.allclose(u.sum(1), 1)


def test_weights_by_hand():
    # Star on 3 nodes (0 centre, degree 2; leaves degree 1): Metropolis 1/3 on edges.
    w = mixing_matrix(G.star(3), "metropolis")
    assert np.allclose(w, [[1 / 3, 1 / 3, 1 / 3], [1 / 3, 2 / 3, 0], [1 / 3, 0, 2 / 3]])
    u = mixing_matrix(G.star(3), "uniform")
    assert np.allclose(u, [[1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0], [0.5, 0, 0.5]])
    # Ring of 4: Laplacian eigenvalues 0, 2, 2, 4 -> step 1/4.
    lap = mixing_matrix(G.ring(4), "laplacian")
    assert np.allclose(np.diag(lap), 0.5) and np.isclose(lap[0, 1], 0.25)
    assert np.isclose(spectral_gap(mixing_matrix(G.complete(5), "metropolis")), 1.0)
    assert set(WEIGHTS) == {"metropolis", "uniform", "max_degree", "laplacian"}


def test_fiedler_vector_path():
    # Path 0-1-2: Laplacian's second eigenvector is (1, 0, -1)/sqrt(2).
    g = G._graph(3, [(0, 1), (1, 2)], "path")
    assert np.allclose(fiedler_vector(g), np.array([1, 0, -1]) / np.sqrt(2))
