"""Catalogue II rules: SMEA vs a float64 brute force, CGE / FLTrust / FoolsGold /
FLAME / clipped clustering by hand, GAS vs a loop, scale-freeness and one-line errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from byzbench import ConfigError
from byzbench.aggregators.cge import CGE
from byzbench.aggregators.clipped_clustering import ClippedClustering
from byzbench.aggregators.flame import FLAME
from byzbench.aggregators.fltrust import FLTrust, check_server_data, draw_root
from byzbench.aggregators.foolsgold import FoolsGold
from byzbench.aggregators.gas import GAS
from byzbench.aggregators.median import Median
from byzbench.aggregators.smea import SMEA
from byzbench.stages import SideInputs

f64 = torch.float64


def rows(n, d, seed, spread=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return offset + spread * torch.randn(n, d, generator=g, dtype=f64)


# ------------------------------------------------------------------------------ SMEA


def smea_brute(x: np.ndarray, f: int) -> tuple[float, tuple[int, ...]]:
    """Every (n - f)-subset, top eigenvalue of its d x d covariance (1/|S|), float64."""
    n = len(x)
    best = (math.inf, ())
    for s in itertools.combinations(range(n), n - f):
        lam = np.linalg.eigvalsh(np.cov(x[list(s)].T, bias=True))[-1]
        if lam < best[0]:
            best = (lam, s)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_smea_matches_float64_brute_force_on_close_rows(seed):
    # Rows share a large common part (1e3) and differ by ~1e-2: the regime where a raw
    # Gram matrix cancels; n = 9, f = 2 (36 subsets), d = 6 < n so spectra are not flat.
    n, f, d = 9, 2, 6
    x = rows(n, d, seed, spread=0.01) + rows(1, d, 100 + seed, spread=1e3)
    x[:f] += 0.02 * rows(f, d, 200 + seed)
    lam, s = smea_brute(x.numpy(), f)
    rule = SMEA(n, f)
    out = rule(x)
    sel = tuple(np.flatnonzero(rule.last_weights.numpy() > 0))
    assert sel == s
    # 1e-9 relative: float64 eigenvalues of a 7 x 7 vs a 6 x 6 matrix built differently.
    assert rule.last_score == pytest.approx(lam, rel=1e-9)
    torch.testing.assert_close(out, x[list(s)].mean(0), rtol=1e-12, atol=1e-9)


def test_smea_high_dimension_and_float32():
    n, f, d = 8, 3, 50
    x = rows(n, d, 3)
    x[:f] = x[:f] * 0.2 + 3.0  # tight but far group: SMEA must not pick it if spread
    lam, s = smea_brute(x.numpy(), f)
    rule = SMEA(n, f)
    rule(x)
    assert tuple(np.flatnonzero(rule.last_weights.numpy() > 0)) == s
    out32 = SMEA(n, f)(x.float())
    torch.testing.assert_close(out32.double(), x[list(s)].mean(0), rtol=1e-5, atol=1e-5)


def test_smea_refuses_beyond_limit_in_one_line():
    with pytest.raises(ConfigError, match=r"agg.f=10 .*binom\(n=30, f=10\).*max_subsets") as e:
        SMEA(30, 10)
    assert "\n" not in str(e.value)
    SMEA(30, 10, max_subsets=math.comb(30, 10))  # raising the limit is allowed
    with pytest.raises(ConfigError, match="2f < n"):
        SMEA(6, 3)


# ------------------------------------------------------------------------------- CGE


def test_cge_by_hand():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [10.0, 0.0]], dtype=f64)
    # norms 5, 1, 2, 10; f = 1 keeps rows 1, 2, 0: mean ((3+1+0)/3, (4+0+2)/3)
    rule = CGE(4, 1)
    torch.testing.assert_close(rule(x), torch.tensor([4 / 3, 2.0], dtype=f64))
    assert rule.last_weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0])
    torch.testing.assert_close(CGE(4, 1, reduce="sum")(x), torch.tensor([4.0, 6.0], dtype=f64))
    x[1, 0] = float("nan")  # a non-finite row is the "largest": rows 2, 0, 3 kept
    torch.testing.assert_close(CGE(4, 1)(x), torch.tensor([13 / 3, 2.0], dtype=f64))
    with pytest.raises(ConfigError, match="agg.reduce"):
        CGE(4, 1, reduce="median")


# --------------------------------------------------------------------------- FLTrust


def test_fltrust_by_hand():
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0]], dtype=f64)
    rule = FLTrust(4, 1)
    rule.observe(SideInputs(server_grad=torch.tensor([1.0, 0.0], dtype=f64)))
    # trust: cos = 1, 0, -1 -> 0, 1/sqrt2; rows rescaled to ||g0|| = 1:
    # (1 * (1, 0) + (1/sqrt2) * (1/sqrt2, 1/sqrt2)) / (1 + 1/sqrt2)
    r = 1 / math.sqrt(2)
    want = torch.tensor([(1 + 0.5) / (1 + r), 0.5 / (1 + r)], dtype=f64)
    torch.testing.assert_close(rule(x), want)
    # coefficient of row i: TS_i ||g0|| / ||x_i|| / sum TS
    assert rule.last_weights.tolist() == pytest.approx(
        [0.5 / (1 + r), 0.0, 0.0, r / math.sqrt(2) / (1 + r)])
    # scale-free in the rows; proportional to the server's gradient
    torch.testing.assert_close(rule(1e4 * x), want)
    rule.observe(SideInputs(server_grad=torch.tensor([3.0, 0.0], dtype=f64)))
    torch.testing.assert_close(rule(x), 3 * want)
    # no positive trust: no step
    rule.observe(SideInputs(server_grad=torch.tensor([0.0, -1.0], dtype=f64)))
    assert torch.equal(rule(x[[0, 2]]), torch.zeros(2, dtype=f64))


def test_fltrust_server_data_checks_and_draws():
    assert check_server_data({"size": 5, "draw": "balanced"}) == {"size": 5, "draw": "balanced"}
    for bad, key in (({"size": 0}, "size"), ({"draw": "x"}, "draw"), ({"sz": 3}, "sz")):
        with pytest.raises(ConfigError, match=f"agg.server_data.{key}"):
            check_server_data(bad)
    y = torch.arange(40) % 4
    g = torch.Generator().manual_seed(0)
    idx = draw_root(y, {"size": 8, "draw": "balanced"}, 4, g)
    assert torch.bincount(y[idx], minlength=4).tolist() == [2, 2, 2, 2]
    assert len(set(idx.tolist())) == 8
    with pytest.raises(ConfigError, match="agg.server_data.size"):
        draw_root(y, {"size": 40, "draw": "uniform"}, 4, g)


# ------------------------------------------------------------------------- FoolsGold


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


# ----------------------------------------------------------------------------- FLAME


def test_flame_by_hand():
    e = torch.tensor([1.0, 0.0, 0.0], dtype=f64)
    honest = torch.stack([k * e for k in (1.0, 2.0, 3.0, 4.0, 5.0)])
    byz = torch.tensor([[-100.0, 1.0, 0.0], [-100.0, 0.0, 1.0]], dtype=f64)
    x = torch.cat([honest, byz])
    rule = FLAME(7, 2)
    # HDBSCAN keeps the 5 parallel rows; median norm over all 7 rows = 4;
    # clipped norms 1, 2, 3, 4, 4 -> mean 2.8
    torch.testing.assert_close(rule(x), 2.8 * e)
    assert rule.last_admitted.tolist() == [True] * 5 + [False] * 2
    noisy = FLAME(7, 2, noise=0.01, generator=torch.Generator().manual_seed(4))
    z = torch.randn(3, generator=torch.Generator().manual_seed(4), dtype=f64)
    torch.testing.assert_close(noisy(x), 2.8 * e + 0.01 * 4.0 * z)


# ---------------------------------------------------------------- clipped clustering


def test_clipped_clustering_by_hand_and_history():
    e = torch.tensor([1.0, 0.0], dtype=f64)
    honest = torch.stack([k * e for k in (1.0, 2.0, 3.0, 4.0)]) + torch.tensor([0.0, 0.01])
    byz = torch.tensor([[-9.0, 1.0], [-9.0, 1.2]], dtype=f64)
    x = torch.cat([honest, byz])
    rule = ClippedClustering(6, 2)
    out = rule(x)
    norms = x.norm(dim=1)
    tau = float(np.median(norms.numpy()))
    assert rule.last_tau == pytest.approx(tau)
    want = (honest * torch.clamp(tau / honest.norm(dim=1), max=1.0)[:, None]).mean(0)
    torch.testing.assert_close(out, want)
    rule(0.5 * x)  # history holds both rounds' norms
    assert rule.last_tau == pytest.approx(np.median(np.concatenate([norms, 0.5 * norms])))
    assert len(rule.norm_history) == 12


# ------------------------------------------------------------------------------- GAS


def test_gas_matches_loop_reference_and_errors():
    n, f, d, p = 7, 2, 10, 3
    x = rows(n, d, 5)
    x[:f] += 4.0
    rule = GAS(n, f, p=p, base="median")
    out = rule(x)
    med = Median(n, f)
    bounds = [(q * d) // p for q in range(p + 1)]
    score = [0.0] * n
    for q in range(p):
        sub = x[:, bounds[q]:bounds[q + 1]]
        a = med(sub)
        for i in range(n):
            score[i] += float((sub[i] - a).norm())
    keep = sorted(range(n), key=lambda i: (score[i], i))[: n - f]
    torch.testing.assert_close(out, x[sorted(keep)].mean(0))
    assert rule.last_scores.tolist() == pytest.approx(score)
    with pytest.raises(ConfigError, match="agg.base='nope'"):
        GAS(n, f, base="nope")
    with pytest.raises(ConfigError, match="agg.p"):
        GAS(n, f, p=0)
    r = GAS(n, f, p=4, split="random", generator=torch.Generator().manual_seed(1))
    cols = torch.cat(r.groups(d, x.device))
    assert sorted(cols.tolist()) == list(range(d))


# ----------------------------------------------------------------------- scale-free

RULES = {
    "smea": lambda: SMEA(9, 2), "cge": lambda: CGE(9, 2),
    "clipped_clustering": lambda: ClippedClustering(9, 2), "flame": lambda: FLAME(9, 2),
    "foolsgold": lambda: FoolsGold(9, 2), "fltrust": lambda: FLTrust(9, 2),
    "gas": lambda: GAS(9, 2, p=3),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_new_rules_are_scale_free(name):
    x = rows(9, 12, 7, offset=0.5)
    x[:2] = -3 * x[:2]
    for c in (1e-4, 1e4):
        a, b = RULES[name](), RULES[name]()
        for _ in range(2):  # stateful rules: two rounds
            out, out_c = a(x), b(c * x)
        torch.testing.assert_close(out_c, c * out, rtol=1e-9, atol=0.0)
