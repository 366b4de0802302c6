"""Rows of the SQLite store turned back into the shapes of the `Store` contract."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from tailrace import conventions
from tailrace.server.storage import base

_LEVELS = conventions.LEVELS


def stats(groups: Iterable[tuple[Any, ...]], dropped: int) -> base.Stats:
    by: dict[str, dict[str, int]] = {
        name: {} for name in ("level", "container", "execution", "namespace", "workload", "pod")
    }
    total = truncated = split = size = 0
    last: int | None = None
    for level, container, execution, namespace, kind, workload, pod, n, t, s, b, ts in groups:
        total += n
        truncated += t
        split += s
        size += b
        last = ts if last is None else max(last, ts)
        for name, key in (
            ("level", _LEVELS[level]),
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


def record(row: tuple[Any, ...]) -> base.StoredRecord:
    attrs = row[16]
    return base.StoredRecord(
        id=row[0],
        ts_ns=row[1],
        received_ns=row[2],
        namespace=row[3],
        kind=row[4],
        workload=row[5],
        workload_uid=row[6],
        pod=row[7],
        pod_uid=row[8],
        container=row[9],
        container_id=row[10],
        restart=row[11],
        stream=row[12],
        level=_LEVELS[row[13]],
        message=row[14],
        execution_id=row[15],
        attrs=orjson.loads(attrs) if attrs else {},
        source=row[17],
        flags=row[18],
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
