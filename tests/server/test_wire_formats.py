"""Pure pieces of the HTTP side: times, durations, Accept, cursors, selectors, lifecycle."""

from __future__ import annotations

import pytest

from tailrace.server import control, cursors, formats, lifecycle
from tailrace.server.storage import base


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000_500_000_000),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123_456_789),
        ("2023-11-14T23:13:20.000000001+01:00", 1_700_000_000_000_000_001),
        ("2023-11-14t22:13:20z", 1_700_000_000_000_000_000),
        ("1700000000000000000", 1_700_000_000_000_000_000),
    ],
)
def test_parse_time(text: str, expected: int) -> None:
    assert formats.parse_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13:20.1234567891Z", "now"]
)
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="RFC3339"):
        formats.parse_time(text)


def test_format_time_round_trips_nanoseconds() -> None:
    ts = 1_700_000_000_000_000_007
    assert formats.format_time(ts) == "2023-11-14T22:13:20.000000007Z"
    assert formats.parse_time(formats.format_time(ts)) == ts


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1h30m", 5400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert formats.parse_duration(text) == seconds * 1_000_000_000


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "-5m", "0s", "99999d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        formats.parse_duration(text)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text"),
        ("*/*", "text"),
        ("application/json", "json"),
        ("application/x-ndjson", "ndjson"),
        ("text/event-stream", "sse"),
        ("text/html, application/json;q=0.8", "json"),
        ("application/json;q=0, text/plain", "text"),
        ("image/png", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert formats.negotiate(accept) == expected


def test_sse_event_splits_multiline_data() -> None:
    assert (
        formats.sse_event("a\nb", event="x", event_id="7")
        == b"id: 7\nevent: x\ndata: a\ndata: b\n\n"
    )


def test_cursor_round_trip_and_binding() -> None:
    signer = cursors.Signer(b"k")
    query = base.Query(namespace="ns", pod="p")
    position = cursors.Position(123, 45, "desc")
    token = signer.encode(position, query)
    assert signer.decode(token, query) == position
    with pytest.raises(cursors.InvalidCursor, match="different query"):
        signer.decode(token, base.Query(namespace="ns", pod="q"))
    with pytest.raises(cursors.InvalidCursor, match="signature"):
        cursors.Signer(b"other").decode(token, query)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        ({}, {"a": "1"}, False),
    ],
)
def test_selector_matches(
    selector: dict[str, object], labels: dict[str, str], expected: bool
) -> None:
    assert control.selector_matches(selector, labels) is expected


def test_unchanged_pod_has_no_happenings() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "labels": {}},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2023-11-14T22:13:05Z"}},
                }
            ],
        },
    }
    assert lifecycle.pod_changes(pod, pod, now_ns=1) == []
    first = lifecycle.pod_changes(None, pod, now_ns=1)
    assert [h.message for h in first] == ["Started container app"]
