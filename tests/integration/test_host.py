"""Device-to-host transfers of a run: only through ``byzbench.host.to_host``, and how
many per round (the n x n matrices the rules solve on the CPU, the divergence flag;
logged scalars only at flushes).

On the CPU nothing is really copied, so implicit transfers are trapped instead:
``.item()``, ``.tolist()``, ``float(t)``, ``int(t)``, ``bool(t)``, ``.cpu()`` and
``.to("cpu")`` (written as a string) on any tensor count as stray unless they act on
what ``to_host`` returned. On CUDA the same trap runs, and every other synchronizing
operation outside ``to_host`` (``torch.cuda.set_sync_debug_mode("warn")``: blocking
host-to-device
copies of the rules' ``n x n`` weights, ``nonzero``...) is reported as one warning
naming where each happened (pytest's warnings summary), not failed: the issue bounds
device-to-host copies, and host-to-device ones are allowed.
"""

from __future__ import annotations

import contextlib
import weakref

import pytest
import torch

from byzbench import host
from byzbench.build import build_experiment
from byzbench.loop import train

from .conftest import compose_cfg

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TRAPPED = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "to")
# (overrides, distance computations per round): to_host runs once per round for the
# divergence flag, plus per ``kernels.pairwise`` the Gram matrix and, off the CPU, the
# probe's ``n x 1024`` column sample (on the CPU the probe reads numpy views: no
# transfer); coordinate-wise rules and the mean need none.
CASES = [
    (("agg=trmean", "preagg=[nnm]", "attack=sign_flip", "worker_momentum=0.9"), 1),
    (("agg=krum", "attack=alie"), 1),
    (("agg=median", "attack=sign_flip"), 0),
    (("agg=mean", "attack=none"), 0),
]


def _is_cpu_target(args: tuple, kwargs: dict) -> bool:
    # Only an explicit "cpu" string: ``.to(x.device)`` (numpy results going back to the
    # rows' device) is a host-to-device move, indistinguishable on the CPU otherwise.
    return any(a == "cpu" for a in (*args, kwargs.get("device")) if isinstance(a, str))


@contextlib.contextmanager
def trapped_transfers(stray: list[str]):
    """Record implicit device-to-host transfers not made by (or on the result of)
    ``host.to_host``."""
    returned: dict[int, weakref.ref] = {}  # id -> ref (a WeakSet would compare tensors)
    state = {"inside": False}
    real_to_host = host.to_host
    originals = {name: getattr(torch.Tensor, name) for name in TRAPPED}

    def to_host(t, dtype=None):
        state["inside"] = True
        try:
            out = real_to_host(t, dtype)
        finally:
            state["inside"] = False
        returned[id(out)] = weakref.ref(out)
        return out

    def trap(name, fn):
        def wrapper(self, *args, **kwargs):
            ref = returned.get(id(self))
            ok = state["inside"] or (ref is not None and ref() is self)
            if not ok and (name != "to" or _is_cpu_target(args, kwargs)):
                import traceback

                where = traceback.extract_stack(limit=3)[0]
                stray.append(f"{name} at {where.filename}:{where.lineno}")
            return fn(self, *args, **kwargs)
        return wrapper

    real_host_int = host.host_int

    def host_int(t):
        state["inside"] = True
        try:
            return real_host_int(t)
        finally:
            state["inside"] = False

    host.to_host, host.host_int = to_host, host_int
    for name, fn in originals.items():
        setattr(torch.Tensor, name, trap(name, fn))
    try:
        yield
    finally:
        host.to_host, host.host_int = real_to_host, real_host_int
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("overrides, distances", CASES, ids=lambda c: " ".join(c)
                         if isinstance(c, tuple) else str(c))
def test_round_transfers_only_through_to_host(overrides, distances, device):
    per_round = 1 + distances * (1 if device == "cpu" else 2)
    cfg = compose_cfg("rounds=6", "eval_every=3", "cluster.n_workers=10", "batch_size=8",
                      "progress=false", "model.hidden=[16]", f"device={device}", *overrides)
    exp, _ = build_experiment(cfg)
    counts: list[int] = []

    def lap(part: str) -> None:
        if part == "other":
            counts.append(host.calls)

    exp.lap = lap
    stray: list[str] = []
    with trapped_transfers(stray):
        if device == "cuda":
            _train_reporting_syncs(exp)
        else:
            assert train(exp).status == "ok"
    assert stray == [], stray
    per = [b - a for a, b in zip(counts[:-1], counts[1:])]
    # round 0 also copies two round-0 statistics; later rounds are all alike
    assert per[0] == per_round + 1 and set(per[1:]) == {per_round}, per


def _train_reporting_syncs(exp) -> None:
    """CUDA: train with sync debug warnings outside to_host; report where they came from."""
    import warnings
    from collections import Counter

    real = host.to_host

    def to_host(t, dtype=None):
        torch.cuda.set_sync_debug_mode(0)
        try:
            return real(t, dtype)
        finally:
            torch.cuda.set_sync_debug_mode("warn")

    host.to_host = to_host
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            assert train(exp).status == "ok"
    finally:
        torch.cuda.set_sync_debug_mode(0)
        host.to_host = real
    sites = Counter(f"{w.filename}:{w.lineno}" for w in caught
                    if "synchroniz" in str(w.message))
    if sites:
        warnings.warn(f"synchronizing ops outside to_host (6 rounds): {dict(sites)}",
                      stacklevel=1)
