"""Mimic: every Byzantine worker copies one honest worker."""

from __future__ import annotations

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import empty_rows
from byzbench.attacks.base import Attack, RoundContext, repeat_rows

MODES = ("fixed", "max_var")


class Mimic(Attack):
    """``b = g_{i*}`` for all f rows: over-represent one honest worker, which hurts
    robust rules on heterogeneous (non-IID) data.

    * ``fixed``: ``i* = worker`` (index into the honest rows as the attack receives them;
      must be < n - f).
    * ``max_var`` (the heuristic of Karimireddy et al.): estimate the direction z of
      maximum variance of the honest gradients during a warm-up of ``warmup`` rounds and
      copy the worker furthest along it, ``i* = argmax_i <g_i, z>``; after the warm-up i*
      is frozen. The estimate is an online power iteration (as in the authors' public
      code): at the first round ``z = C z0 / |C z0|``, z0 ~ N(0, I) from
      ``ctx.generator``, ``C = sum_i (g_i - mu)(g_i - mu)^T``; at warm-up round t >= 1,
      ``mu <- t/(t+1) mu + mean_t/(t+1)``, ``z <- normalize(t/(t+1) z + C z/|C z|/(t+1))``.
      State is kept on the attack and updated once per round index ``ctx.t`` (t = 0
      restarts it).

    Args:
        mode: ``fixed | max_var``.
        worker: honest index for ``fixed``.
        warmup: rounds of direction estimation for ``max_var`` (>= 1; the public code's
            default is 1).
        n, f: injected, to validate ``worker < n - f``.

    Reference: Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous
    Datasets via Bucketing", ICLR 2022 (mimic attack).
    """

    state_keys = ("_mu", "_z", "_last_t", "target")


    def __init__(self, mode: str = "fixed", worker: int = 0, warmup: int = 1,
                 n: int | None = None, f: int | None = None):
        require(mode in MODES, "attack.mode", mode, f"one of {MODES}")
        require(int(worker) >= 0, "attack.worker", worker, "an honest worker index >= 0")
        if n is not None and f is not None:
            require(int(worker) < n - f, "attack.worker", worker,
                    f"an honest worker index < n - f = {n - f}")
        require(int(warmup) >= 1, "attack.warmup", warmup, ">= 1")
        self.mode = mode
        self.worker = int(worker)
        self.warmup = int(warmup)
        self._mu: Tensor | None = None
        self._z: Tensor | None = None
        self._last_t: int | None = None
        self.target: int | None = None

    def _update(self, honest: Tensor, ctx: RoundContext) -> None:
        t = ctx.t
        if t == self._last_t or (t >= self.warmup and self.target is not None):
            return
        mean = honest.mean(dim=0)
        if t == 0 or self._z is None:
            self._mu = mean
            z = torch.randn(honest.shape[1], generator=ctx.generator, dtype=honest.dtype,
                            device=honest.device)
            c = honest - self._mu
            cz = c.T @ (c @ z)
            self._z = cz / cz.norm().clamp_min(1e-30)
        else:
            k = float(min(t, self.warmup - 1))  # t-th warm-up round (t >= 1)
            self._mu = k / (k + 1) * self._mu + mean / (k + 1)
            c = honest - self._mu
            cz = c.T @ (c @ self._z)
            z = k / (k + 1) * self._z + cz / cz.norm().clamp_min(1e-30) / (k + 1)
            self._z = z / z.norm().clamp_min(1e-30)
        self.target = int((honest @ self._z).argmax())
        self._last_t = t

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        if ctx.f == 0:
            return empty_rows(honest)
        if self.mode == "fixed":
            require(self.worker < honest.shape[0], "attack.worker", self.worker,
                    f"an honest worker index < {honest.shape[0]}")
            return repeat_rows(honest[self.worker], ctx.f)
        self._update(honest, ctx)
        return repeat_rows(honest[self.target], ctx.f)
