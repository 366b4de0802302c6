"""Label-selector semantics and Kubernetes-style condition bookkeeping (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from tailrace_operator import resources, status

LABELS = {"app": "hello", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({"matchLabels": {"app": "hello"}}, True),
        ({"matchLabels": {"app": "hello", "tier": "db"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Resembles"}]}, False),
        ({}, False),  # an empty selector claims nothing rather than the whole namespace
    ],
)
def test_selector_matches_like_kubernetes(selector: dict[str, Any], matches: bool) -> None:
    assert resources.selector_matches(selector, LABELS) is matches


def test_invalid_workloads_never_select_pods() -> None:
    body = {
        "metadata": {"name": "bad", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"app": "hello"}}, "logs": {"onOverflow": "?"}},
    }
    ref = resources.workload_ref("Function", body)
    assert ref.valid is False
    assert resources.selecting([ref], LABELS) == []


def test_empty_selector_is_an_invalid_spec() -> None:
    assert resources.validate_spec({"selector": {}}) == [
        "spec.selector must have matchLabels or matchExpressions"
    ]


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    first = status.merge_conditions(
        None, [status.Condition("Ready", True, "Registered")], generation=1, now="T1"
    )
    same = status.merge_conditions(
        first, [status.Condition("Ready", True, "StillRegistered")], generation=2, now="T2"
    )
    flipped = status.merge_conditions(
        same,
        [status.Condition("Ready", False, "ServerUnreachable", "down")],
        generation=2,
        now="T3",
    )

    assert same[0]["lastTransitionTime"] == "T1"
    assert same[0]["reason"] == "StillRegistered"
    assert same[0]["observedGeneration"] == 2
    assert flipped[0] == {
        "type": "Ready",
        "status": "False",
        "reason": "ServerUnreachable",
        "message": "down",
        "lastTransitionTime": "T3",
        "observedGeneration": 2,
    }


def test_conditions_of_other_types_are_kept() -> None:
    existing = [{"type": "SpecValid", "status": "True", "reason": "Valid", "message": ""}]
    merged = status.merge_conditions(
        existing, [status.Condition("Ready", None, "Unknown")], generation=None, now="T"
    )
    assert [c["type"] for c in merged] == ["Ready", "SpecValid"]
    assert merged[0]["status"] == "Unknown"


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        (
            {"droppedLines": 2, "truncatedLines": 5, "lastLogAt": "2026-01-01T00:00:00Z"},
            {"droppedLines": 2, "truncatedLines": 5, "lastLogAt": "2026-01-01T00:00:00Z"},
        ),
        ({}, {"droppedLines": 0, "truncatedLines": 0, "lastLogAt": None}),
        (
            {"droppedLines": -1, "truncatedLines": "many", "lastLogAt": ""},
            {"droppedLines": 0, "truncatedLines": 0, "lastLogAt": None},
        ),
    ],
)
def test_counters_from_stats_tolerate_missing_and_bad_values(
    stats: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert status.counters_from_stats(stats) == expected
