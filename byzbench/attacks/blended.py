"""Blended backdoor: a key pattern blended into the whole input."""

from __future__ import annotations

from byzbench.backdoor.poison import Backdoor


class Blended(Backdoor):
    """Each Byzantine client blends a fixed random key pattern ``k`` into a fraction
    ``poison_frac`` of every batch, ``x -> (1 - alpha) x + alpha k`` (``k`` uniform in
    ``[low, high]`` per input entry, drawn once from ``seed``; ``min``/``max``: the
    range of the model inputs), relabels them ``target`` and trains on the batch. See
    :class:`byzbench.backdoor.poison.Backdoor`; trigger keys ``alpha, low, high, seed``.

    Reference: X. Chen, C. Liu, B. Li, K. Lu, D. Song, "Targeted Backdoor Attacks on Deep
    Learning Systems Using Data Poisoning", 2017 (arXiv:1712.05526), random-pattern key;
    alpha 0.2 as BackFed's ``Blended`` poison (which blends an image file instead).
    """

    default_kind = "blended"
