"""ByzFL's ``fc_mnist`` (byzfl 0.0.11, ``byzfl/fed_framework/models.py``)."""

from __future__ import annotations

from byzbench.models.mlp import build as mlp


def build(input_shape: tuple[int, ...], num_classes: int):
    """ByzFL's fully connected MNIST network: flatten -> fc 100 -> relu -> fc C
    (79,510 parameters on 28x28), i.e. ``model=mlp`` with ``hidden=[100]``; logits
    with cross-entropy equal ByzFL's ``log_softmax`` + NLL.

    Args:
        input_shape: per-sample input shape (injected; flattened, 784 for MNIST).
        num_classes: output width C (injected).

    Reference: LPD-EPFL/byzfl (PyPI byzfl 0.0.11), ``fc_mnist``.
    """
    return mlp(input_shape, num_classes, hidden=[100], activation="relu")
