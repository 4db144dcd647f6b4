"""Per-node gossip rules (decentralized setting, ``topology=gossip``): see ``base``."""
