"""The one door from the device to the host.

On a GPU every tensor of a round stays on the device; what must cross to the host
(the small ``n x n`` matrices and ``n``-vectors that distance-based rules solve on the
CPU, the logged scalars at each flush, the per-round divergence flag) goes through
:func:`to_host`, which counts its calls. Callers use it as ``host.to_host(...)`` (module
attribute), so a test can wrap it: tests/unit/test_host.py runs rounds on the CPU with
every implicit transfer (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``,
``.cpu()``) trapped unless it acts on what ``to_host`` returned.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Calls of to_host since import (tests read it; never used for control flow).
calls = 0


def to_host(t: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``t`` detached, on the CPU (a copy from other devices, a view on the CPU), cast
    to ``dtype`` when given. Every device-to-host transfer of a round goes through here."""
    global calls
    calls += 1
    t = t.detach()
    return t.to("cpu", dtype) if dtype is not None else t.to("cpu")


def host_int(t: Tensor) -> int:
    """A Python int from a one-element tensor that already lives on the host (e.g. a
    draw from a CPU generator): no transfer, so not counted; a device tensor is an
    error (use :func:`to_host`)."""
    if t.device.type != "cpu":
        raise ValueError(f"host_int got a tensor on {t.device}: use host.to_host")
    return int(t.reshape(()).item())
