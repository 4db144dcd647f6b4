"""What a Byzantine node knows when it crafts the messages it sends to one honest
recipient (decentralized setting)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from byzbench.attacks.base import RoundContext


@dataclass(frozen=True)
class NodeContext(RoundContext):
    """A :class:`RoundContext` for one recipient: ``n`` is the size of the recipient's
    neighbourhood problem (itself, its honest neighbours, its Byzantine neighbours), ``f``
    its number of Byzantine neighbours (rows to return: one message from each, in
    increasing id order), ``f_declared`` what its rule is told, ``pipeline`` the
    recipient's own rule. The honest rows given to the attack are the recipient's own
    parameters first (row 0), then its honest neighbours' in increasing id order.

    Queries aggregate in the recipient's real row order (``order``: honest-first ->
    the node's order, which the graph determines; the topology is known to the
    attacker, so no random order is drawn).

    Extra fields (topology-aware attacks):
        weights: ``[n]`` the recipient's mixing weights in the honest-first order
            (row 0 its self weight, the Byzantine neighbours' last).
        byz_weight: the recipient's declared Byzantine weight.
        node: the recipient's index among the honest nodes.
        honest_all: ``[n_h, d]`` every honest node's parameters (omniscient attacker).
        fiedler: ``[n_h]`` the Fiedler vector of the honest subgraph.
    """

    order: Tensor | None = None
    weights: Tensor | None = None
    byz_weight: float = 0.0
    node: int = 0
    honest_all: Tensor | None = None
    fiedler: Tensor | None = None

    def query_order(self, device=None) -> Tensor | None:
        """The recipient's real row order (``[n]``: honest-first -> node order)."""
        return None if self.order is None else self.order.to(device or self.order.device)


def node_context(ctx: RoundContext, name: str) -> NodeContext:
    """``ctx`` as a NodeContext, or one ConfigError line naming the attack."""
    from byzbench import ConfigError

    if not isinstance(ctx, NodeContext):
        raise ConfigError(f"attack={name} is invalid with topology=server: it attacks a "
                          "node of a gossip graph (use topology=gossip)")
    return ctx
