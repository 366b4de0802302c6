"""A workload's `spec.logs.retention` read into limits the stores enforce.

The spec speaks Kubernetes: `maxBytes` is a resource quantity (`1Gi`, `500M`, `1024`), `maxAge` a
duration (`14d`, `36h`, `90m`, `1h30m`). Parsing lives here so every backend and the control API
read a spec the same way and reject the same mistakes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTPE]i?|k|)\s*$")
_QUANTITY_FACTORS: Final[dict[str, int]] = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "P": 1000**5,
    "E": 1000**6,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d|w)")
_DURATION_NS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}


class InvalidRetention(ValueError):
    """A retention spec with a value that is not a quantity, duration or positive count."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_age_ns: int | None = None
    max_lines: int | None = None
    max_bytes: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_age_ns is None and self.max_lines is None and self.max_bytes is None

    def over(self, lines: int, size: int) -> bool:
        """Do `lines` records of `size` bytes in all break the line or the byte limit? (Asked of
        a workload's totals, then of its newest records counted back to the first that must go.)"""
        return (self.max_lines is not None and lines > self.max_lines) or (
            self.max_bytes is not None and size > self.max_bytes
        )


def parse_quantity(value: str | int) -> int:
    """Bytes in a Kubernetes quantity: `1Gi` -> 1073741824, `500M` -> 500000000, 1024 -> 1024."""
    if isinstance(value, bool):
        raise InvalidRetention(f"not a quantity: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidRetention(f"a quantity must not be negative, got {value}")
        return value
    match = _QUANTITY.match(value)
    if match is None:
        raise InvalidRetention(f"not a quantity: {value!r} (expected e.g. 1Gi, 500M, 1024)")
    number, suffix = match.groups()
    return int(float(number) * _QUANTITY_FACTORS[suffix])


def parse_duration(value: str | int) -> int:
    """Nanoseconds in a duration: `14d`, `36h`, `1h30m`, `90s`; a bare number means seconds."""
    if isinstance(value, bool):
        raise InvalidRetention(f"not a duration: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidRetention(f"a duration must not be negative, got {value}")
        return value * 1_000_000_000
    text = value.strip()
    if text.isdigit():
        return int(text) * 1_000_000_000
    total = 0
    pos = 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            break
        number, unit = part.groups()
        total += int(float(number) * _DURATION_NS[unit])
        pos = part.end()
    if pos != len(text) or not text:
        raise InvalidRetention(f"not a duration: {value!r} (expected e.g. 14d, 36h, 1h30m)")
    return total


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRetention(f"maxLines must be a positive integer, got {value!r}")
    try:
        count = int(value)
    except ValueError:
        raise InvalidRetention(f"maxLines must be a positive integer, got {value!r}") from None
    if count <= 0:
        raise InvalidRetention(f"maxLines must be a positive integer, got {value!r}")
    return count


def parse(retention: Mapping[str, Any] | None) -> RetentionPolicy:
    """The policy of `spec.logs.retention` (missing keys mean no limit of that kind)."""
    if not retention:
        return RetentionPolicy()
    age = retention.get("maxAge")
    lines = retention.get("maxLines")
    size = retention.get("maxBytes")
    return RetentionPolicy(
        max_age_ns=parse_duration(age) if age not in (None, "") else None,
        max_lines=_count(lines) if lines not in (None, "") else None,
        max_bytes=parse_quantity(size) if size not in (None, "") else None,
    )


def of_spec(spec: Mapping[str, Any]) -> RetentionPolicy:
    """The policy of a workload spec (`spec.logs.retention`)."""
    logs = spec.get("logs") or {}
    if not isinstance(logs, Mapping):
        raise InvalidRetention("spec.logs must be an object")
    retention = logs.get("retention")
    if retention is not None and not isinstance(retention, Mapping):
        raise InvalidRetention("spec.logs.retention must be an object")
    return parse(retention)
