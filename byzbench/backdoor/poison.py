"""Backdoor attacks under the local threat model: the Byzantine clients train on
poisoned batches inside the run's vectorized pass, then may craft what they send.

:class:`Backdoor` is the base of ``attack=badnets|blended|dba|model_replacement|
constrain_scale|neurotoxin``. Its trigger is one ``trigger`` node (``kind`` and that
kind's keys, see ``TRIGGER_KEYS``); every attack composes with every trigger, e.g.
``attack=neurotoxin attack.trigger.kind=dba``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from byzbench import require
from byzbench.attacks._ops import own_grads
from byzbench.attacks.base import DataPoisoning, RoundContext
from byzbench.backdoor import triggers as T
from byzbench.backdoor.asr import AttackSuccessRate

# Every trigger kind and its keys with their defaults (FLPoison's where it has them).
TRIGGER_KEYS: dict[str, dict[str, Any]] = {
    "pixel": {"size": 5, "position": "bottom_right", "margin": 0, "value": "max"},
    "blended": {"alpha": 0.2, "low": "min", "high": "max", "seed": 0},
    "dba": {"parts": 4, "size": 4, "gap": 2, "shift": 0, "value": "max"},
}


def check_trigger(spec: dict[str, Any] | None,
                  default_kind: str = "pixel") -> tuple[str, dict[str, Any]]:
    """``(kind, that kind's keys with defaults)`` of a trigger node ``{kind: K, pixel:
    {...}, blended: {...}, dba: {...}}`` (one block per kind, so that switching
    ``kind`` on the command line keeps every block valid); one line naming a bad key."""
    spec = dict(spec or {})
    kind = spec.pop("kind", default_kind)
    require(kind in TRIGGER_KEYS, "attack.trigger.kind", kind, f"one of {tuple(TRIGGER_KEYS)}")
    for name, block in spec.items():
        require(name in TRIGGER_KEYS and isinstance(block, dict), f"attack.trigger.{name}",
                block, f"kind, or a block of keys for one of {tuple(TRIGGER_KEYS)}")
        for k in block:
            require(k in TRIGGER_KEYS[name], f"attack.trigger.{name}.{k}", block[k],
                    f"not a key of a {name} trigger: allowed {', '.join(TRIGGER_KEYS[name])}")
    return kind, {**TRIGGER_KEYS[kind], **spec.get(kind, {})}


class TriggerSet:
    """The trigger of each Byzantine row and the full trigger the ASR is measured on.

    ``pixel``/``blended``: one trigger for every row. ``dba``: row i of the round's
    Byzantine rows stamps part ``i mod parts``; the ASR uses the union of the parts.
    """

    def __init__(self, spec: dict[str, Any], input_shape: tuple[int, ...],
                 input_range: Callable[[], tuple[Tensor, Tensor]] | None,
                 default_kind: str = "pixel"):
        kind, p = check_trigger(spec, default_kind)
        self.kind, self.params = kind, p
        lo = None if input_range is None else (lambda: input_range()[0])
        hi = None if input_range is None else (lambda: input_range()[1])

        def val(key: str) -> float | Tensor:
            v = p[key]
            return T.resolve_value(v, lo if v == "min" else hi, f"attack.trigger.{kind}.{key}")

        self.parts: list[T.Trigger]
        if kind == "pixel":
            self.parts = [T.pixel_trigger(input_shape, p["size"], val("value"), p["position"],
                                          p["margin"])]
            self.full = self.parts[0]
        elif kind == "blended":
            self.parts = [T.blended_trigger(input_shape, p["alpha"], val("low"), val("high"),
                                            p["seed"])]
            self.full = self.parts[0]
        else:
            masks = T.dba_masks(input_shape, p["parts"], p["size"], p["gap"], p["shift"])
            pattern = T.value_map(input_shape, val("value"))
            self.parts = [T.Trigger(m, pattern) for m in masks]
            self.full = T.Trigger(T.union(masks), pattern)

    def rows(self, r: int) -> T.Trigger:
        """The trigger of ``r`` Byzantine rows of ``[r, B, *input_shape]`` batches."""
        if len(self.parts) == 1:
            return self.parts[0]
        idx = [i % len(self.parts) for i in range(r)]
        mask = torch.stack([self.parts[i].mask for i in idx]).unsqueeze(1)
        return T.Trigger(mask, self.parts[0].pattern)


class Backdoor(DataPoisoning):
    """All-to-one backdoor by data poisoning (local threat model): in every minibatch
    of each Byzantine client the first ``round(poison_frac B)`` samples get the trigger
    and the label ``target`` (the batch is a uniform draw of the client's shard, so
    these are a uniform subset), the rest stay clean; the clients train on it with the
    run's algorithm (DSGD: one gradient; FedAvg: K local steps, each batch poisoned)
    and send ``craft(own update)``, here the update itself.

    Declarations read at build time: ``local``, ``poisons_data`` (the loop passes
    the Byzantine rows of each batch through :meth:`transform_batch`) and
    :meth:`evaluators` (the ASR on the full trigger, logged as ``asr``).

    Args:
        trigger: ``{kind: pixel|blended|dba, pixel: {...}, blended: {...}, dba: {...}}``
            (``TRIGGER_KEYS``; a missing block or key takes its default).
        target: the target label.
        poison_frac: fraction of each Byzantine batch poisoned, in [0, 1].
        byz_momentum: under worker momentum, send the momentum (FLB) instead of the raw
            update (as ``label_flip``).
        num_classes, input_shape, input_range: injected by build.
    """

    default_kind = "pixel"  # the trigger kind when the node names none
    capabilities = DataPoisoning.capabilities | {"default_kind"}  # declared here for subclasses

    def __init__(self, trigger: dict[str, Any] | None = None, target: int = 6,
                 poison_frac: float = 0.32, byz_momentum: bool = False,
                 num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                 input_range: Callable[[], tuple[Tensor, Tensor]] | None = None):
        require(num_classes is None or num_classes >= 2, "attack.num_classes", num_classes,
                "a classification task with >= 2 classes")
        require(isinstance(target, int) and 0 <= target < (num_classes or target + 1),
                "attack.target", target, f"a class label in [0, {num_classes})")
        require(0.0 <= poison_frac <= 1.0, "attack.poison_frac", poison_frac, "a value in [0, 1]")
        self.target, self.poison_frac = int(target), float(poison_frac)
        self.byz_momentum = bool(byz_momentum)
        spec = trigger or {}
        check_trigger(spec, self.default_kind)
        # Built from the dataset's input shape (injected by build; None: a run-less use
        # of the attack, e.g. on gradients alone, which never poisons a batch).
        self.triggers = (None if input_shape is None
                         else TriggerSet(spec, tuple(input_shape), input_range, self.default_kind))

    def transform_batch(self, x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """``x [r, B, *input_shape], y [r, B]`` of the round's r Byzantine clients ->
        new tensors: the first ``round(poison_frac B)`` samples of each row triggered
        and labelled ``target``."""
        require(self.triggers is not None, "attack.input_shape", None,
                "injected by build (the dataset's input shape)")
        k = int(round(self.poison_frac * y.shape[1]))
        if k == 0:
            return x, y
        x, y = x.clone(), y.clone()
        x[:, :k] = self.triggers.rows(x.shape[0]).apply(x[:, :k])
        y[:, :k] = self.target
        return x, y

    def evaluators(self) -> list[Callable]:
        """The ASR of the full trigger (split test and val)."""
        require(self.triggers is not None, "attack.input_shape", None,
                "injected by build (the dataset's input shape)")
        return [AttackSuccessRate(self.triggers.full, self.target)]

    def craft(self, own: Tensor, honest: Tensor, ctx: RoundContext) -> Tensor:
        """What the Byzantine clients send given their own updates ``own [f, d]``
        (model-poisoning attacks override it); here ``own``."""
        return own

    def __call__(self, honest: Tensor, ctx: RoundContext) -> Tensor:
        own = own_grads(honest, ctx, type(self).__name__)
        return own if ctx.f == 0 else self.craft(own, honest, ctx)


def check_bound(bound: float | str | None, key: str = "attack.norm_bound") -> None:
    """``null`` (no bound), a number > 0, or ``median``."""
    require(bound is None or bound == "median" or (isinstance(bound, (int, float)) and bound > 0),
            key, bound, "null, a number > 0 or median (the median norm of the honest rows)")


def clip_rows(rows: Tensor, bound: float | str | None, honest: Tensor) -> Tensor:
    """Each row scaled to norm at most ``bound`` (``median``: the median norm of the
    round's honest rows; ``None``: unchanged)."""
    if bound is None:
        return rows
    b = honest.norm(dim=1).median() if bound == "median" else torch.tensor(float(bound))
    norms = rows.norm(dim=1, keepdim=True)
    return rows * torch.clamp(b.to(rows) / norms.clamp_min(1e-30), max=1.0)
