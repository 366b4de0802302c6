"""A database written by an older schema opens, upgraded, with every record and search intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tailrace.server.storage import (
    base,
    chunks,
    sqlite,
    sqlite_migration_3,
    sqlite_schema,
)
from tests.server.storage import samples


def _write_schema_1_database(path: Path) -> None:
    """What the schema-1 store left on disk: rows, refs, and FTS5 over the bare messages."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)"
    )
    version, script = sqlite_schema.MIGRATIONS[0]
    assert version == 1
    conn.executescript(f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES (1, 0);\nCOMMIT;")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO pod_refs VALUES (1, 'ns', 'pod-1'), (2, 'ns', 'pod-2')")
    conn.execute("INSERT INTO workload_refs VALUES (1, 'ns', 'Function', 'w'), (2, 'ns', '', '')")
    for i in range(1, 61):
        attributed = i % 2 == 1
        text = f"connection refused try {i}" if i % 3 == 0 else f"request handled {i}"
        conn.execute(
            "INSERT INTO records VALUES (?, ?, 0, 'ns', ?, ?, '', ?, '', 'app', '', 0, 'stdout', "
            "2, ?, '', NULL, 'agent', 0, ?, ?, ?)",
            (
                i,
                samples.T0 + i,
                "Function" if attributed else "",
                "w" if attributed else "",
                "pod-1" if attributed else "pod-2",
                text,
                len(text),
                1 if attributed else 2,
                1 if attributed else 2,
            ),
        )
    conn.execute("INSERT INTO records_fts (rowid, message) SELECT id, message FROM records")
    conn.execute("COMMIT")
    conn.close()


async def test_a_schema_1_database_opens_upgraded_with_its_records_searchable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.db"
    _write_schema_1_database(path)
    store = sqlite.SQLiteStore(str(path))
    await store.open()
    try:
        assert (await store.meta())["schema_version"] == str(sqlite_schema.CURRENT_VERSION)
        everything = await store.query(base.Query(limit=1000))
        assert [r.id for r in everything] == list(range(1, 61))
        assert everything[2].message == "connection refused try 3"
        assert await store.totals() == base.Totals(60, sum(len(r.message) for r in everything))

        in_workload = base.Query(namespace="ns", kind="Function", workload="w", text="refused")
        assert [r.id for r in await store.query(in_workload)] == [
            3,
            9,
            15,
            21,
            27,
            33,
            39,
            45,
            51,
            57,
        ]
        in_pod = base.Query(namespace="ns", pod="pod-2", text="connection refused", order="desc")
        assert [r.id for r in await store.query(in_pod)] == [60, 54, 48, 42, 36, 30, 24, 18, 12, 6]

        # Records attributed later are searched within their workload too.
        await store.put_workload(samples.workload("w", uid="uid-w"))
        await store.assign_pod_workload("ns", "pod-2", base.WorkloadKey("ns", "Function", "w"))
        assert len(await store.query(in_workload)) == 20

        # Deleting keeps the upgraded FTS5 index in step, and new records are searchable.
        assert await store.delete(base.Query(namespace="ns", pod="pod-1", text="refused")) == 10
        refused_in_pod_2 = [6, 12, 18, 24, 30, 36, 42, 48, 54, 60]
        assert [r.id for r in await store.query(in_workload)] == refused_in_pod_2
        fresh = samples.record(
            "connection refused again",
            ts_ns=samples.T0 + 100,
            pod="pod-1",
            kind="Function",
            workload="w",
        )
        stored = await store.append([samples.batch("new", [fresh])])
        assert stored.stored[0].id == 61
        assert [r.id for r in await store.query(in_pod)][:1] == [60]
        assert [r.id for r in await store.query(in_workload)][-1] == 61
        assert await store.count(base.Query(text="handled")) == 40
        assert await store.delete(in_workload) == 11
    finally:
        await store.close()
    # Every FTS5 entry removed with its row: deletes repeated the text that was indexed, also for
    # the rows re-indexed when their pod was attributed.
    conn = sqlite3.connect(path)
    left = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '\"refused\"'"
    assert conn.execute(left).fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'handled'"
    ).fetchone() == (40,)
    scopes = f"{chunks.scope_token(1)} OR {chunks.scope_token(2)}"
    scoped = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
    assert conn.execute(scoped, (scopes,)).fetchone() == (40,)
    conn.close()


def _write_schema_2_database(path: Path, rows: int) -> None:
    """What the schema-2 store left on disk: batches of consecutive ids per pod, FTS5 with scope
    tokens, execution ids, attrs and an operator record on the `system` stream."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)"
    )
    for version, script in sqlite_schema.MIGRATIONS[:2]:
        conn.executescript(
            f"BEGIN;\n{script}\nINSERT INTO schema_migrations VALUES ({version}, 0);\nCOMMIT;"
        )
    conn.execute("BEGIN")
    conn.execute("INSERT INTO pod_refs VALUES (1, 'ns', 'pod-1'), (2, 'ns', 'pod-2')")
    conn.execute("INSERT INTO workload_refs VALUES (1, 'ns', 'Function', 'w')")
    conn.execute("INSERT INTO workload_pods VALUES (1, 1), (1, 2)")
    for i in range(1, rows + 1):
        pod = 1 if (i - 1) // 100 % 2 == 0 else 2  # runs of 100 ids per pod
        text = f"connection refused try {i}" if i % 7 == 0 else f"request handled {i}"
        conn.execute(
            "INSERT INTO records VALUES (?, ?, ?, 'ns', 'Function', 'w', 'uid-w', ?, ?, 'app', "
            "'c1', 0, ?, ?, ?, ?, ?, 'agent', ?, ?, ?, 1)",
            (
                i,
                samples.T0 + (i * 37) % 500,
                1000 + (i - 1) // 100,
                f"pod-{pod}",
                f"uid-{pod}",
                "system" if i == rows else ("stderr" if i % 5 == 0 else "stdout"),
                4 if i % 5 == 0 else 2,
                text,
                f"run-{i % 3}" if i % 2 else "",
                b'{"status": 200}' if i % 11 == 0 else None,
                1 if i % 13 == 0 else 0,
                len(text),
                pod,
            ),
        )
    conn.execute(
        "INSERT INTO records_fts (rowid, message) "
        "SELECT id, message || ' ' || char(57344) || workload_ref FROM records"
    )
    size = conn.execute("SELECT sum(size) FROM records").fetchone()[0]
    conn.execute(
        "INSERT INTO meta VALUES ('next_id', ?), ('rows', ?), ('bytes', ?)",
        (str(rows + 5), str(rows), str(size)),
    )
    conn.execute("COMMIT")
    conn.close()


async def test_a_schema_2_database_becomes_chunks_with_every_record_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    rows = 700
    _write_schema_2_database(path, rows)
    conn = sqlite3.connect(path)
    before = conn.execute(
        "SELECT id, ts_ns, received_ns, pod, pod_uid, container_id, stream, level, message, "
        "execution_id, attrs, flags FROM records ORDER BY id"
    ).fetchall()
    conn.close()
    store = sqlite.SQLiteStore(str(path))
    await store.open()
    try:
        everything = await store.query(base.Query(limit=10_000))
        assert sorted(
            (
                r.id,
                r.ts_ns,
                r.received_ns,
                r.pod,
                r.pod_uid,
                r.container_id,
                r.stream,
                r.level,
                r.message,
                r.execution_id,
                r.attrs or None,
                r.flags,
            )
            for r in everything
        ) == [
            (
                *row[:7],
                ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")[row[7]],
                *row[8:10],
                {"status": 200} if row[10] else None,
                row[11],
            )
            for row in before
        ]
        assert [(r.ts_ns, r.id) for r in everything] == sorted((r.ts_ns, r.id) for r in everything)
        refused = base.Query(namespace="ns", kind="Function", workload="w", text="refused")
        assert await store.count(refused) == rows // 7
        assert await store.count(base.Query(execution_id="run-1")) == len(
            [i for i in range(1, rows + 1) if i % 2 and i % 3 == 1]
        )
        assert await store.count(base.Query(streams=("system",))) == 1
        assert await store.totals() == base.Totals(rows, sum(len(row[8]) for row in before))
        stored = await store.append([samples.batch("new", [samples.record("fresh")])])
        assert stored.stored[0].id == rows + 5
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "records" not in tables
    assert "records_fts" not in tables
    # Runs of 100 consecutive ids of one pod and batch make chunks of 100 (the last run holds
    # the system record, an origin of its own); plus the chunk appended above.
    sizes = [n for (n,) in conn.execute("SELECT n FROM chunks ORDER BY id")]
    assert sizes == [100] * 6 + [99, 1, 1]
    conn.close()


async def test_a_schema_2_migration_killed_mid_way_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v2.db"
    rows = 700
    _write_schema_2_database(path, rows)
    monkeypatch.setattr(sqlite_migration_3, "SLICE_RECORDS", 150)
    advance = sqlite_migration_3.advance
    slices = 0

    def advance_then_die(conn: sqlite3.Connection) -> bool:
        nonlocal slices
        slices += 1
        if slices == 3:
            raise KeyboardInterrupt("killed by the startup probe")
        return advance(conn)

    monkeypatch.setattr(sqlite_migration_3, "advance", advance_then_die)
    store = sqlite.SQLiteStore(str(path))
    with pytest.raises(KeyboardInterrupt):
        await store.open()
    await store.close()

    conn = sqlite3.connect(path)
    progress = conn.execute(
        "SELECT value FROM meta WHERE key = ?", (sqlite_migration_3.PROGRESS_KEY,)
    ).fetchone()
    assert progress == ("300",)  # two slices committed, the third rolled back
    assert conn.execute("SELECT sum(n) FROM chunks").fetchone() == (300,)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (2,)
    conn.close()

    monkeypatch.setattr(sqlite_migration_3, "advance", advance)
    store = sqlite.SQLiteStore(str(path))
    await store.open()
    try:
        everything = await store.query(base.Query(limit=10_000))
        assert sorted(r.id for r in everything) == list(range(1, rows + 1))
        assert await store.count(base.Query(text="refused")) == rows // 7
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (3,)
    assert conn.execute(
        "SELECT count(*) FROM meta WHERE key = ?", (sqlite_migration_3.PROGRESS_KEY,)
    ).fetchone() == (0,)
    conn.close()
