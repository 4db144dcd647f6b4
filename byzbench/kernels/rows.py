"""Row-level helpers shared by the rules: one-line row-count errors, weighted
combinations that never multiply a non-finite row, reusable output buffers, seeded
column samples, one-hot weights, host copies."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from byzbench import ConfigError, host


def check_rows(rule: str, n: int, ok: bool, need: str) -> None:
    """One-line error when a rule is called with a row count it cannot handle."""
    if not ok:
        raise ConfigError(f"{rule} received n={n} rows: it needs {need}")
def to_np(t: Tensor) -> np.ndarray:
    """A small tensor as float64 numpy on the CPU (through the counted host door)."""
    return host.to_host(t, torch.float64).numpy()
def combine(x: Tensor, w: np.ndarray | Tensor, bad: np.ndarray | None = None,
            out: Tensor | None = None) -> Tensor:
    """``sum_i w_i x_i`` (``w [n]`` -> ``[d]``, or ``w [k, n]`` -> ``[k, d]``) without
    touching bad rows: their entries would turn ``0 * nan`` into nan. ``out``: optional
    destination (see :func:`reusable`)."""
    wt = torch.as_tensor(w, dtype=x.dtype).to(x.device)
    if bad is not None and bad.any() and not bad.all():  # all bad: let nan show
        keep = torch.as_tensor(np.flatnonzero(~bad), device=x.device)
        wt, x = wt.index_select(-1, keep), x.index_select(0, keep)
    return wt @ x if out is None else torch.matmul(wt, x, out=out)


def reusable(owner: object, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """An output buffer kept on ``owner`` and reused while shape/dtype/device match.

    Why: pre-aggregators return a fresh ``[n, d]`` matrix every call; on CPU a fresh
    120 MB allocation is returned to the OS when freed and page-faulted again next time
    (~100 ms here, 4x a multiply into warm memory). The buffer is valid until the
    owner's next call: every rule consumes its input within the call (none returns a
    view of it).
    """
    buf = getattr(owner, "_out", None)
    if buf is None or buf.shape != shape or buf.dtype != like.dtype or buf.device != like.device:
        buf = torch.empty(shape, dtype=like.dtype, device=like.device)
        owner._out = buf  # type: ignore[attr-defined]
    return buf


def sample_columns(d: int, k: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``k`` distinct sorted column indices out of ``d``, drawn from ``generator``.

    The generator supplies one 62-bit seed for numpy's sampler without replacement,
    which is O(k) (``torch.randperm`` is O(d): 40 ms at d = 1e6, per call); the draw is
    therefore fully determined by the generator's state.
    """
    if k >= d:
        return torch.arange(d, device=device)
    seed = int(host.to_host(torch.randint(0, 2**62, (1,), generator=generator,
                                          device=generator.device)).tolist()[0])
    idx = np.sort(np.random.default_rng(seed).choice(d, size=k, replace=False))
    return torch.as_tensor(idx, device=device)


def gather_cols(x: Tensor, idx: Tensor) -> np.ndarray:
    """Columns ``idx`` (last dimension) of ``x`` as float64 numpy (numpy take on CPU: a
    small torch op on a busy machine waits ~10 ms for intra-op threads; numpy runs in the
    caller)."""
    if x.device.type == "cpu":
        return np.take(x.detach().numpy(), idx.numpy(), axis=-1).astype(np.float64)
    return to_np(x.index_select(-1, idx))


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite (numpy on CPU, see :func:`gather_cols`)."""
    if t.device.type == "cpu":
        return bool(np.isfinite(t.detach().numpy()).all())
    return bool(host.to_host(torch.isfinite(t).all()))


def one_hot(n: int, idx: np.ndarray | list[int], like: Tensor) -> Tensor:
    """Weights ``[n]`` equal to ``1/len(idx)`` on ``idx`` and 0 elsewhere."""
    w = torch.zeros(n, dtype=like.dtype, device=like.device)
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=like.device)
    w[idx_t] = 1.0 / max(1, len(idx_t))
    return w


def stack_weights(ws: list[Tensor | None], n: int, like: Tensor) -> Tensor | None:
    """``[k, n]``: the problems' weights ``ws[i] [n]`` stacked, a row of nan where a
    problem has none (``None``); None when none has weights."""
    if all(w is None for w in ws):
        return None
    nan = torch.full((n,), float("nan"), dtype=like.dtype, device=like.device)
    return torch.stack([nan if w is None else w.to(nan) for w in ws])


def random_projections(x: Tensor, bad: np.ndarray, k: int,
                       generator: torch.Generator) -> np.ndarray:
    """``[n, k]`` float64: the finite rows minus their mean, projected on ``k`` random unit
    directions (standard Gaussian vectors, normalized, drawn from ``generator``): the
    start vectors of ``k`` power iterations in the ``n``-dimensional form of the rules
    that work on a Gram matrix (``(x_i - m) . v``; any common ``m`` gives the same
    centered quantities). Non-finite rows get 0."""
    d = x.shape[1]
    v = torch.randn(d, k, generator=generator, device=generator.device,
                    dtype=x.dtype if x.dtype.is_floating_point else torch.float32).to(x.device)
    v = v / torch.linalg.vector_norm(v, dim=0, keepdim=True)
    good = torch.as_tensor(~bad, device=x.device)
    m = x[good].mean(dim=0) if bool(good.any()) else torch.zeros_like(x[0])
    xc = torch.where(good[:, None], x - m, torch.zeros((), dtype=x.dtype, device=x.device))
    return host.to_host(xc @ v.to(x.dtype), torch.float64).numpy()
