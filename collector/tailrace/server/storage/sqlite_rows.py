"""Rows of the SQLite store turned back into the shapes of the `Store` contract."""

from __future__ import annotations

from typing import Any

import orjson

from tailrace import conventions
from tailrace.server.storage import base

_LEVELS = conventions.LEVELS


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
