"""Where aggregation happens (``topology=``): the parameter server (default,
``byzbench.loop``) or gossip on a graph (``byzbench.topology.gossip``)."""
