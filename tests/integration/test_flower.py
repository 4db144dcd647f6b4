"""Flower integration (``pip install -e ".[flower]"``): byzbench's pipelines as a Flower
strategy, Byzantine clients, parameter round trips. Skipped without flwr.

One Flower simulation (``run_simulation``, Ray backend, local, 1 CPU) is shared by the
module: 10 digits clients (MLP, hidden [16]), clients 8 and 9 bit-flipping their updates
(client-side wrapper), and four strategies of 3 rounds each, run one after the other
from the same initial model: krum after nnm, centered clipping (stateful), and the
server-side ALIE attack against the mean and against krum.
"""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # before flwr is imported
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
pytest.importorskip("flwr")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    Metadata,
    MetricRecord,
    RecordDict,
)
from omegaconf import OmegaConf  # noqa: E402

from byzbench import ConfigError  # noqa: E402
from byzbench.attacks.base import RoundContext  # noqa: E402
from byzbench.build import build_attack, build_pipeline, instantiate_component  # noqa: E402
from byzbench.config import ClusterSpec  # noqa: E402
from byzbench.grads import flat_params  # noqa: E402
from byzbench.integrations.flower import (  # noqa: E402
    RobustStrategy,
    TorchTask,
    arrays_to_vector,
    byzantine_train,
    compose,
    load_model_arrays,
    local_backend_config,
    model_arrays,
    poison_batch,
    vector_to_arrays,
)

from .conftest import conf_options  # noqa: E402

pytestmark = pytest.mark.flower

N, BYZ, ROUNDS = 10, (8, 9), 3
TASK = dict(options={"model": {"hidden": [16]}}, local_steps=2, lr=0.1, batch_size=16)
# name -> (RobustStrategy arguments, composed groups for the reference pipeline)
STRATEGIES = {
    "krum_nnm": dict(agg="krum", preagg=["nnm"], f=2),
    "cclip": dict(agg="cclip", f=2),
    "alie_mean": dict(agg="mean", f=2, attack="alie"),
    "alie_krum": dict(agg="krum", f=2, attack="alie"),
}
# float32 end to end, the same operations in the same order: equality is expected to be
# exact; the tolerance allows one float32 rounding of the aggregate's entries.
RTOL, ATOL = 1e-6, 1e-7


@pytest.fixture(scope="module")
def sim():
    """Run the shared simulation once: ``{name: strategy}``, Flower's results, wall time."""
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    task = TorchTask(N, **TASK)
    strategies = {k: RobustStrategy(**v, byzantine=BYZ, keep_history=True,
                                    fraction_evaluate=0.0, min_train_nodes=N,
                                    min_available_nodes=N) for k, v in STRATEGIES.items()}
    results, init = {}, task.initial_arrays()
    server = ServerApp()

    @server.main()
    def main(grid, context):
        for name, s in strategies.items():
            results[name] = s.start(grid=grid, initial_arrays=init, num_rounds=ROUNDS)

    t0 = time.perf_counter()
    run_simulation(server, task.client_app(byzantine=BYZ, attack="bit_flip"),
                   num_supernodes=N, backend_config=local_backend_config(1))
    wall = time.perf_counter() - t0
    print(f"\nflower simulation: {len(strategies)} strategies x {N} clients x {ROUNDS} "
          f"rounds in {wall:.1f} s")
    assert set(results) == set(strategies)
    return strategies, results, init, task


def _reference(args: dict):
    """byzbench's own pipeline for these strategy arguments, built independently."""
    cfg = compose(agg=args["agg"], preagg=args.get("preagg", []))
    from byzbench.build import make_generator

    return build_pipeline(OmegaConf.to_container(cfg.preagg), cfg.agg, N, args["f"],
                          make_generator(0, "agg"))


def _vec(rec: ArrayRecord) -> torch.Tensor:
    return arrays_to_vector([rec[k].numpy() for k in rec.keys()])


# The Ray simulation (20-30 s of start-up here) is slow: .ci/run runs it with -m flower.
@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_aggregate_equals_byzbench_pipeline(sim, name):
    """Each round, Flower's RobustStrategy aggregate equals byzbench's pipeline (built
    on its own, state carried across the rounds) on the same rows; honest rows are the
    global model minus the clients' replies; Flower's next global model (and its final
    one) is global - aggregate."""
    strategies, results, init, _ = sim
    s, ref = strategies[name], _reference(STRATEGIES[name])
    assert [h.server_round for h in s.history] == list(range(1, ROUNDS + 1))
    g = _vec(init)
    for h in s.history:
        torch.testing.assert_close(h.global_vector, g, rtol=0, atol=0)
        assert sorted(h.partitions) == list(range(N))
        assert h.byzantine.tolist() == [p in BYZ for p in h.partitions]
        replies = g - torch.stack([arrays_to_vector(r) for r in h.replies])
        keep = ~h.byzantine if STRATEGIES[name].get("attack") else torch.ones(N, dtype=bool)
        torch.testing.assert_close(h.updates[keep], replies[keep], rtol=0, atol=0)
        u = ref(h.updates)
        torch.testing.assert_close(h.aggregate, u, rtol=RTOL, atol=ATOL)
        g = arrays_to_vector(vector_to_arrays(g - u, [init[k].numpy() for k in init.keys()]))
    torch.testing.assert_close(_vec(results[name].arrays), g, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_bit_flip_clients_and_metrics(sim):
    """Clients 8 and 9 send minus their honest update (recomputed here: local training
    is seeded by client and round); krum after NNM puts no weight on them; the metrics
    carry the pipeline's diagnostics (cclip's clipped fraction)."""
    strategies, results, _, task = sim
    s = strategies["krum_nnm"]
    for h in s.history:
        like = vector_to_arrays(h.global_vector, h.replies[0])
        for k in torch.nonzero(h.byzantine).flatten().tolist():
            honest, _, _ = task.train(like, h.partitions[k], h.server_round)
            p = h.global_vector - arrays_to_vector(honest)
            # w - (-p) then w - reply in float32: one rounding of |w| per entry
            torch.testing.assert_close(h.updates[k], -p, rtol=0, atol=1e-6)
    for r in range(1, ROUNDS + 1):
        m = results["krum_nnm"].train_metrics_clientapp[r]
        assert m["byz_weight"] == 0.0
        assert "partition-id" not in m and "train_loss" in m
        c = results["cclip"].train_metrics_clientapp[r]
        assert 0.0 <= c["cclip_clipped"] <= 1.0 and c["agg_norm"] > 0


@pytest.mark.slow
def test_alie_hits_krum_harder_than_mean(sim):
    """ALIE (Baruch et al., NeurIPS 2019): its f identical rows mean - z std sit inside
    the honest cloud, so krum selects one (Byzantine weight 1, error ||b - mean||) while
    the mean moves f/n of that (weight f/n = 0.2): error(krum) = (n/f) error(mean) = 5x
    in round 1 (same initial model, same honest updates), and krum is worse every round."""
    strategies, results, _, _ = sim
    mean_m, krum_m = (results[k].train_metrics_clientapp for k in ("alie_mean", "alie_krum"))
    for r in range(1, ROUNDS + 1):
        assert krum_m[r]["byz_weight"] == pytest.approx(1.0)
        assert mean_m[r]["byz_weight"] == pytest.approx(len(BYZ) / N)
        assert krum_m[r]["agg_error"] > 2 * mean_m[r]["agg_error"]
    assert krum_m[1]["agg_error"] == pytest.approx(N / len(BYZ) * mean_m[1]["agg_error"],
                                                   rel=1e-4)
    # the Byzantine rows are byzbench's ALIE of the round's honest updates
    h = strategies["alie_krum"].history[0]
    attack = build_attack(compose(attack="alie").attack, ClusterSpec(N, len(BYZ), 2), 10)
    b = attack(h.updates[~h.byzantine], RoundContext(t=0, n=N, f=len(BYZ), f_declared=2))
    torch.testing.assert_close(h.updates[h.byzantine], b, rtol=0, atol=0)


# ------------------------------------------------------------ without a simulation


@pytest.mark.parametrize("path", conf_options("model"), ids=lambda p: p.stem)
def test_every_model_round_trips(path, model_shapes):
    """model -> Flower ArrayRecord (each array serialized to bytes) -> one
    vector -> arrays -> a freshly initialized model: the same state_dict, bit for bit;
    for a model without buffers the vector is byzbench's own theta (flat_params)."""
    assert path.stem in model_shapes, f"give {path.stem} an input shape in tests/conftest.py"

    def build(seed):
        torch.manual_seed(seed)
        return instantiate_component(OmegaConf.to_container(OmegaConf.load(path)), "model",
                                     input_shape=model_shapes[path.stem], num_classes=7)

    model = build(0)
    rec = ArrayRecord(model.state_dict())  # Flower's own torch -> bytes conversion
    arrays = rec.to_numpy_ndarrays()
    assert all(np.array_equal(a, b) for a, b in zip(arrays, model_arrays(model).values()))
    vec = arrays_to_vector(arrays)
    back = vector_to_arrays(vec, arrays)
    other = load_model_arrays(build(1), back)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert a.dtype == b.dtype and torch.equal(a, b), k
    if not list(model.buffers()):
        assert torch.equal(vec, flat_params(model))


class _Grid:
    """The part of Flower's Grid that FedAvg's configure_train reads: N nodes."""

    def get_node_ids(self) -> list[int]:
        return list(range(1, N + 1))


def _one_round(monkeypatch, strategy: RobustStrategy, rows: np.ndarray):
    """One in-process round (no Ray): configure_train on the global model w = (a [2, 3]
    float32 array, an int64 counter), client k replies w - rows[k] with partition id k;
    returns (global vector, the rows as the server sees them, float32 ``w - reply``,
    aggregated ArrayRecord, metrics)."""
    from flwr.supercore.task_identity import TaskIdentity

    for k in ("_run_id", "_node_id", "_task_id"):  # what a running ServerApp has set
        monkeypatch.setattr(TaskIdentity, k, 0)
    w = {"a": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "count": np.array(7)}
    sent = list(strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in w.items()}),
                                         ConfigRecord(), _Grid()))
    replies, g = [], torch.from_numpy(w["a"].reshape(-1))
    for k, msg in enumerate(sent):
        arrays = {"a": w["a"] - rows[k].reshape(2, 3), "count": w["count"]}
        content = RecordDict({"arrays": ArrayRecord({n: Array(v) for n, v in arrays.items()}),
                              "metrics": MetricRecord({"num-examples": 1 + k,
                                                       "partition-id": k})})
        replies.append(Message(content=content, reply_to=msg))
    new, metrics = strategy.aggregate_train(1, replies)
    seen = g - torch.from_numpy(w["a"].reshape(1, -1) - rows)
    return g, seen, new, metrics


def _rows(seed: int = 0) -> np.ndarray:
    """[N, 6] honest rows around 1, the BYZ rows around -5 (so every rule has work)."""
    noise = np.random.default_rng(seed).standard_normal((N, 6)).astype(np.float32)
    rows = 1 + 0.1 * noise
    rows[list(BYZ)] = -5 + 0.5 * noise[list(BYZ)]
    return rows


@pytest.mark.parametrize("path", [p for p in conf_options("agg") if p.stem != "fltrust"],
                         ids=lambda p: p.stem)
def test_every_rule_through_the_strategy(monkeypatch, path):
    """Every rule of conf/agg (FLTrust is refused: no root data) aggregates Flower
    replies exactly as byzbench's pipeline built from the same config aggregates the
    rows; side inputs (FoolsGold's row owners, MoNNA's honest row) are delivered; the
    integer array is kept; metrics carry the stage stats and, for rules with row
    weights, the Byzantine weight (sample counts ignored: weights sum over rows)."""
    s = RobustStrategy(agg=path.stem, f=1, n=N, byzantine=BYZ, keep_history=True,
                       fraction_evaluate=0.0, min_train_nodes=N, min_available_nodes=N)
    from byzbench.build import make_generator

    ref = build_pipeline(s.preagg_cfg, s.agg_cfg, N, 1, make_generator(0, "agg"))
    from byzbench.stages import SideInputs

    g, rows, new, metrics = _one_round(monkeypatch, s, _rows())
    if ref.needs:
        ref.observe(SideInputs(worker_ids=torch.arange(N), honest_row=0))
    u = ref(rows)
    torch.testing.assert_close(s.history[0].aggregate, u, rtol=0, atol=0)
    np.testing.assert_array_equal(new["a"].numpy().reshape(-1), (g - u).numpy())
    assert new["count"].numpy() == 7
    assert set(ref.stats()) <= set(metrics)
    w = ref.row_weights(N)
    assert ("byz_weight" in metrics) == (w is not None)
    if w is not None:
        assert metrics["byz_weight"] == pytest.approx(float(w[list(BYZ)].sum() / w.sum()))


@pytest.mark.parametrize("path", conf_options("attack"), ids=lambda p: p.stem)
def test_every_attack_has_a_place(monkeypatch, path):
    """Every attack of conf/attack runs: local ones (and data poisoning) in the client
    wrapper; every attack on updates in the server hook (local ones get the designated
    clients' own rows as ctx.byz_grads), which replaces exactly the designated rows and
    leaves the honest ones as sent; data poisoning is refused there."""
    from hydra.utils import get_object

    cls = get_object(compose(attack=path.stem).attack._target_)
    if cls.local or cls.poisons_data:
        try:
            byzantine_train(BYZ, attack=path.stem, num_classes=10)
        except ConfigError as e:  # colluding attacks (alie_local) need several rows
            assert "cannot run on one client alone" in str(e) and not cls.poisons_data
    args = dict(agg="krum", f=2, n=N, attack=path.stem, byzantine=BYZ, num_classes=10)
    if cls.poisons_data:
        with pytest.raises(ConfigError, match="data poisoning"):
            RobustStrategy(**args)
        return
    s = RobustStrategy(**args, keep_history=True, fraction_evaluate=0.0, min_train_nodes=N,
                       min_available_nodes=N)
    _, rows, _, _ = _one_round(monkeypatch, s, _rows())
    h = s.history[0]
    honest = [k for k in range(N) if k not in BYZ]
    torch.testing.assert_close(h.updates[honest], rows[honest], rtol=0, atol=0)
    if path.stem != "none":
        assert not torch.equal(h.updates[list(BYZ)], rows[list(BYZ)])


def _message(arrays: list[np.ndarray], rnd: int = 1) -> Message:
    md = Metadata(run_id=0, message_id="m", src_node_id=0, dst_node_id=1,
                  reply_to_message_id="", group_id="", created_at=time.time(), ttl=60.0,
                  message_type="train")
    content = RecordDict({"arrays": ArrayRecord({str(i): Array(a) for i, a in enumerate(arrays)}),
                          "config": ConfigRecord({"server-round": rnd})})
    return Message(content=content, metadata=md)


def _context(pid: int) -> Context:
    return Context(run_id=0, node_id=1, node_config={"partition-id": pid}, state=RecordDict(),
                   run_config={})


def _label_client(msg: Message, context: Context) -> Message:
    """A client whose 'training' adds the labels it sees (after poison_batch) to w."""
    y = torch.arange(10)
    _, y = poison_batch(torch.zeros(10, 1), y, 10)
    w = msg.content["arrays"]["0"].numpy()
    out = RecordDict({"arrays": ArrayRecord({"0": Array(w + y.numpy().astype(np.float32))}),
                      "metrics": MetricRecord({"num-examples": 10})})
    return Message(content=out, reply_to=msg)


@pytest.mark.parametrize("attack", ["bit_flip", "label_flip"])
def test_byzantine_train_wrapper(attack):
    """Hand-computed: an honest client's update is the labels 0..9; label_flip's
    Byzantine client trains on 9 - y; bit_flip's sends minus its update. Every reply
    carries its partition id."""
    w = np.full(10, 0.5, np.float32)
    train = byzantine_train(byzantine=[3], attack=attack, num_classes=10)(_label_client)
    y = np.arange(10, dtype=np.float32)
    expect = {"bit_flip": -y, "label_flip": 9 - y}[attack]
    for pid, update in ((0, y), (3, expect)):
        reply = train(_message([w]), _context(pid))
        np.testing.assert_array_equal(reply.content["arrays"]["0"].numpy() - w, update)
        assert reply.content["metrics"]["partition-id"] == pid
    np.testing.assert_array_equal(poison_batch(torch.zeros(1), torch.arange(3), 3)[1],
                                  torch.arange(3))  # identity outside the wrapper


def test_bad_configs_are_one_line_errors():
    """Unknown names and omniscient attacks on the client fail at construction."""
    with pytest.raises(ConfigError, match="agg=nope"):
        RobustStrategy(agg="nope")
    with pytest.raises(ConfigError, match="agg.bogus is not a parameter"):
        RobustStrategy(agg="krum", n=5, agg_options={"bogus": 1})
    with pytest.raises(ConfigError, match="FLTrust"):
        RobustStrategy(agg="fltrust", n=5)
    with pytest.raises(ConfigError, match="omniscient attacks run on the server"):
        byzantine_train([1], attack="alie")
    with pytest.raises(ConfigError, match="byzantine"):
        RobustStrategy(agg="krum", f=1, attack="alie")
    with pytest.raises(ConfigError, match="data poisoning"):
        RobustStrategy(agg="krum", f=1, n=5, attack="label_flip", byzantine=[4],
                       num_classes=10)
