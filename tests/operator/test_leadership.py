"""Following kopf's peering decisions: paused replicas are followers, priorities never tie."""

from __future__ import annotations

import logging

from tailrace_operator import leadership


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord(
        leadership.PEERING_LOGGER, logging.INFO, __file__, 1, message, (), None
    )


def test_replica_is_paused_until_kopf_says_it_resumes() -> None:
    tracker = leadership.PauseTracker(paused=True)
    tracker.emit(record("Keep-alive in 'tailrace' cluster-wide: ok."))
    assert tracker.paused is True
    tracker.emit(record("Resuming operations after the pause. Conflicting operators are gone."))
    assert tracker.paused is False


def test_pause_and_resume_messages_toggle_the_follower_state() -> None:
    tracker = leadership.PauseTracker(paused=False)

    tracker.emit(record("Pausing operations in favour of [Peer(identity='b', priority=9)]."))
    assert tracker.paused is True
    tracker.emit(record("Keep-alive in 'tailrace' cluster-wide: ok."))
    assert tracker.paused is True
    tracker.emit(record("Resuming operations after the pause. Conflicting operators are gone."))
    assert tracker.paused is False
    tracker.emit(record("Pausing all operators, including self: [...]"))
    assert tracker.paused is True


def test_tracker_sees_kopf_peering_records_when_attached() -> None:
    tracker = leadership.PauseTracker(paused=False)
    tracker.attach()
    try:
        logging.getLogger(leadership.PEERING_LOGGER).info("Pausing operations in favour of [x].")
    finally:
        tracker.detach()
    assert tracker.paused is True


def test_random_priorities_of_replicas_differ() -> None:
    priorities = {leadership.random_priority() for _ in range(1000)}
    assert len(priorities) == 1000
    assert all(priority > 0 for priority in priorities)
