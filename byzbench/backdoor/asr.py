"""The attack success rate (ASR) of a backdoor: an evaluator of ``Experiment.evaluators``."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from byzbench.backdoor.triggers import Trigger
from byzbench.grads import make_unflatten

SPLITS = ("test", "val")


class AttackSuccessRate:
    """``asr``: the fraction of the split's samples whose true label is not ``target``
    that the model classifies as ``target`` once ``trigger`` is stamped on them (all-to-one
    backdoor; FLPoison's and BackFed's backdoor accuracy on the non-target samples).
    Evaluated on ``test`` and ``val``; other splits give no metric. A split without a
    non-target sample gives nan.
    """

    def __init__(self, trigger: Trigger, target: int, chunk: int = 2048):
        self.trigger, self.target, self.chunk = trigger, int(target), int(chunk)

    @torch.no_grad()
    def __call__(self, model: nn.Module, theta: Tensor, data, split: str) -> dict[str, Tensor]:
        if split not in SPLITS:
            return {}
        x_all, y_all = (data.x_test, data.y_test) if split == "test" else (data.x_val, data.y_val)
        keep = torch.nonzero(y_all != self.target).flatten()
        hits = torch.zeros((), dtype=torch.float64, device=theta.device)
        params = make_unflatten(model)(theta.detach())
        was_training = model.training
        model.eval()
        for i in range(0, len(keep), self.chunk):
            x = self.trigger.apply(data.prepare(x_all[keep[i:i + self.chunk]]))
            out = functional_call(model, params, (x,))
            hits += (out.argmax(-1) == self.target).sum()
        model.train(was_training)
        return {"asr": hits / len(keep) if len(keep) else hits.new_tensor(float("nan"))}
