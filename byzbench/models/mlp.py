"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

from torch import Tensor, nn

from byzbench import require
from byzbench.models._common import activation, check_classes, flat_size


class MLP(nn.Module):
    """``h_0 = vec(x)``, ``h_{l+1} = act(W_l h_l + b_l)`` for each hidden size, then a
    linear output layer giving C logits. No normalization layers, no buffers."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int,
                 hidden: list[int], activation_name: str):
        super().__init__()
        check_classes(num_classes)
        self.act = activation(activation_name)
        sizes = [flat_size(input_shape), *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.out(h)


def build(input_shape: tuple[int, ...], num_classes: int, hidden: list[int] | None = None,
          activation: str = "relu") -> nn.Module:
    """MLP with the given hidden layer widths.

    Args:
        input_shape: per-sample input shape (injected from the dataset); flattened.
        num_classes: output width C (injected).
        hidden: hidden layer widths, e.g. ``[64]`` (default) or ``[256, 128]``; ``[]``
            gives a linear model.
        activation: relu, tanh, gelu, sigmoid, elu or silu.

    Reference: Rumelhart, Hinton & Williams, "Learning representations by
    back-propagating errors", Nature (1986).
    """
    hidden = [64] if hidden is None else list(hidden)
    require(all(isinstance(h, int) and h >= 1 for h in hidden), "model.hidden", hidden,
            "a list of positive integers")
    return MLP(tuple(input_shape), int(num_classes), hidden, activation)
