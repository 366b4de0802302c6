"""Backend-neutral conversions of stored rows into the shapes of the `Store` contract.

The SQLite and PostgreSQL stores keep workloads and pods in the same columns and group stats the
same way, so both turn their rows back into contract objects here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tailrace.server.storage import base


def stats(
    groups: Iterable[tuple[Any, ...]], dropped: int, level_name: Callable[[Any], str] = str
) -> base.Stats:
    """Fold rows grouped by (level, container, execution, namespace, kind, workload, pod) with
    their counts, flags, bytes and newest time into `Stats`; `level_name` decodes the level."""
    by: dict[str, dict[str, int]] = {
        name: {} for name in ("level", "container", "execution", "namespace", "workload", "pod")
    }
    total = truncated = split = size = 0
    last: int | None = None
    for level, container, execution, namespace, kind, workload, pod, n, t, s, b, ts in groups:
        total += n
        truncated += t
        split += s
        size += int(b)
        last = ts if last is None else max(last, ts)
        for name, key in (
            ("level", level_name(level)),
            ("container", container),
            ("execution", execution),
            ("namespace", namespace),
            ("workload", f"{kind}/{workload}" if kind else ""),
            ("pod", pod),
        ):
            if key:
                by[name][key] = by[name].get(key, 0) + n
    return base.Stats(
        total=total,
        by_level=by["level"],
        by_container=by["container"],
        by_execution=by["execution"],
        by_namespace=by["namespace"],
        by_workload=by["workload"],
        truncated_lines=truncated,
        split_lines=split,
        dropped_lines=dropped,
        last_ts_ns=last,
        bytes=size,
        by_pod=by["pod"],
    )


def workload(row: tuple[Any, ...]) -> base.Workload:
    namespace, kind, name, uid, spec, generation, created_ns, deleted = row
    return base.Workload(
        key=base.WorkloadKey(namespace, kind, name),
        uid=uid,
        spec=orjson.loads(spec),
        generation=generation,
        created_ns=created_ns,
        deleted=bool(deleted),
    )


def pod(row: tuple[Any, ...]) -> base.Pod:
    namespace, name, uid, labels, kind, workload, phase, obj = row
    return base.Pod(
        namespace=namespace,
        name=name,
        uid=uid,
        labels=orjson.loads(labels),
        workload=base.WorkloadKey(namespace, kind, workload) if kind else None,
        phase=phase,
        obj=orjson.loads(obj),
    )
