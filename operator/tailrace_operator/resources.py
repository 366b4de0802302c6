"""What a Function or Pipeline says, checked the way the CRD schema checks it.

The API server enforces the CRD's schema, but the operator cannot rely on that alone: objects may
predate a schema change, come from an API server that skips validation, or be fine per schema yet
useless (a selector matching nothing). So the spec is checked again here, and each problem becomes a
condition and an Event on the workload instead of an exception that would crash-loop the handler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tailrace import conventions

CollectorMode = Literal["sidecar", "node"]
COLLECTOR_MODES: tuple[CollectorMode, ...] = ("sidecar", "node")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

DURATION = re.compile(r"^[0-9]+(s|m|h|d|w)$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGTPE]i|[kMGTPE]|m)?$")


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """The part of a workload that pod matching and injection need, kept in a kopf index."""

    kind: conventions.WorkloadKind
    namespace: str
    name: str
    uid: str
    selector: Mapping[str, Any]
    mode: CollectorMode = "sidecar"
    max_line_bytes: int = conventions.DEFAULT_MAX_LINE_BYTES
    on_overflow: conventions.OverflowPolicy = "truncate"
    resources: Mapping[str, Any] = field(default_factory=dict)
    valid: bool = True

    @property
    def label(self) -> str:
        """The `Kind/name` form used in TAILRACE_WORKLOAD and the workload annotation."""
        return f"{self.kind}/{self.name}"


def validate_spec(spec: Mapping[str, Any]) -> list[str]:
    """Every problem with a workload's spec, as messages naming the field; empty when valid."""
    problems: list[str] = []
    problems += _selector_problems(spec.get("selector"))
    logs = spec.get("logs") or {}
    if not isinstance(logs, Mapping):
        return [*problems, "spec.logs must be an object"]
    enabled = logs.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"spec.logs.enabled must be true or false, got {enabled!r}")
    level = logs.get("minLevel", "INFO")
    if level not in conventions.LEVELS:
        problems.append(
            f"spec.logs.minLevel must be one of {', '.join(conventions.LEVELS)}, got {level!r}"
        )
    max_line = logs.get("maxLineBytes", conventions.DEFAULT_MAX_LINE_BYTES)
    if not _is_int(max_line) or not (
        conventions.MIN_MAX_LINE_BYTES <= max_line <= conventions.MAX_MAX_LINE_BYTES
    ):
        problems.append(
            f"spec.logs.maxLineBytes must be an integer between {conventions.MIN_MAX_LINE_BYTES} "
            f"and {conventions.MAX_MAX_LINE_BYTES}, got {max_line!r}"
        )
    overflow = logs.get("onOverflow", "truncate")
    if overflow not in conventions.OVERFLOW_POLICIES:
        problems.append(
            f"spec.logs.onOverflow must be one of {', '.join(conventions.OVERFLOW_POLICIES)}, "
            f"got {overflow!r}"
        )
    retention = logs.get("retention") or {}
    max_age = retention.get("maxAge", "14d")
    if not isinstance(max_age, str) or not DURATION.match(max_age):
        problems.append(
            f"spec.logs.retention.maxAge must be a duration like 90m, 36h or 14d, got {max_age!r}"
        )
    problems += _count_problem("spec.logs.retention.maxLines", retention.get("maxLines"), 1)
    problems += _quantity_problem("spec.logs.retention.maxBytes", retention.get("maxBytes"), 1)
    ring = logs.get("ringBuffer") or {}
    problems += _count_problem("spec.logs.ringBuffer.lines", ring.get("lines"), 0)
    problems += _quantity_problem("spec.logs.ringBuffer.bytes", ring.get("bytes"), 0)
    collector = spec.get("collector") or {}
    mode = collector.get("mode", "sidecar")
    if mode not in COLLECTOR_MODES:
        problems.append(f"spec.collector.mode must be sidecar or node, got {mode!r}")
    resources = collector.get("resources") or {}
    for section in ("requests", "limits"):
        for resource_name, amount in (resources.get(section) or {}).items():
            problems += _quantity_problem(
                f"spec.collector.resources.{section}.{resource_name}", amount, 0
            )
    return problems


def _selector_problems(selector: object) -> list[str]:
    if not isinstance(selector, Mapping):
        return ["spec.selector is required and must be a label selector"]
    labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    problems: list[str] = []
    if not labels and not expressions:
        # An empty selector would claim every pod of the namespace: almost never what was meant.
        problems.append("spec.selector must have matchLabels or matchExpressions")
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        problems.append("spec.selector.matchLabels must map label names to strings")
    for index, expression in enumerate(expressions):
        operator = expression.get("operator") if isinstance(expression, Mapping) else None
        if operator not in SELECTOR_OPERATORS:
            problems.append(
                f"spec.selector.matchExpressions[{index}].operator must be one of "
                f"{', '.join(SELECTOR_OPERATORS)}, got {operator!r}"
            )
    return problems


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count_problem(path: str, value: object, minimum: int) -> list[str]:
    if value is None or (_is_int(value) and value >= minimum):  # type: ignore[operator]
        return []
    return [f"{path} must be an integer of at least {minimum}, got {value!r}"]


def _quantity_problem(path: str, value: object, minimum: int) -> list[str]:
    if value is None:
        return []
    if _is_int(value) and value >= minimum:  # type: ignore[operator]
        return []
    if isinstance(value, str) and QUANTITY.match(value):
        return []
    return [f"{path} must be a non-negative quantity such as 512Mi or 1Gi, got {value!r}"]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: all matchLabels and all matchExpressions hold."""
    match_labels = selector.get("matchLabels") or {}
    expressions: Sequence[Mapping[str, Any]] = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False  # see _selector_problems: an empty selector selects nothing here
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expression in expressions:
        key = expression.get("key", "")
        values = expression.get("values") or []
        operator = expression.get("operator")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in SELECTOR_OPERATORS:
            return False
    return True


def workload_ref(kind: conventions.WorkloadKind, body: Mapping[str, Any]) -> WorkloadRef:
    """The index entry of a workload; invalid specs are kept but marked so nothing uses them."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    logs = spec.get("logs") or {}
    collector = spec.get("collector") or {}
    valid = not validate_spec(spec)
    return WorkloadRef(
        kind=kind,
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        selector=spec.get("selector") or {},
        mode=collector.get("mode", "sidecar") if valid else "sidecar",
        max_line_bytes=logs.get("maxLineBytes", conventions.DEFAULT_MAX_LINE_BYTES)
        if valid
        else conventions.DEFAULT_MAX_LINE_BYTES,
        on_overflow=logs.get("onOverflow", "truncate") if valid else "truncate",
        resources=collector.get("resources") or {} if valid else {},
        valid=valid,
    )


def selecting(refs: Sequence[WorkloadRef], labels: Mapping[str, str]) -> list[WorkloadRef]:
    """The valid workloads whose selector matches these pod labels, in a stable order."""
    found = [ref for ref in refs if ref.valid and selector_matches(ref.selector, labels)]
    return sorted(found, key=lambda ref: (ref.kind, ref.name))
