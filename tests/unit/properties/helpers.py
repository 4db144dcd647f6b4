"""Shared by the attack-scale and query properties: the round's sizes."""

from __future__ import annotations

N, F, D = 11, 2, 7
