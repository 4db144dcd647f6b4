"""Tests only: the byzbench CLI that sends itself a signal in the middle of round K
(after the aggregation, before the server step) the N-th time a run reaches it.

    python tests/integration/ckpt_driver.py K SIGNAL N <byzbench args...>

SIGKILL there is a kill at an arbitrary point of a round; SIGTERM/SIGUSR1 ask for the
checkpoint at the end of that round (byzbench.checkpoint)."""

from __future__ import annotations

import os
import signal
import sys

import byzbench.loop as loop
from byzbench.run import main

K, SIG, NTH = int(sys.argv[1]), getattr(signal, sys.argv[2]), int(sys.argv[3])
_seen = 0
_log_round = loop.log_round


def log_round(exp, t, *args):
    global _seen
    if t == K:
        _seen += 1
        if _seen == NTH:
            os.kill(os.getpid(), SIG)
    return _log_round(exp, t, *args)


loop.log_round = log_round
sys.argv = ["byzbench", *sys.argv[4:]]
main()
