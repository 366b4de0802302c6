"""Which workload a record belongs to, and the integer refs the SQLite indexes are keyed on.

Both are looked up once per pod (per append, or for the store's life for the immutable refs) so an
append of thousands of records costs a few point queries, not one per record.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

import orjson

from tailrace.server.storage import base, chunks

# The `origins` table's columns: what a chunk's records share, and an odd stream's name.
ORIGIN_COLUMNS: Final = (*chunks.ORIGIN_FIELDS, "stream")


class Refs:
    """The integer ids standing for (namespace, pod) and (namespace, kind, workload) in indexes."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], int] = {}
        self._workloads: dict[tuple[str, str, str], int] = {}
        self._pairs: set[tuple[int, int]] = set()
        self._origins: dict[tuple[Any, ...], int] = {}

    def forget(self) -> None:
        # After a rollback a cached ref may name a row that was never committed.
        self._pods.clear()
        self._workloads.clear()
        self._pairs.clear()
        self._origins.clear()

    def origin(self, conn: sqlite3.Connection, key: tuple[Any, ...]) -> int:
        """The `origins` row of (namespace, kind, workload, workload_uid, pod, pod_uid,
        container, container_id, restart, source, stream)."""
        ref = self._origins.get(key)
        if ref is None:
            ref = _ref(conn, "origins", ORIGIN_COLUMNS, key)
            self._origins[key] = ref
        return ref

    def pair(self, conn: sqlite3.Connection, workload_ref: int, pod_ref: int) -> None:
        """Note in `workload_pods` that the pod holds records of the workload."""
        key = (workload_ref, pod_ref)
        if key not in self._pairs:
            conn.execute("INSERT OR IGNORE INTO workload_pods VALUES (?, ?)", key)
            self._pairs.add(key)

    def pod(self, conn: sqlite3.Connection, namespace: str, pod: str) -> int:
        key = (namespace, pod)
        ref = self._pods.get(key)
        if ref is None:
            ref = _ref(conn, "pod_refs", ("namespace", "pod"), key)
            self._pods[key] = ref
        return ref

    def workload(self, conn: sqlite3.Connection, namespace: str, kind: str, name: str) -> int:
        key = (namespace, kind, name)
        ref = self._workloads.get(key)
        if ref is None:
            ref = _ref(conn, "workload_refs", ("namespace", "kind", "workload"), key)
            self._workloads[key] = ref
        return ref


def _ref(
    conn: sqlite3.Connection, table: str, columns: tuple[str, ...], key: tuple[Any, ...]
) -> int:
    match = " AND ".join(f"{column} = ?" for column in columns)
    row = conn.execute(f"SELECT id FROM {table} WHERE {match}", key).fetchone()
    if row:
        return int(row[0])
    marks = ", ".join("?" for _ in columns)
    cursor = conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", key)
    return int(cursor.lastrowid or 0)


class Attribution:
    """Resolves each record's workload (and what its spec admits) once per pod per append."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pods: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self._workloads: dict[tuple[str, str, str], tuple[str, int | None] | None] = {}

    def resolve(self, record: base.NewRecord) -> int | None:
        """Fill the record's workload fields; the lowest level rank it admits (None: nothing)."""
        if not record.kind:
            owner = self._owner(record.namespace, record.pod, record.pod_uid)
            if owner is None:
                return 0
            record.kind, record.workload = owner
        found = self._workload((record.namespace, record.kind, record.workload))
        if found is None:
            return 0
        uid, rank = found
        if not record.workload_uid:
            record.workload_uid = uid
        return rank

    def _owner(self, namespace: str, pod: str, pod_uid: str) -> tuple[str, str] | None:
        key = (namespace, pod, pod_uid)
        if key not in self._pods:
            row = self._conn.execute(
                "SELECT uid, kind, workload FROM pods WHERE namespace = ? AND name = ?",
                (namespace, pod),
            ).fetchone()
            owner = None
            if row and row[1] and (not row[0] or not pod_uid or row[0] == pod_uid):
                owner = (row[1], row[2])
            self._pods[key] = owner
        return self._pods[key]

    def _workload(self, key: tuple[str, str, str]) -> tuple[str, int | None] | None:
        if key not in self._workloads:
            row = self._conn.execute(
                "SELECT uid, spec FROM workloads WHERE namespace = ? AND kind = ? AND name = ?",
                key,
            ).fetchone()
            self._workloads[key] = (
                (row[0], base.admitted_rank(orjson.loads(row[1]))) if row else None
            )
        return self._workloads[key]
