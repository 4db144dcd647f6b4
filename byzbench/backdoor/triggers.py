"""Backdoor triggers on model inputs (after ``Dataset.prepare``: what the model sees).

A :class:`Trigger` is a ``mask`` (weight of the trigger in ``[0, 1]`` per input entry)
and a ``pattern`` (the value it writes), both of the input's shape ``[*input_shape]``
(or ``[r, 1, *input_shape]``: one trigger per Byzantine row, see DBA); applied to
``x [..., *input_shape]`` it gives ``x (1 - mask) + pattern mask``. Input layouts:

* images ``[C, H, W]`` (8x8 digits with ``flatten: false``, 28x28 MNIST, 32x32
  CIFAR-10) and ``[H, W]``: a patch of ``size x size`` pixels in every channel;
* 1-D inputs ``[L]`` (flattened digits, MNIST-1D, tabular): a run of ``size``
  consecutive entries.

Values are in model-input units. ``value: max`` is the largest model input of the
training set (``min`` the smallest), per channel (images) or overall (1-D): for a
dataset stored as uint8 and normalized by ``prepare`` (MNIST, CIFAR-10) it is the
normalized white pixel of each channel, as FLPoison's ``PixelSynthesizer`` writes
it (BackFed writes 1.0 before normalizing: the same pixel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from byzbench import require

POSITIONS = ("bottom_right", "bottom_left", "top_right", "top_left")


@dataclass(frozen=True)
class Trigger:
    """``x -> x (1 - mask) + pattern mask`` over the trailing input dimensions."""

    mask: Tensor
    pattern: Tensor

    def apply(self, x: Tensor) -> Tensor:
        """A new tensor: ``x [..., *input_shape]`` with the trigger stamped on."""
        m = self.mask.to(device=x.device, dtype=x.dtype)
        p = self.pattern.to(device=x.device, dtype=x.dtype)
        return x * (1 - m) + p * m

    def to(self, device: torch.device | str) -> Trigger:
        return Trigger(self.mask.to(device), self.pattern.to(device))


def layout(input_shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """``(channels, spatial shape)``: ``[C, H, W] -> (C, (H, W))``, ``[H, W] -> (0, (H,
    W))`` (no channel axis), ``[L] -> (0, (L,))``."""
    s = tuple(int(v) for v in input_shape)
    require(len(s) in (1, 2, 3) and all(v > 0 for v in s), "dataset input_shape", s,
            "[L], [H, W] or [C, H, W] (a trigger needs a 1-D or image input)")
    return (s[0], s[1:]) if len(s) == 3 else (0, s)


def value_map(input_shape: Sequence[int], value: float | Tensor) -> Tensor:
    """``value`` (a number, or one per channel) broadcast to ``input_shape``."""
    c, spatial = layout(input_shape)
    v = torch.as_tensor(value, dtype=torch.float32)
    if v.numel() > 1:
        require(c > 0 and v.numel() == c, "attack.value", v.tolist(),
                "a number, or one number per channel of an image input")
        v = v.view(c, *([1] * len(spatial)))
    return v.expand(*input_shape).clone()


def input_range(data, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """``(min, max)`` of the model inputs of ``data``'s training set: one value per
    channel (``[C]``) for ``[C, H, W]`` inputs, else one value each."""
    c, spatial = layout(data.input_shape)
    lo = hi = None
    for i in range(0, len(data.y_train), chunk):
        x = data.prepare(data.x_train[i:i + chunk]).float()
        x = x.transpose(0, 1).reshape(c, -1) if c else x.reshape(1, -1)
        a, b = x.amin(1), x.amax(1)
        lo, hi = (a, b) if lo is None else (torch.minimum(lo, a), torch.maximum(hi, b))
    return (lo if c else lo[0]).cpu(), (hi if c else hi[0]).cpu()


def _offset(extent: int, size: int, where: str, margin: int) -> int:
    return extent - size - margin if where == "end" else margin


def patch(input_shape: Sequence[int], size: int, position: str | Sequence[int] = "bottom_right",
          margin: int = 0) -> Tensor:
    """A ``{0, 1}`` mask of ``input_shape``: a ``size x size`` square (images, every
    channel) or a run of ``size`` entries (1-D), at a corner (``POSITIONS``; 1-D:
    ``*_right`` is the end, ``*_left`` the start) ``margin`` entries in from the edges,
    or at an explicit top-left offset ``[row, col]`` (1-D: ``[start]``)."""
    c, spatial = layout(input_shape)
    require(isinstance(size, int) and size >= 1, "attack.size", size, "an integer >= 1")
    require(isinstance(margin, int) and margin >= 0, "attack.margin", margin, "an integer >= 0")
    if isinstance(position, str):
        require(position in POSITIONS, "attack.position", position,
                f"one of {POSITIONS} or an offset [row, col] ([start] for 1-D inputs)")
        vert, horiz = position.split("_")
        wh = ("end" if horiz == "right" else "start",)
        where = (("end" if vert == "bottom" else "start"),) + wh if len(spatial) == 2 else wh
        start = [_offset(e, size, w, margin) for e, w in zip(spatial, where)]
    else:
        start = [int(v) for v in position]
        require(len(start) == len(spatial), "attack.position", list(position),
                f"{len(spatial)} offsets for an input of spatial shape {list(spatial)}")
    require(all(0 <= s and s + size <= e for s, e in zip(start, spatial)), "attack.size", size,
            f"a trigger inside the input: at {start} it overruns spatial shape {list(spatial)}")
    mask = torch.zeros(spatial)
    mask[tuple(slice(s, s + size) for s in start)] = 1.0
    return mask.expand(c, *spatial).clone() if c else mask


def pixel_trigger(input_shape: Sequence[int], size: int, value: float | Tensor,
                  position: str | Sequence[int] = "bottom_right", margin: int = 0) -> Trigger:
    """BadNets' pixel-pattern trigger (Gu et al., 2017): the patch of
    :func:`patch` set to ``value``."""
    return Trigger(patch(input_shape, size, position, margin), value_map(input_shape, value))


def blended_trigger(input_shape: Sequence[int], alpha: float, low: float | Tensor,
                    high: float | Tensor, seed: int = 0) -> Trigger:
    """The blended trigger (Chen et al., 2017, random-noise key pattern): ``x -> (1 -
    alpha) x + alpha k``, ``k`` uniform in ``[low, high]`` per input entry, drawn once
    from ``seed``."""
    require(0 < alpha <= 1, "attack.alpha", alpha, "a blend weight in (0, 1]")
    g = torch.Generator().manual_seed(int(seed))
    u = torch.rand(tuple(input_shape), generator=g)
    lo, hi = value_map(input_shape, low), value_map(input_shape, high)
    return Trigger(torch.full(tuple(input_shape), float(alpha)), lo + (hi - lo) * u)


def dba_masks(input_shape: Sequence[int], parts: int, size: int, gap: int,
              shift: int = 0) -> list[Tensor]:
    """DBA's local triggers (Xie et al., ICLR 2020): ``parts`` horizontal bars of
    ``1 x size`` pixels laid out two per row from the top-left corner, part i at row
    ``(i // 2)(1 + gap) + shift`` and column ``(i % 2)(size + gap) + shift`` (FLPoison's
    layout; the paper's MNIST setting is 4 parts of size 4, gap 2, shift 0). 1-D
    inputs: part i is the run of ``size`` entries starting at ``i (size + gap) + shift``."""
    c, spatial = layout(input_shape)
    require(isinstance(parts, int) and parts >= 1, "attack.parts", parts, "an integer >= 1")
    require(isinstance(gap, int) and gap >= 0, "attack.gap", gap, "an integer >= 0")
    require(isinstance(shift, int) and shift >= 0, "attack.shift", shift, "an integer >= 0")
    out = []
    for i in range(parts):
        if len(spatial) == 2:
            r, col = (i // 2) * (1 + gap) + shift, (i % 2) * (size + gap) + shift
            ok = r < spatial[0] and col + size <= spatial[1]
            sl: tuple[slice, ...] = (slice(r, r + 1), slice(col, col + size))
        else:
            s = i * (size + gap) + shift
            ok, sl = s + size <= spatial[0], (slice(s, s + size),)
        require(ok, "attack.size", size, f"DBA parts inside the input: part {i} overruns "
                f"spatial shape {list(spatial)} (lower size, gap, shift or parts)")
        m = torch.zeros(spatial)
        m[sl] = 1.0
        out.append(m.expand(c, *spatial).clone() if c else m)
    return out


def union(masks: Sequence[Tensor]) -> Tensor:
    """The global trigger's mask: every part at once."""
    return torch.stack(list(masks)).amax(0)


def resolve_value(value: float | str | Sequence[float], extreme: Callable[[], Tensor] | None,
                  key: str = "attack.value") -> float | Tensor:
    """A trigger value: a number, one number per channel, or ``max``/``min``
    (``extreme()``: the largest/smallest model input of the training set, see
    :func:`input_range`)."""
    if value in ("max", "min"):
        require(extreme is not None, key, value, "a number (no dataset to take it from)")
        return extreme()
    if isinstance(value, (int, float)):
        return float(value)
    require(isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value),
            key, value, "a number, a list of numbers (one per channel) or max")
    return torch.tensor([float(v) for v in value])
