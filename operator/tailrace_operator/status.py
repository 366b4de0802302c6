"""The `status` of a workload: phase, counters from the server, and Kubernetes-style conditions.

Conditions follow the Kubernetes API conventions: one entry per type, `lastTransitionTime` moves
only when `status` flips, so `kubectl wait --for=condition=Ready` and dashboards see real changes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Phase = Literal["Pending", "Active", "Invalid", "Degraded", "Terminating"]

# Condition types.
READY = "Ready"
SPEC_VALID = "SpecValid"
SERVER_REACHABLE = "ServerReachable"
PODS_SELECTED = "PodsSelected"
COLLECTOR_INJECTED = "CollectorInjected"


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool | None  # None is "Unknown"
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    existing: Sequence[Mapping[str, Any]] | None,
    updates: Iterable[Condition],
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Existing conditions with these set; untouched types are kept, order is stable by type."""
    by_type: dict[str, dict[str, Any]] = {
        str(item.get("type")): dict(item) for item in existing or () if item.get("type")
    }
    for update in updates:
        status = "Unknown" if update.status is None else "True" if update.status else "False"
        previous = by_type.get(update.type)
        changed = previous is None or previous.get("status") != status
        entry: dict[str, Any] = {
            "type": update.type,
            "status": status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),  # type: ignore[union-attr]
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        by_type[update.type] = entry
    return [by_type[key] for key in sorted(by_type)]


def counters_from_stats(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields taken from GET .../stats (docs/interfaces.md, "Workload stats")."""
    return {
        "droppedLines": _count(stats.get("droppedLines")),
        "truncatedLines": _count(stats.get("truncatedLines")),
        "lastLogAt": stats.get("lastLogAt") or None,
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
