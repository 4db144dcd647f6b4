"""Workers functions (algorithm=dsgd|fedavg) and per-round participation: FedAvg's
vectorized K local steps against a per-client nn.Module + torch.optim.SGD loop, K = 1
against DSGD, seeded participation and per-round Byzantine counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from byzbench import ConfigError
from byzbench.algorithms.dsgd import DSGD
from byzbench.algorithms.fedavg import FedAvg
from byzbench.cluster import Participation
from byzbench.config import cluster_spec
from byzbench.grads import flat_params, make_unflatten

f64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(dtype=f64, d_in=6, classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 5), nn.Tanh(), nn.Linear(5, classes)).to(dtype)


def _batches(K, m, B=4, d_in=6, classes=3, dtype=f64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(m, B, d_in, generator=g, dtype=dtype),
             torch.randint(0, classes, (m, B), generator=g)) for _ in range(K)]


def _drawer(batches):
    it = iter(batches)
    return lambda: next(it)


def module_loop_fedavg(model, theta, batches, lr, mu, wd):
    """Reference: per client, a fresh nn.Module copy at theta and torch.optim.SGD for K
    steps on its own minibatches; the client sends theta - theta_i^K."""
    m = batches[0][0].shape[0]
    out = []
    for i in range(m):
        net = _mlp(dtype=theta.dtype)
        for p, v in zip(net.parameters(), make_unflatten(model)(theta).values()):
            p.data.copy_(v)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=mu, weight_decay=wd)
        for X, Y in batches:
            opt.zero_grad()
            nn.functional.cross_entropy(net(X[i]), Y[i]).backward()
            opt.step()
        out.append(theta - flat_params(net))
    return torch.stack(out)


@pytest.mark.parametrize("path", ["vmap", "replicate", "loop"])
@pytest.mark.parametrize(("K", "mu", "wd"), [(1, 0.0, 0.0), (4, 0.0, 0.0), (3, 0.9, 0.01)])
def test_vectorized_k_steps_equal_per_client_module_loop(path, K, mu, wd):
    model = _mlp()
    theta = flat_params(model)
    batches = _batches(K, m=5)
    algo = FedAvg(model, local_steps=K, client_lr=0.3, client_momentum=mu, weight_decay=wd,
                  grad_path="loop" if path == "loop" else "vmap")
    if path != "loop":  # force either exact vectorized formulation
        from byzbench.grads import make_grad_fn
        algo.grads = make_grad_fn(model, replicate=path == "replicate")
    U, losses = algo(theta, _drawer(batches))
    ref = module_loop_fedavg(model, theta, batches, 0.3, mu, wd)
    # float64 end to end; differences are summation order only (~1e-16 relative).
    torch.testing.assert_close(U, ref, rtol=1e-10, atol=1e-12)
    X0, Y0 = batches[0]
    ref_loss = torch.stack([nn.functional.cross_entropy(model(X0[i]), Y0[i]) for i in range(5)])
    torch.testing.assert_close(losses, ref_loss.detach(), rtol=1e-12, atol=0)
    assert (U != 0).all(dim=1).any()  # clients moved: the test can fail


@pytest.mark.parametrize("path", ["vmap", "loop"])
def test_k1_sends_exactly_client_lr_times_the_dsgd_gradient(path):
    """K = 1: Delta_i = eta g_i, bit for bit (eta a power of two, so the product is
    exact; step 0 uses the shared theta, the same pass as DSGD)."""
    model = _mlp(dtype=torch.float32)
    theta = flat_params(model)
    batches = _batches(1, m=6, dtype=torch.float32)
    G, L = DSGD(model, grad_path=path)(theta, _drawer(batches))
    U, L2 = FedAvg(model, local_steps=1, client_lr=0.125, grad_path=path)(theta, _drawer(batches))
    assert torch.equal(U, 0.125 * G) and torch.equal(L, L2)


@pytest.mark.parametrize(("kw", "param"), [({"local_steps": 0}, "algorithm.local_steps"),
                                           ({"client_lr": 0.0}, "algorithm.client_lr"),
                                           ({"client_lr": -1.0}, "algorithm.client_lr"),
                                           ({"client_momentum": 1.0}, "algorithm.client_momentum"),
                                           ({"weight_decay": -0.1}, "algorithm.weight_decay")])
def test_fedavg_bad_parameters_are_one_line(kw, param):
    with pytest.raises(ConfigError) as e:
        FedAvg(_mlp(), **kw)
    assert str(e.value).startswith(param) and "\n" not in str(e.value)


@pytest.mark.parametrize(("n", "frac", "p", "fd", "m", "f_fixed", "f_decl"), [
    (20, 0.2, 1.0, None, 20, 4, 4),
    (20, 0.2, 0.5, None, 10, 2, 2),
    (20, 0.2, 0.3, None, 6, 1, 1),   # 4 * 6 / 20 = 1.2 -> 1
    (20, 0.2, 0.5, 2, 10, 2, 1),     # f_declared = 2 scales to 1
    (10, 0.3, 0.5, None, 5, 2, 2),   # 3 * 5 / 10 = 1.5 -> 2 (half up)
    (10, 0.0, 0.25, None, 2, 0, 0),
])
def test_round_sizes_by_hand(n, frac, p, fd, m, f_fixed, f_decl):
    s = cluster_spec(n, frac, fd, p, "fixed")
    assert (s.per_round, s.f_fixed_round, s.f_declared_round) == (m, f_fixed, f_decl)


@pytest.mark.parametrize(("args", "param"), [
    ((20, 0.2, None, 0.0), "cluster.participation"),
    ((20, 0.2, None, 1.5), "cluster.participation"),
    ((20, 0.2, None, -0.5), "cluster.participation"),
    ((20, 0.2, None, 0.5, "some"), "cluster.byz_per_round"),
    ((20, 0.2, None, 0.2), "cluster.participation"),  # m = 4 = f: a round may be all Byzantine
])
def test_bad_participation_is_one_line(args, param):
    with pytest.raises(ConfigError) as e:
        cluster_spec(*args)
    assert str(e.value).startswith(param) and "\n" not in str(e.value)
    if args[3] == 0.2:
        assert "byz_per_round=fixed" in str(e.value)


def _participation(mode, seed=0, n=20, f=4, p=0.5):
    s = cluster_spec(n, f / n, None, p, mode)
    return Participation(s.n, s.f, s.per_round, s.f_fixed_round, mode,
                         torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["sampled", "fixed"])
def test_participation_is_seeded_and_well_formed(mode):
    a = [_participation(mode).sample() for _ in range(1)]
    pa, pb, pc = _participation(mode), _participation(mode), _participation(mode, seed=1)
    ra = [pa.sample() for _ in range(200)]
    rb = [pb.sample() for _ in range(200)]
    rc = [pc.sample() for _ in range(200)]
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(ra, rb))
    assert not all(torch.equal(x.ids, y.ids) for x, y in zip(ra, rc))
    assert torch.equal(a[0].ids, ra[0].ids)
    for r in ra:
        ids = r.ids.tolist()
        assert len(ids) == 10 and len(set(ids)) == 10 and r.n_honest + r.n_byz == 10
        assert all(i < 16 for i in ids[:r.n_honest]) and all(16 <= i < 20 for i in ids[r.n_honest:])
    counts = [r.n_byz for r in ra]
    if mode == "fixed":
        assert set(counts) == {2}
    else:
        # hypergeometric(N=20, K=4, n=10): mean 2, P(count = k) = C(4,k)C(16,10-k)/C(20,10)
        assert len(set(counts)) >= 3 and abs(sum(counts) / 200 - 2.0) < 0.3
        p0 = math.comb(16, 10) / math.comb(20, 10)
        assert abs(counts.count(0) / 200 - p0) < 0.06
    seen = torch.cat([r.ids for r in ra]).unique()
    assert seen.tolist() == list(range(20))  # every client takes part some rounds


def test_full_participation_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    p = Participation(20, 4, 20, 4, "sampled", g)
    r = p.sample()
    assert r.ids.tolist() == list(range(20)) and (r.n_honest, r.n_byz) == (16, 4)
    assert torch.equal(g.get_state(), state)
