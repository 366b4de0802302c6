"""Pod state changes as system log records and execution events (pure: two Pod dicts in).

The control API keeps the last Pod it saw; comparing it with the new one tells what happened in
between, the way `kubectl describe pod` events do: scheduled, image pulled, started, restarted,
OOMKilled, terminated with an exit code, deleted. A pod carrying the execution-id label is one
execution of a function, and its phase gives Hyper's events: CALL when first seen, PENDING,
RUNNING, FINISHED (Succeeded) and FAILED. Execution events are system records whose attrs hold
`{"event": ...}`; lifecycle records hold `{"reason": ...}`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailrace import conventions
from tailrace.server import formats

PHASE_EVENTS = {
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Succeeded": "FINISHED",
    "Failed": "FAILED",
}
EXECUTION_EVENTS = ("CALL", "PENDING", "RUNNING", "FINISHED", "FAILED")


@dataclass(frozen=True, slots=True)
class Happening:
    """One thing that happened to a pod, before it becomes a record."""

    ts_ns: int
    level: str
    message: str
    container: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _time(value: Any, default_ns: int) -> int:
    if isinstance(value, str):
        try:
            return formats.parse_time(value)
        except ValueError:
            pass
    return default_ns


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = _dict(pod.get("status"))
    found: dict[str, Mapping[str, Any]] = {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for item in _list(status.get(key)):
            name = item.get("name")
            if isinstance(name, str):
                found[name] = item
    return found


def _condition_true(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _list(_dict(pod.get("status")).get("conditions")):
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def _terminations(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Terminations visible in a container status, keyed so one is reported once."""
    found = {}
    for where in ("state", "lastState"):
        terminated = _dict(_dict(status.get(where)).get("terminated"))
        if terminated:
            key = "|".join(
                str(terminated.get(k, ""))
                for k in ("containerID", "finishedAt", "exitCode", "reason")
            )
            found[key] = terminated
    return found


def _container_changes(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any], now_ns: int
) -> Iterator[Happening]:
    image_id = new.get("imageID")
    if image_id and image_id != old.get("imageID"):
        image = new.get("image") or image_id
        yield Happening(now_ns, "INFO", f"Pulled image {image}", name, {"reason": "Pulled"})
    old_restarts = old.get("restartCount") or 0
    new_restarts = new.get("restartCount") or 0
    old_terminations = _terminations(old)
    for key, terminated in _terminations(new).items():
        if key in old_terminations:
            continue
        code = terminated.get("exitCode")
        reason = terminated.get("reason") or ""
        ts = _time(terminated.get("finishedAt"), now_ns)
        attrs: dict[str, Any] = {"reason": reason or "Terminated", "exitCode": code}
        if reason == "OOMKilled":
            message = f"Container {name} was OOMKilled (exit code {code})"
            yield Happening(ts, "ERROR", message, name, attrs)
        else:
            level = "INFO" if code == 0 else "ERROR"
            suffix = f" ({reason})" if reason else ""
            message = f"Container {name} terminated with exit code {code}{suffix}"
            yield Happening(ts, level, message, name, {**attrs, "reason": "Terminated"})
    restarted = isinstance(new_restarts, int) and isinstance(old_restarts, int)
    if restarted and new_restarts > old_restarts:
        message = f"Container {name} restarted (restart count {new_restarts})"
        attrs = {"reason": "Restarted", "restartCount": new_restarts}
        yield Happening(now_ns, "WARN", message, name, attrs)
    running = _dict(_dict(new.get("state")).get("running"))
    old_running = _dict(_dict(old.get("state")).get("running"))
    if running and running.get("startedAt") != old_running.get("startedAt"):
        ts = _time(running.get("startedAt"), now_ns)
        yield Happening(ts, "INFO", f"Started container {name}", name, {"reason": "Started"})
    waiting = _dict(_dict(new.get("state")).get("waiting"))
    old_waiting = _dict(_dict(old.get("state")).get("waiting"))
    reason = waiting.get("reason")
    if reason and reason != old_waiting.get("reason") and reason not in _QUIET_WAITING:
        message = f"Container {name} is waiting: {reason}"
        if waiting.get("message"):
            message += f" ({waiting['message']})"
        yield Happening(now_ns, "WARN", message, name, {"reason": reason})


# Waiting reasons that are routine steps, not worth a record of their own.
_QUIET_WAITING = frozenset({"ContainerCreating", "PodInitializing"})


def pod_changes(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    execution_label: str = conventions.EXECUTION_ID_LABEL,
    now_ns: int | None = None,
) -> list[Happening]:
    """What happened between two sightings of a pod (None: not seen yet / deleted)."""
    now = time.time_ns() if now_ns is None else now_ns
    happenings: list[Happening] = []
    current = new if new is not None else old
    if current is None:
        return happenings
    metadata = _dict(current.get("metadata"))
    name = metadata.get("name", "")
    namespace = metadata.get("namespace", "")
    execution = _dict(metadata.get("labels")).get(execution_label)
    before: Mapping[str, Any] = old or {}

    if new is None:
        happenings.append(Happening(now, "INFO", f"Pod {name} deleted", "", {"reason": "Deleted"}))
        return happenings
    if old is None and execution:
        created = _time(metadata.get("creationTimestamp"), now)
        message = f"Execution {execution} called"
        happenings.append(Happening(created, "INFO", message, "", {"event": "CALL"}))
    scheduled = _condition_true(new, "PodScheduled")
    if scheduled is not None and _condition_true(before, "PodScheduled") is None:
        node = _dict(new.get("spec")).get("nodeName")
        where = f" to {node}" if node else ""
        ts = _time(scheduled.get("lastTransitionTime"), now)
        message = f"Successfully assigned {namespace}/{name}{where}"
        happenings.append(Happening(ts, "INFO", message, "", {"reason": "Scheduled"}))
    old_statuses = _statuses(before)
    for container, status in _statuses(new).items():
        happenings.extend(
            _container_changes(container, old_statuses.get(container, {}), status, now)
        )
    phase = _dict(new.get("status")).get("phase")
    old_phase = _dict(before.get("status")).get("phase")
    if execution and phase != old_phase and phase in PHASE_EVENTS:
        event = PHASE_EVENTS[phase]
        level = "ERROR" if event == "FAILED" else "INFO"
        message = f"Execution {execution} {event.lower()}"
        happenings.append(Happening(now, level, message, "", {"event": event, "phase": phase}))
    return happenings
