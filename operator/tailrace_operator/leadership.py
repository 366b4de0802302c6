"""Leader election through kopf peering, and knowing whether this replica is the leader.

kopf peering lets the replica with the highest priority act and pauses the others; replicas of
equal priority all pause ("freeze, leaving the cluster unserved", kopf's docs), so each replica
draws a random priority unless one is configured.

A paused replica stops its watch streams, so its indexes go stale, and its admission webhook would
answer from them. It must therefore not be ready: the webhook Service then sends reviews only to
the leader. kopf exposes no pause signal, only its peering log lines, so those are followed here.
With several `--namespace`s there is one peering object per namespace and the last message wins;
kopf itself pauses while any of them is paused.
"""

from __future__ import annotations

import logging
import random

PEERING_LOGGER = "kopf._core.engines.peering"
# kopf's messages (kopf/_core/engines/peering.py) when it pauses or resumes this operator.
PAUSING_PREFIXES = ("Pausing operations in favour of", "Pausing all operators, including self")
RESUMING_PREFIX = "Resuming operations after the pause"

_MAX_PRIORITY = 2**31 - 1


def random_priority() -> int:
    """A priority two replicas are very unlikely to share (a tie pauses both)."""
    return random.SystemRandom().randrange(1, _MAX_PRIORITY)


class PauseTracker(logging.Handler):
    """Follows kopf's peering log to know whether this replica is paused (a follower)."""

    def __init__(self, *, paused: bool) -> None:
        super().__init__(level=logging.INFO)
        # With mandatory peering kopf starts paused and says only "Resuming" once it leads; a
        # replica that finds a leader already there never logs anything.
        self.paused = paused

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(PAUSING_PREFIXES):
            self.paused = True
        elif message.startswith(RESUMING_PREFIX):
            self.paused = False

    def attach(self) -> None:
        peering_logger = logging.getLogger(PEERING_LOGGER)
        peering_logger.addHandler(self)
        # The records must reach this handler even when the operator logs only warnings.
        if peering_logger.getEffectiveLevel() > logging.INFO:
            peering_logger.setLevel(logging.INFO)

    def detach(self) -> None:
        logging.getLogger(PEERING_LOGGER).removeHandler(self)
