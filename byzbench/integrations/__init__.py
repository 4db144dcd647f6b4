"""Bridges from byzbench to other frameworks, each behind its own pip extra.

* :mod:`byzbench.integrations.flower` (``pip install "byzbench[flower]"``): byzbench's
  rules, pre-aggregators and attacks inside Flower's strategies and simulation.

Nothing here is imported by byzbench itself: the core package never needs an extra.
"""
