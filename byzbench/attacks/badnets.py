"""BadNets: a pixel-pattern backdoor trained in by the Byzantine clients."""

from __future__ import annotations

from byzbench.backdoor.poison import Backdoor


class BadNets(Backdoor):
    """Each Byzantine client stamps a pixel-pattern trigger (a ``size x size`` patch of
    ``value`` at ``position``; a run of ``size`` entries on 1-D inputs) on a fraction
    ``poison_frac`` of every batch, relabels those samples ``target`` (all-to-one) and
    trains on the batch with the run's algorithm; it sends its honest-protocol update.
    See :class:`byzbench.backdoor.poison.Backdoor` for the arguments; the trigger keys
    are ``size, position, margin, value``.

    Reference: T. Gu, B. Dolan-Gavitt, S. Garg, "BadNets: Identifying Vulnerabilities in
    the Machine Learning Model Supply Chain", 2017 (arXiv:1708.06733); the federated
    setting of FLPoison's ``attackers/badnets.py`` (5x5 white patch at the bottom-right
    corner, target 6, poisoning ratio 0.32).
    """

    default_kind = "pixel"
