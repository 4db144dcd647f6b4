"""DBA: the distributed backdoor attack."""

from __future__ import annotations

from byzbench.backdoor.poison import Backdoor


class DBA(Backdoor):
    """The global trigger is split into ``parts`` local triggers (bars of ``1 x size``
    pixels, see :func:`byzbench.backdoor.triggers.dba_masks`); the i-th Byzantine row of
    a round trains with part ``i mod parts`` only, and the ASR is measured with the
    full (global) trigger. See :class:`byzbench.backdoor.poison.Backdoor`; trigger keys
    ``parts, size, gap, shift, value``.

    Byzantine rows are numbered within the round (under partial participation a
    client's part may change between rounds; with full participation each Byzantine
    client keeps its part).

    Reference: C. Xie, K. Huang, P.-Y. Chen, B. Li, "DBA: Distributed Backdoor Attacks
    against Federated Learning", ICLR 2020 (MNIST: 4 parts of size 4, gap 2, shift 0;
    FLPoison's ``attackers/dba.py`` layout).
    """

    default_kind = "dba"
