"""Helpers shared by the model builders (not options themselves)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from byzbench import ConfigError, require

# Functional (never in-place) activations: torch.func transforms need out-of-place ops.
ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "silu": F.silu,
}


def activation(name: str):
    """The out-of-place activation function called ``name``."""
    require(name in ACTIVATIONS, "model.activation", name, f"one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def check_classes(num_classes: int) -> None:
    require(isinstance(num_classes, int) and num_classes >= 1, "num_classes", num_classes,
            "a positive integer (injected from the dataset)")


def flat_size(input_shape: tuple[int, ...]) -> int:
    """Number of input features, ``prod(input_shape)``."""
    return int(math.prod(input_shape))


def image_shape(input_shape: tuple[int, ...], model: str, min_side: int) -> tuple[int, int, int]:
    """``(C, H, W)`` for a convolutional model, or a one-line ConfigError."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape[1:]) < min_side:
        hint = " (digits: set dataset.flatten=false)" if len(shape) == 1 else ""
        raise ConfigError(
            f"model={model} needs image inputs (C, H, W) with H, W >= {min_side}; got "
            f"input_shape={shape}{hint}"
        )
    return shape  # type: ignore[return-value]


def group_norm(channels: int, groups: int, param: str = "model.gn_groups"):
    """``nn.GroupNorm(groups, channels)`` (no running statistics: vmap-safe), or the
    identity when ``groups == 0``."""
    from torch import nn

    require(isinstance(groups, int) and groups >= 0 and (groups == 0 or channels % groups == 0),
            param, groups, f"0 (no normalization) or a divisor of every layer's channels "
            f"(here {channels})")
    return nn.GroupNorm(groups, channels) if groups else nn.Identity()
