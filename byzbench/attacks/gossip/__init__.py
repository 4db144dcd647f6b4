"""Attacks that need a gossip graph (``topology=gossip``): they read the recipient's
mixing weights or the graph from ``byzbench.topology.context.NodeContext``."""
