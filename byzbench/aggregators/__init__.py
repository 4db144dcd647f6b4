"""Gradient aggregation rules: one module per rule, ``[n, d] -> [d]``."""
