"""Model replacement (and constrain-and-scale): a boosted backdoored update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from byzbench import require
from byzbench.attacks.base import RoundContext
from byzbench.backdoor.poison import Backdoor, check_bound, clip_rows


class ModelReplacement(Backdoor):
    r"""The Byzantine clients train on poisoned batches (any trigger, as
    :class:`~byzbench.backdoor.poison.Backdoor`) and send their update boosted by
    :math:`\gamma`. With the paper's :math:`\gamma = n/\eta` shared among the round's
    f attackers (``gamma: null`` gives :math:`\gamma = n/(\eta f)`, n the round's rows,
    :math:`\eta` = ``server_lr`` the server learning rate the attacker assumes), the
    mean's step is

    .. math:: \theta' = \theta - \frac{\eta}{n}\Big(\sum_{h} \Delta_h
        + \gamma \sum_{a} \Delta_a\Big) = \bar X - \frac{\eta}{n} \sum_h \Delta_h,

    with :math:`\bar X` the mean of the attackers' local models
    (:math:`\Delta_a = \theta - X_a`): the global model is replaced by the backdoored
    one up to the honest updates (exactly when they sum to zero, the paper's
    assumption near convergence).

    Constrain-and-scale (``attack=constrain_scale``): ``norm_bound`` then scales each
    boosted row down to norm at most the bound (a number, or ``median``: the median
    norm of the round's honest rows, what a median-adaptive norm defense uses), so that
    it passes a norm defense. The paper's anomaly term in the training loss
    (:math:`\alpha L_{class} + (1 - \alpha) L_{ano}`) is not applied: the Byzantine
    clients train with the run's loss in the shared vectorized pass.

    Args:
        gamma: boost factor > 0, or null (``n / (server_lr f)``).
        server_lr: the server learning rate the attacker assumes (> 0).
        norm_bound: null, a number > 0 or median.
        trigger, target, poison_frac, byz_momentum: as ``Backdoor``.

    Reference: E. Bagdasaryan, A. Veit, Y. Hua, D. Estrin, V. Shmatikov, "How To Backdoor
    Federated Learning", AISTATS 2020 (gamma = n/eta; FLPoison's
    ``attackers/modelreplacement.py`` uses a fixed scaling_factor 50 with 50 clients).
    """

    def __init__(self, gamma: float | None = None, server_lr: float = 1.0,
                 norm_bound: float | str | None = None,
                 trigger: dict[str, Any] | None = None, target: int = 6,
                 poison_frac: float = 0.32, byz_momentum: bool = False,
                 num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                 input_range: Callable[[], tuple[Tensor, Tensor]] | None = None):
        require(gamma is None or (isinstance(gamma, (int, float)) and gamma > 0), "attack.gamma",
                gamma, "a number > 0 or null (n / (server_lr f))")
        require(isinstance(server_lr, (int, float)) and server_lr > 0, "attack.server_lr",
                server_lr, "a number > 0")
        check_bound(norm_bound)
        super().__init__(trigger, target, poison_frac, byz_momentum, num_classes, input_shape,
                         input_range)
        self.gamma, self.server_lr, self.norm_bound = gamma, float(server_lr), norm_bound

    def boost(self, ctx: RoundContext) -> float:
        """This round's gamma."""
        return float(self.gamma) if self.gamma is not None else ctx.n / (self.server_lr * ctx.f)

    def craft(self, own: Tensor, honest: Tensor, ctx: RoundContext) -> Tensor:
        return clip_rows(own * self.boost(ctx), self.norm_bound, honest)
