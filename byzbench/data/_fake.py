"""Fake MNIST-format files for tests and benchmarks (not an option itself).

MNIST cannot be downloaded on offline machines, so tests and benchmark scripts write
files in torchvision's raw layout (``<root>/<folder>/raw/*-ubyte``, IDX format) and let
the real loaders (torchvision's, and so byzbench's and ByzFL's) read them.
"""

from __future__ import annotations

import pathlib
import struct

import torch
from torch import Tensor


def write_idx(path: pathlib.Path, arr: Tensor) -> None:
    """IDX file as torchvision reads it: magic 0x0000 | type 0x08 (ubyte) | ndim, then
    each dimension as a big-endian int32, then the raw bytes."""
    head = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(head + arr.to(torch.uint8).contiguous().numpy().tobytes())


def fake_mnist_arrays(n: int, generator: torch.Generator,
                      prototypes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(images uint8 [n, 28, 28], labels [n])`` with labels ``arange(n) % 10``.

    ``prototypes [10, 28, 28]`` (uint8): an image is ``(prototype of its class + uniform
    noise) / 2``, so a model can learn the task and accuracy curves mean something;
    None: pixels are uniform noise.
    """
    y = torch.arange(n) % 10
    noise = torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8)
    if prototypes is None:
        return noise, y
    x = (prototypes[y].to(torch.int16) + noise.to(torch.int16)) // 2
    return x.to(torch.uint8), y


def write_fake_mnist(root: str | pathlib.Path, folder: str = "MNIST", n_train: int = 12,
                     n_test: int = 5, seed: int = 11,
                     learnable: bool = False) -> dict[str, tuple[Tensor, Tensor]]:
    """Write ``<root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.

    ``learnable``: images from class prototypes shared by both splits (see
    :func:`fake_mnist_arrays`); else uniform noise. Returns ``{"train": (x, y), "t10k":
    (x, y)}`` (the arrays written).
    """
    raw = pathlib.Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    # One set of class prototypes for both splits (drawn from its own stream).
    proto = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(seed + 1)) if learnable else None
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x, y = fake_mnist_arrays(n, g, proto)
        write_idx(raw / f"{split}-images-idx3-ubyte", x)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y)
        out[split] = (x, y)
    return out
