"""Plain (non-robust) gossip averaging with the mixing weights."""

from __future__ import annotations

from torch import Tensor

from byzbench.aggregators.gossip.base import GossipRule


class GossipAvg(GossipRule):
    r"""Node i's plain gossip step :math:`x_i^+ = \sum_{j \in N_i \cup \{i\}} W_{ij} x_j`
    over what it received (the non-robust baseline of decentralized SGD). With
    ``topology.weights=uniform`` it equals ``agg=mean`` on the neighbourhood.

    ``last_node_weights``: the weights ``W_ij`` themselves.

    Reference: Lian et al., "Can Decentralized Algorithms Outperform Centralized
    Algorithms?", NeurIPS 2017 (D-PSGD); epfml's ``DecentralizedAggregator``.
    """

    _name = "gossip_avg"

    def mix(self, xs: Tensor, w: Tensor, b: Tensor):
        return (w.unsqueeze(2) * xs).sum(1), w
