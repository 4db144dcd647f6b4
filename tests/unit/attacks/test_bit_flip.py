"""byzbench.attacks.bit_flip and label_flip by hand."""

from __future__ import annotations

import pytest
import torch

from byzbench import ConfigError
from byzbench.attacks.bit_flip import BitFlip
from byzbench.attacks.label_flip import LabelFlip

from .helpers import TRI, ctx


def test_bit_flip_and_label_flip():
    own = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    assert BitFlip.local and LabelFlip.local
    assert torch.equal(BitFlip()(TRI.float(), ctx(2, byz=own)), -own)
    assert torch.equal(LabelFlip(num_classes=10)(TRI.float(), ctx(2, byz=own)), own)
    y = torch.tensor([0, 1, 9, 4])
    # C - 1 - y with C = 10: 9, 8, 0, 5
    assert torch.equal(LabelFlip.transform_labels(y, 10), torch.tensor([9, 8, 0, 5]))
    assert torch.equal(y, torch.tensor([0, 1, 9, 4]))
    with pytest.raises(ConfigError, match="attack.num_classes"):
        LabelFlip(num_classes=1)
