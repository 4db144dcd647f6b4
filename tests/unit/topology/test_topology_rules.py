"""Gossip rules: hand-computed small cases, ClippedGossip at tau = inf is plain gossip,
and each rule against a per-node transcription of its reference code's update
(renaudgaucher/Byzantine-Robust-Gossip ``aggregators/robust_gossip.py`` and
``aggregators/ios.py``; epfml ``SelfCenteredClipping``) on random inputs, float64."""

from __future__ import annotations

import math

import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.gossip.bridge import Bridge
from byzbench.aggregators.gossip.clipped_gossip import ClippedGossip
from byzbench.aggregators.gossip.cs_plus_rg import CSPlusRG
from byzbench.aggregators.gossip.gossip_avg import GossipAvg
from byzbench.aggregators.gossip.gts_rg import GTSRG
from byzbench.aggregators.gossip.ios import IOS


def _rule(cls, w, b, **kw):
    r = cls(n=w.shape[1], **kw)
    r.set_mixing(w, b)
    return r


def _hand():
    xs = torch.tensor([[[0.0], [1.0], [2.0], [10.0]]], dtype=torch.float64)
    return xs, torch.full((1, 4), 0.25, dtype=torch.float64), torch.tensor([0.25],
                                                                          dtype=torch.float64)


@pytest.mark.parametrize("cls, kw, want", [
    (CSPlusRG, {}, 0.75),  # tau = d_(1) = 1: 0.25 (1 + 1 + 1)
    (GTSRG, {}, 0.75),  # keep 0, 1 and a quarter of the row at 2: 0.25 + 0.5
    (GTSRG, {"boundary": "reference"}, 0.25),  # cum == target: row at 2 gets 0
    (ClippedGossip, {}, 0.75),  # he: tau = sqrt((0 + 0.25 * 1) / 0.25) = 1
    (ClippedGossip, {"tau": "second_largest"}, 1.25),  # tau = 2: 0.25 (1 + 2 + 2)
    (ClippedGossip, {"tau": math.inf}, 3.25),  # plain gossip
    (IOS, {"f": 1}, 1.0),  # avg 3.25, the row at 10 goes: mean of 0, 1, 2
    (Bridge, {"f": 1}, 1.0),  # neighbours 1, 2, 10 trimmed to 2: (0 + 2) / 2
    (GossipAvg, {}, 3.25),
])
def test_hand_computed(cls, kw, want):
    xs, w, b = _hand()
    r = _rule(cls, w, b, **kw)
    assert r.batch(xs).item() == pytest.approx(want)
    assert r(xs[0]).item() == pytest.approx(want)  # the single call


def _random(k=6, m=5, d=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(k, m, d, generator=g, dtype=torch.float64)
    xs[:, -1] *= 20  # one far row per node
    w = torch.rand(k, m, generator=g, dtype=torch.float64) + 0.05
    w = w / w.sum(1, keepdim=True)
    b = torch.stack([torch.sort(w[i, 1:], descending=True).values[:1].sum() for i in range(k)])
    return xs, w, b


def test_clipped_gossip_tau_inf_is_plain_gossip():
    xs, w, b = _random()
    out = _rule(ClippedGossip, w, b, tau=math.inf).batch(xs)
    assert torch.allclose(out, _rule(GossipAvg, w, b).batch(xs), rtol=1e-12, atol=1e-12)


# --- transcriptions of the reference updates, one node at a time -------------------

def _rg(summand, x, w, b, step=1.0):
    """make_defense: pivot - step * summand(weights, pivot - x_j, byz_weights)."""
    return x[0] - step * summand(w, x[0] - x, b)


def _ref_cs_plus(w, g, b):
    dist = g.norm(dim=1)
    si = torch.argsort(dist)
    sd, sw = dist[si], w[si]
    cum = torch.cumsum(sw, 0)
    target = cum[-1] - 2 * b
    idx = torch.searchsorted(cum, target)
    if b == 0 or idx >= g.shape[0]:
        c = math.inf
    elif cum[idx] == target:
        c = sd[idx]
    elif cum[idx] > target:
        c = sd[idx - 1] if idx - 1 >= 0 else 0
    mask = dist[:, None].broadcast_to(g.shape) > c
    cl = torch.where(mask, g * (c / dist[:, None]), g)
    return (w[:, None] * cl).sum(0)


def _ref_gts(w, g, b):
    dist = g.norm(dim=1)
    si = torch.argsort(dist)
    sw = w[si]
    cum = torch.cumsum(sw, 0)
    target = cum[-1] - b
    idx = torch.searchsorted(cum, target)
    rest = cum[idx] - target if cum[idx] > target else 0
    sg = g[si]
    return (sw[:idx, None] * sg[:idx]).sum(0) + sg[idx] * rest


def _ref_cs_he(w, g, b):
    dist = g.norm(dim=1)
    si = torch.argsort(dist)
    sd, sw = dist[si], w[si]
    cum = torch.cumsum(sw, 0)
    idx = torch.searchsorted(cum, cum[-1] - b)
    if idx == 0:
        c = 0.0
    elif b == 0 or idx >= g.shape[0]:
        c = math.inf
    else:
        c = ((sw[:idx] * sd[:idx] ** 2).sum() / b).sqrt().item()
    mask = dist[:, None].broadcast_to(g.shape) > c
    cl = torch.where(mask, g * (c / dist[:, None]), g)
    return (w[:, None] * cl).sum(0)


def _ref_ios(x, f, w):
    trusted = w > 0
    for _ in range(f):
        avg = (w[trusted, None] * x[trusted]).sum(0) / w[trusted].sum()
        dist = (x - avg).norm(dim=1)
        dmax, arg = 0, 0
        for i, dd in enumerate(dist):
            if dd > dmax and trusted[i] and i != 0:
                dmax, arg = dd, i
        trusted[arg] = False
    return (w[trusted, None] * x[trusted]).sum(0) / w[trusted].sum()


def _ref_scclip(x, w, tau):
    """epfml SelfCenteredClipping._agg: w_self x_0 + sum_j w_j (x_0 + clip(x_j - x_0))."""
    out = w[0] * x[0]
    for j in range(1, len(x)):
        v = x[j] - x[0]
        out = out + w[j] * (x[0] + v * min(1.0, tau / v.norm().item()))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_rules_match_reference_transcriptions(seed):
    xs, w, b = _random(seed=seed)
    k = xs.shape[0]
    want = {
        "cs_plus": torch.stack([_rg(_ref_cs_plus, xs[i], w[i], b[i]) for i in range(k)]),
        "gts_ref": torch.stack([_rg(_ref_gts, xs[i], w[i], b[i]) for i in range(k)]),
        "cs_he": torch.stack([_rg(_ref_cs_he, xs[i], w[i], b[i]) for i in range(k)]),
        "ios": torch.stack([_ref_ios(xs[i], 2, w[i].clone()) for i in range(k)]),
        "cs_plus_step": torch.stack([_rg(_ref_cs_plus, xs[i], w[i], b[i], 0.5)
                                     for i in range(k)]),
    }
    got = {
        "cs_plus": _rule(CSPlusRG, w, b).batch(xs),
        "gts_ref": _rule(GTSRG, w, b, boundary="reference").batch(xs),
        "cs_he": _rule(ClippedGossip, w, b).batch(xs),
        "ios": _rule(IOS, w, b, f=2).batch(xs),
        "cs_plus_step": _rule(CSPlusRG, w, b, step=0.5).batch(xs),
    }
    for key in want:
        assert torch.allclose(got[key], want[key], rtol=1e-10, atol=1e-12), key


def test_second_largest_matches_epfml():
    xs, w, b = _random(seed=5)
    got = _rule(ClippedGossip, w, b, tau="second_largest").batch(xs)
    for i in range(xs.shape[0]):
        d = sorted((xs[i, j] - xs[i, 0]).norm().item() for j in range(1, xs.shape[1]))
        assert torch.allclose(got[i], _ref_scclip(xs[i], w[i], d[-2]), rtol=1e-10)


def test_gts_paper_keeps_exactly_total_minus_b():
    xs, w, b = _random(seed=3)
    r = _rule(GTSRG, w, b)
    dist = torch.linalg.vector_norm(xs - xs[:, :1], dim=2)
    c = r.coefficients(dist, w, b)
    assert torch.allclose(c.sum(1), w.sum(1) - b)
    assert (c <= w + 1e-15).all()


def test_coefficients_reproduce_output_and_nonfinite_rows():
    xs, w, b = _random(seed=2)
    for r in (_rule(CSPlusRG, w, b), _rule(ClippedGossip, w, b), _rule(IOS, w, b, f=1),
              _rule(GTSRG, w, b)):
        out = r.batch(xs)
        c = r.last_node_weights
        assert torch.allclose((c.unsqueeze(2) * xs).sum(1), out, atol=1e-10)
    bad = xs.clone()
    bad[:, -1] = float("inf")
    bad[0, -1, 0] = float("nan")
    for r in (_rule(CSPlusRG, w, b), _rule(ClippedGossip, w, b), _rule(IOS, w, b, f=1),
              _rule(GTSRG, w, b), _rule(Bridge, w, b, f=1)):
        assert torch.isfinite(r.batch(bad)).all(), type(r).__name__


def test_rules_that_do_not_fit_are_one_line():
    with pytest.raises(ConfigError, match=r"agg.f=3 is invalid: ios .* f <= 2"):
        IOS(n=3, f=3)
    with pytest.raises(ConfigError, match="agg.f=2 is invalid: bridge"):
        Bridge(n=4, f=2)
    with pytest.raises(ConfigError, match="topology=gossip"):
        CSPlusRG(n=4, f=1)(torch.zeros(4, 2))
