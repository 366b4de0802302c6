from __future__ import annotations

from typing import Any

import pytest

from tailrace.server.storage import retention_policy as rp

DAY = 86_400 * 10**9


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 1024**3),
        ("500M", 500 * 10**6),
        ("1024", 1024),
        (2048, 2048),
        ("1.5Ki", 1536),
        ("4k", 4000),
    ],
)
def test_quantities(text: Any, value: int) -> None:
    assert rp.parse_quantity(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("14d", 14 * DAY),
        ("36h", 36 * 3600 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("90", 90 * 10**9),
        ("2w", 14 * DAY),
        ("500ms", 5 * 10**8),
    ],
)
def test_durations(text: Any, value: int) -> None:
    assert rp.parse_duration(text) == value


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ({"maxAge": "fortnight"}, "not a duration"),
        ({"maxAge": "14d3"}, "not a duration"),
        ({"maxBytes": "1Gb"}, "not a quantity"),
        ({"maxBytes": -1}, "negative"),
        ({"maxLines": 0}, "positive integer"),
        ({"maxLines": "many"}, "positive integer"),
        ({"maxLines": True}, "positive integer"),
    ],
)
def test_bad_specs_are_precise_errors(spec: dict[str, Any], fault: str) -> None:
    with pytest.raises(rp.InvalidRetention, match=fault):
        rp.parse(spec)


def test_spec_without_retention_is_unlimited() -> None:
    assert rp.of_spec({}).unlimited
    assert rp.of_spec(
        {"logs": {"retention": {"maxAge": "14d", "maxLines": 10, "maxBytes": "1Gi"}}}
    ) == (rp.RetentionPolicy(14 * DAY, 10, 1024**3))
