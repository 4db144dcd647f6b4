"""Scale-free attacks and explicit attacker randomness.

* every attack option in conf/attack (auto-discovered, tuned variants included) is
  equivariant: ``attack(c H) = c attack(H)`` for c in {1e-3, 1, 1e3}, against mean,
  median, trmean, krum and nnm + krum (rtol 1e-4, float64; the own gradients and the
  previous aggregate are scaled too), except the attacks that are absolute by
  definition (``ABSOLUTE``);
* queries use the attacker's own randomness by default: the real round's buckets do
  not depend on how many queries the attacker made; ``server_randomness`` shows the
  attacker the server's exact draws and row order.
"""

from __future__ import annotations

import pytest
import torch

from byzbench.aggregators.base import Pipeline
from byzbench.attacks.base import RoundContext
from tests.unit.test_attacks import YAMLS, instantiate_attack, load

agg = pytest.importorskip("byzbench.aggregators.krum")
from byzbench.aggregators.krum import Krum  # noqa: E402
from byzbench.aggregators.mean import Mean  # noqa: E402
from byzbench.aggregators.median import Median  # noqa: E402
from byzbench.aggregators.trmean import TrMean  # noqa: E402
from byzbench.preaggregators.bucketing import Bucketing  # noqa: E402
from byzbench.preaggregators.nnm import NNM  # noqa: E402

N, F, D = 11, 2, 7
f64 = torch.float64
# Absolute by definition, with the reason (docs/ATTACKS.md lists them too).
ABSOLUTE = {
    "inf_grad": "sends +inf whatever the gradients",
    "nan_grad": "sends nan whatever the gradients",
    "gaussian": "N(mean, std^2) ignores the gradients (Blanchard et al.); unit: spread "
                "makes it scale-free",
}
PIPELINES = {
    "mean": lambda: Pipeline([], Mean(N, F)),
    "median": lambda: Pipeline([], Median(N, F)),
    "trmean": lambda: Pipeline([], TrMean(N, F)),
    "krum": lambda: Pipeline([], Krum(N, F)),
    "nnm+krum": lambda: Pipeline([NNM(N, F)], Krum(N, F)),
}


def _run(cfg: dict, rule: str, c: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    honest = c * (torch.randn(N - F, D, generator=g, dtype=f64) + 0.4)
    own = c * (torch.randn(F, D, generator=g, dtype=f64) - 0.2)
    prev = c * torch.randn(D, generator=g, dtype=f64)
    ctx = RoundContext(t=3, n=N, f=F, f_declared=F, pipeline=PIPELINES[rule](),
                       prev_aggregate=prev, byz_grads=own,
                       generator=torch.Generator().manual_seed(9), query_seed=11)
    return instantiate_attack(cfg, n=N, f=F)(honest, ctx)


def _configs():
    for p in YAMLS:
        cfg = load(p)
        yield pytest.param(cfg, id=p.stem)
        if "tune" in cfg:
            yield pytest.param({**cfg, "tune": {"budget": 8}}, id=p.stem + "+tune")


@pytest.mark.parametrize("rule", sorted(PIPELINES))
@pytest.mark.parametrize("cfg", list(_configs()))
def test_attack_is_scale_equivariant(cfg, rule):
    name = cfg["_target_"].split(".")[2]
    stem = next(p.stem for p in YAMLS if load(p)["_target_"] == cfg["_target_"])
    if stem in ABSOLUTE or name in ("inf_grad", "nan_grad"):
        pytest.skip(f"absolute by definition: {ABSOLUTE.get(stem, name)}")
    base = _run(cfg, rule, 1.0)
    for c in (1e-3, 1e3):
        torch.testing.assert_close(_run(cfg, rule, c), c * base, rtol=1e-4, atol=0)


def test_absolute_list_is_current():
    stems = {p.stem for p in YAMLS}
    assert set(ABSOLUTE) <= stems


def _bucketing_round(queries: int, server: bool):
    """Real aggregation after ``queries`` attacker queries; returns (query, real)."""
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(0), dtype=f64)
    pipe = Pipeline([Bucketing(N, F, s=2, generator=torch.Generator().manual_seed(1))],
                    Mean(6, F))
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(2))
    ctx = RoundContext(t=0, n=N, f=F, f_declared=F, pipeline=pipe, perm=perm,
                       server_randomness=server, query_seed=123)
    q = [ctx.query(x) for _ in range(queries)]
    real = pipe(x[perm])
    return q, real


def test_queries_do_not_touch_server_randomness():
    _, real0 = _bucketing_round(0, server=False)
    for k in (1, 5):
        q, real = _bucketing_round(k, server=False)
        assert torch.equal(real, real0)  # the round's buckets ignore the attacker's queries
        assert all(torch.equal(qi, q[0]) for qi in q)  # common random numbers in a round
        assert not torch.equal(q[0], real)  # own draws differ from the server's
    q, real = _bucketing_round(3, server=True)
    torch.testing.assert_close(q[0], real, rtol=0, atol=1e-12)  # strongest attacker
    _, real_s = _bucketing_round(0, server=True)
    assert torch.equal(real, real_s)


def test_query_weights_follow_rows_through_the_permutation():
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(0), dtype=f64)
    x[-F:] = x[:N - F].mean(0)  # the Byzantine rows sit at the honest mean: Krum picks one
    krum = Krum(N, F)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(4))
    for server in (False, True):
        ctx = RoundContext(t=0, n=N, f=F, f_declared=F, pipeline=Pipeline([], krum),
                           perm=perm, server_randomness=server)
        agg, w = ctx.query(x, weights=True)
        i = int(w.argmax())
        assert i >= N - F and torch.equal(agg, x[i])
