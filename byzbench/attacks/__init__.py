"""Byzantine attacks: one module per attack, ``honest [n_h, d], ctx -> [f, d]``."""
