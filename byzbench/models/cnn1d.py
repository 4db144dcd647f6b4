"""1-D convolutional network for sequences (MNIST-1D's CNN)."""

from __future__ import annotations

from torch import Tensor, nn

from byzbench import ConfigError, require
from byzbench.models._common import activation, check_classes


class CNN1d(nn.Module):
    """Input ``[N, L]`` (one channel) or ``[N, C, L]``; for each kernel size k_l:
    ``Conv1d(channels, k_l, stride, padding)`` -> act; then flatten -> linear C logits.
    No normalization layers, no buffers (vmap-safe)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: int,
                 kernels: list[int], stride: int, padding: int, act: str):
        super().__init__()
        check_classes(num_classes)
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (1, 2):
            raise ConfigError(f"model=cnn1d needs sequence inputs (L,) or (C, L); got "
                              f"input_shape={shape}")
        c_in, length = (1, shape[0]) if len(shape) == 1 else shape
        self.act = activation(act)
        convs = []
        for k in kernels:
            out = (length + 2 * padding - k) // stride + 1
            require(out >= 1, "model.kernels", kernels,
                    f"kernels that leave >= 1 position of the length-{shape[-1]} input")
            convs.append(nn.Conv1d(c_in, channels, k, stride=stride, padding=padding))
            c_in, length = channels, out
        self.convs = nn.ModuleList(convs)
        self.out = nn.Linear(channels * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(1) if x.dim() == 2 else x
        for conv in self.convs:
            h = self.act(conv(h))
        return self.out(h.flatten(1))


def build(input_shape: tuple[int, ...], num_classes: int, channels: int = 25,
          kernels: list[int] | None = None, stride: int = 2, padding: int = 1,
          activation: str = "relu") -> nn.Module:
    """MNIST-1D's CNN: three 1-D convolutions of 25 channels (kernels 5, 3, 3, stride 2,
    padding 1) with ReLU, then a linear layer (length 40 -> 19 -> 10 -> 5 positions,
    125 features; 5,210 parameters with 10 classes).

    Args:
        input_shape: ``(L,)`` or ``(C, L)`` (injected from the dataset).
        num_classes: output width C (injected).
        channels: channels of every convolution.
        kernels: kernel size of each convolution (default ``[5, 3, 3]``).
        stride, padding: of every convolution.
        activation: relu, tanh, gelu, sigmoid, elu or silu.

    Reference: S. Greydanus, "Scaling Down Deep Learning" (MNIST-1D), arXiv:2011.14439
    (2020), the CNN of its benchmark (``ConvBase`` in greydanus/mnist1d).
    """
    kernels = [5, 3, 3] if kernels is None else list(kernels)
    require(len(kernels) >= 1 and all(isinstance(k, int) and k >= 1 for k in kernels),
            "model.kernels", kernels, "a non-empty list of positive integers")
    require(isinstance(channels, int) and channels >= 1, "model.channels", channels,
            "a positive integer")
    require(isinstance(stride, int) and stride >= 1, "model.stride", stride, ">= 1")
    require(isinstance(padding, int) and padding >= 0, "model.padding", padding, ">= 0")
    return CNN1d(tuple(input_shape), int(num_classes), channels, kernels, stride, padding,
                 activation)
