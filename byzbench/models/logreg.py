"""Linear model: multinomial logistic regression (or least squares for regression)."""

from __future__ import annotations

from torch import Tensor, nn

from byzbench.models._common import check_classes, flat_size


class LogReg(nn.Module):
    """``logits = W vec(x) + b`` with ``W [C, prod(input_shape)]``, ``b [C]``.

    With cross-entropy this is multinomial logistic regression; with
    ``num_classes=1`` and the MSE loss it is least-squares linear regression. Both
    losses are convex in (W, b), which is what the convex (optimality-gap) runs need.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, bias: bool = True):
        super().__init__()
        check_classes(num_classes)
        self.linear = nn.Linear(flat_size(input_shape), num_classes, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))


def build(input_shape: tuple[int, ...], num_classes: int, bias: bool = True) -> nn.Module:
    """Linear model on flattened inputs.

    Args:
        input_shape: per-sample input shape (injected from the dataset); flattened.
        num_classes: output width C (injected; 1 for regression).
        bias: include the intercept b.

    Reference: Cox, "The regression analysis of binary sequences", JRSS B (1958).
    """
    return LogReg(tuple(input_shape), int(num_classes), bias=bias)
