"""The SQLite store keeps records in chunks; what chunks must not change is checked against the
reference store: pages, counts and searches across chunk edges, tombstones, long time spans."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from tailrace.server.storage import base, chunks, memory, sqlite
from tests.server.storage import samples


async def _pair(tmp_path: Path, batches: list[base.IngestBatch]) -> tuple[base.Store, base.Store]:
    reference = memory.MemoryStore()
    candidate = sqlite.SQLiteStore(str(tmp_path / "chunks.db"))
    for store in (reference, candidate):
        await store.open()
        for batch in batches:
            copy = base.IngestBatch(
                batch.source_key,
                [base.NewRecord(**_fields(r)) for r in batch.records],
                batch.end_offsets,
                batch.covered_offset,
            )
            await store.append([copy])
    return reference, candidate


def _fields(record: base.NewRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in base.NewRecord.__slots__}


async def _same(reference: base.Store, candidate: base.Store, query: base.Query) -> None:
    expected = await reference.query(query)
    found = await candidate.query(query)
    assert [(r.id, r.ts_ns, r.message) for r in found] == [
        (r.id, r.ts_ns, r.message) for r in expected
    ], query


async def test_words_are_matched_whole_across_message_edges(tmp_path: Path) -> None:
    messages = [
        "alphabet soup",
        "the alpha",
        "beta_alpha",
        "Alpha",
        "x alpha1 y",
        "ALPHA",
        "gamma alpha",
        "beta gamma",
        "café alpha",
        "crème brûlée",
        "line one\nalpha two",
        "",
        "alpha",
        "connection",
        "refused",
        "connection refused",
        "connection, refused!",
        "refused connection",
    ]
    sent = [samples.record(m, ts_ns=samples.T0 + i) for i, m in enumerate(messages)]
    reference, candidate = await _pair(tmp_path, [samples.batch("s", sent)])
    try:
        for text in (
            "alpha",
            "ALPHA",
            "beta",
            "gamma",
            "alphabet",
            "alpha1",
            "café",
            "brûlée",
            "connection refused",
            "refused",
            "two",
            "pha",
        ):
            await _same(reference, candidate, base.Query(text=text, limit=50))
            await _same(reference, candidate, base.Query(text=text, order="desc", limit=3))
            assert await candidate.count(base.Query(text=text)) == await reference.count(
                base.Query(text=text)
            )
    finally:
        await candidate.close()


async def test_random_batches_page_alike_in_both_orders(tmp_path: Path) -> None:
    rng = random.Random(11)
    batches = []
    for b in range(12):
        pod = f"pod-{b % 3}"
        size = rng.choice((1, 5, 255, 256, 257, 700))
        start = samples.T0 + rng.randrange(0, 200) * 1_000_000_000
        # Timestamps repeat and wander; some batches span minutes, so chunks are cut by span too.
        records = [
            samples.record(
                rng.choice(("a b", "b c", "c d error")),
                ts_ns=start + rng.randrange(0, 180) * 1_000_000_000 // rng.choice((1, 60, 600)),
                pod=pod,
                level=rng.choice(("INFO", "ERROR", "DEBUG")),
                stream=rng.choice(("stdout", "stderr")),
                execution_id=rng.choice(("", "", "run-1", "run-2")),
            )
            for _ in range(size)
        ]
        batches.append(samples.batch(f"s{b}", records))
    reference, candidate = await _pair(tmp_path, batches)
    try:
        for query in (
            base.Query(limit=1000),
            base.Query(namespace="ns", pod="pod-1", limit=37, order="desc"),
            base.Query(min_level="ERROR", limit=50),
            base.Query(streams=("stderr",), execution_id="run-1", limit=50, order="desc"),
            base.Query(text="error", tail=20),
            base.Query(since_ns=samples.T0 + 60_000_000_000, until_ns=samples.T0 + 90_000_000_000),
        ):
            await _same(reference, candidate, query)
            assert await candidate.count(query) == await reference.count(query)
        for order in ("asc", "desc"):
            for scope in (base.Query(), base.Query(namespace="ns", pod="pod-2")):
                seen: list[int] = []
                after = None
                while True:
                    query = base.Query(
                        namespace=scope.namespace, pod=scope.pod, order=order, limit=61, after=after
                    )
                    page = await candidate.query(query)
                    assert [r.id for r in page] == [r.id for r in await reference.query(query)]
                    if not page:
                        break
                    seen.extend(r.id for r in page)
                    after = (page[-1].ts_ns, page[-1].id)
                assert sorted(seen) == sorted(set(seen))
                assert len(seen) == await reference.count(scope)
    finally:
        await candidate.close()


async def test_deleting_part_of_a_chunk_keeps_the_other_records_and_their_ids(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chunks.db"
    store = sqlite.SQLiteStore(str(path))
    await store.open()
    sent = [
        samples.record(f"line {i} {'error' if i % 3 == 0 else 'fine'}", ts_ns=samples.T0 + i)
        for i in range(300)
    ]
    await store.append([samples.batch("s", sent)])
    assert await store.delete(base.Query(text="error")) == 100
    assert await store.delete(base.Query(text="error")) == 0
    await store.close()

    store = sqlite.SQLiteStore(str(path))
    await store.open()
    try:
        kept = await store.query(base.Query(limit=1000))
        assert [r.id for r in kept] == [i + 1 for i in range(300) if i % 3 != 0]
        assert all(r.message == f"line {r.id - 1} fine" for r in kept)
        total = sum(len(r.message) for r in kept)
        assert await store.totals() == base.Totals(200, total)
        assert (await store.stats(base.Query())).total == 200
        assert await store.query(base.Query(text="error")) == []
        # The rest goes: no chunk, no FTS5 document is left behind.
        assert await store.delete(base.Query()) == 200
        assert await store.totals() == base.Totals(0, 0)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'fine'"
    ).fetchone() == (0,)
    conn.close()


async def test_a_batch_is_cut_into_chunks_by_count_and_time_span(tmp_path: Path) -> None:
    path = tmp_path / "chunks.db"
    store = sqlite.SQLiteStore(str(path))
    await store.open()
    minute = 60 * 1_000_000_000
    sent = [samples.record("x", ts_ns=samples.T0 + i) for i in range(600)]
    sent += [
        samples.record("late", ts_ns=samples.T0 + 10 * minute + 2 * i * minute) for i in range(3)
    ]
    try:
        await store.append([samples.batch("s", sent)])
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT id, n, max_ts - min_ts FROM chunks ORDER BY id").fetchall()
    conn.close()
    assert [(c[0], c[1]) for c in rows] == [
        (1, 256),
        (257, 256),
        (513, 88),
        (601, 1),
        (602, 1),
        (603, 1),
    ]
    assert all(c[2] <= chunks.CHUNK_SPAN_NS for c in rows)
