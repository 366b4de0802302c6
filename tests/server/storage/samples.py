"""Records and batches for the store contract suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tailrace.server.storage import base

T0 = 1_700_000_000_000_000_000


def record(
    message: str = "hello",
    *,
    ts_ns: int = T0,
    namespace: str = "ns",
    pod: str = "pod-1",
    container: str = "app",
    stream: str = "stdout",
    level: str = "INFO",
    **fields: Any,
) -> base.NewRecord:
    return base.NewRecord(
        ts_ns=ts_ns,
        namespace=namespace,
        pod=pod,
        container=container,
        stream=stream,
        level=level,
        message=message,
        **fields,
    )


def batch(
    key: str,
    records: Sequence[base.NewRecord],
    first_offset: int = 0,
    *,
    step: int = 10,
    dropped_lines: int = 0,
    covered_offset: int | None = None,
) -> base.IngestBatch:
    """Records at offsets first+step, first+2*step, ... of source `key`."""
    ends = [first_offset + step * (i + 1) for i in range(len(records))]
    first = records[0] if records else None
    return base.IngestBatch(
        source_key=key,
        records=list(records),
        end_offsets=ends,
        covered_offset=covered_offset if covered_offset is not None else max(ends, default=0),
        dropped_lines=dropped_lines,
        namespace=first.namespace if first else "ns",
        pod=first.pod if first else "pod-1",
        container=first.container if first else "app",
        kind=first.kind if first else "",
        workload=first.workload if first else "",
    )


def workload(
    name: str = "hello",
    *,
    namespace: str = "ns",
    kind: str = "Function",
    uid: str = "uid-hello",
    spec: dict[str, Any] | None = None,
) -> base.Workload:
    return base.Workload(base.WorkloadKey(namespace, kind, name), uid, spec or {})
