"""Pre-aggregators: ``[n, d] -> [n_out, d]``, chainable before any rule."""
