"""The PostgreSQL store keeps records in chunks (schema 4); what chunks must not change is checked
against the reference store: pages, counts and searches across chunk edges, tombstones, long
words, long time spans, and a live tail across a chunk's edge."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from tailrace.server.storage import base, chunks, memory, postgres, postgres_chunks
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres

MINUTE = 60 * 1_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[postgres.PostgresStore]:
    async with pg.opened_postgres(tmp_path) as opened:
        yield opened


def _chunks(store: postgres.PostgresStore) -> list[tuple[int, int, int, str, int, int]]:
    """(id, n, max_ts - min_ts, pod, live, words) of every chunk row, in id order."""
    with psycopg.connect(pg.DSN) as conn:
        rows = conn.execute(
            "SELECT id, n, max_ts - min_ts, pod, live, cardinality(words) "
            f'FROM "{store.schema}".chunks ORDER BY id'
        ).fetchall()
    return [tuple(row) for row in rows]


async def _same_as_reference(
    store: postgres.PostgresStore, batches: list[base.IngestBatch]
) -> base.Store:
    reference = memory.MemoryStore()
    await reference.open()
    for target in (reference, store):
        for batch in batches:
            copy = base.IngestBatch(
                batch.source_key,
                [base.NewRecord(**_fields(r)) for r in batch.records],
                batch.end_offsets,
                batch.covered_offset,
            )
            await target.append([copy])
    return reference


def _fields(record: base.NewRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in base.NewRecord.__slots__}


async def _same(reference: base.Store, candidate: base.Store, query: base.Query) -> None:
    expected = await reference.query(query)
    found = await candidate.query(query)
    assert [(r.id, r.ts_ns, r.message) for r in found] == [
        (r.id, r.ts_ns, r.message) for r in expected
    ], query
    assert await candidate.count(query) == await reference.count(query), query


async def test_a_batch_is_cut_into_chunks_by_count_span_and_origin(
    store: postgres.PostgresStore,
) -> None:
    sent = [samples.record("x", ts_ns=samples.T0 + i) for i in range(600)]
    sent += [
        samples.record("late", ts_ns=samples.T0 + 10 * MINUTE + 2 * i * MINUTE) for i in range(3)
    ]
    sent += [samples.record("other pod", ts_ns=samples.T0 + i, pod="pod-2") for i in range(2)]
    sent += [samples.record("back", ts_ns=samples.T0 + 1, stream="journal")]
    await store.append([samples.batch("s", sent)])
    rows = _chunks(store)
    assert [(c[0], c[1], c[3]) for c in rows] == [
        (1, 256, "pod-1"),
        (257, 256, "pod-1"),
        (513, 88, "pod-1"),
        (601, 1, "pod-1"),
        (602, 1, "pod-1"),
        (603, 1, "pod-1"),
        (604, 2, "pod-2"),
        (606, 1, "pod-1"),  # a stream kept on the origin starts a chunk of its own
    ]
    assert all(c[2] <= chunks.CHUNK_SPAN_NS for c in rows)
    found = await store.query(base.Query(limit=1000))
    assert sorted(r.id for r in found) == list(range(1, 607))
    assert [r.stream for r in found if r.message == "back"] == ["journal"]


async def test_random_batches_page_alike_in_both_orders(store: postgres.PostgresStore) -> None:
    rng = random.Random(11)
    batches = []
    for b in range(12):
        pod = f"pod-{b % 3}"
        size = rng.choice((1, 5, 255, 256, 257, 700))
        start = samples.T0 + rng.randrange(0, 200) * 1_000_000_000
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
    reference = await _same_as_reference(store, batches)
    for query in (
        base.Query(limit=1000),
        base.Query(namespace="ns", pod="pod-1", limit=37, order="desc"),
        base.Query(min_level="ERROR", limit=50),
        base.Query(streams=("stderr",), execution_id="run-1", limit=50, order="desc"),
        base.Query(text="error", tail=20),
        base.Query(text="c d", order="desc", limit=300),
        base.Query(since_ns=samples.T0 + 60_000_000_000, until_ns=samples.T0 + 90_000_000_000),
        base.Query(after_id=700, limit=500),
    ):
        await _same(reference, store, query)
    assert (await store.stats(base.Query())).total == await reference.count(base.Query())
    for order in ("asc", "desc"):
        for scope in (base.Query(), base.Query(namespace="ns", pod="pod-2")):
            seen: list[int] = []
            after = None
            while True:
                query = base.Query(
                    namespace=scope.namespace, pod=scope.pod, order=order, limit=61, after=after
                )
                page = await store.query(query)
                assert [r.id for r in page] == [r.id for r in await reference.query(query)]
                if not page:
                    break
                seen.extend(r.id for r in page)
                after = (page[-1].ts_ns, page[-1].id)
            assert sorted(seen) == sorted(set(seen))
            assert len(seen) == await reference.count(scope)


async def test_deleting_part_of_a_chunk_tombstones_it_and_keeps_the_other_ids(
    store: postgres.PostgresStore,
) -> None:
    sent = [
        samples.record(f"line {i} {'error' if i % 3 == 0 else 'fine'}", ts_ns=samples.T0 + i)
        for i in range(300)
    ]
    await store.append([samples.batch("s", sent)])
    assert await store.delete(base.Query(text="error")) == 100
    assert await store.delete(base.Query(text="error")) == 0
    kept = await store.query(base.Query(limit=1000))
    assert [r.id for r in kept] == [i + 1 for i in range(300) if i % 3 != 0]
    assert all(r.message == f"line {r.id - 1} fine" for r in kept)
    assert await store.count(base.Query()) == 200
    assert await store.count(base.Query(text="line")) == 200
    assert (await store.stats(base.Query())).total == 200
    assert await store.query(base.Query(text="error")) == []
    assert [c[4] for c in _chunks(store)] == [170, 30]  # live counts lowered, rows kept
    assert await store.delete(base.Query()) == 200
    assert _chunks(store) == []


async def test_a_word_too_long_to_index_is_still_found(store: postgres.PostgresStore) -> None:
    long_word = "y" * 300  # longer than postgres_chunks.WORD_BYTES_MAX: left out of `words`
    await store.append(
        [samples.batch("s", [samples.record(f"start {long_word} end"), samples.record("end")])]
    )
    assert len(long_word) > postgres_chunks.WORD_BYTES_MAX
    assert _chunks(store)[0][5] == 2  # start, end
    (found,) = await store.query(base.Query(text=long_word))
    assert found.message == f"start {long_word} end"
    (found,) = await store.query(base.Query(text=f"START {long_word}"))
    assert found.message == f"start {long_word} end"
    assert await store.query(base.Query(text=long_word[:-1])) == []
    assert len(await store.query(base.Query(text="end"))) == 2


async def test_a_live_tail_goes_on_across_a_chunk_edge(store: postgres.PostgresStore) -> None:
    await store.append([samples.batch("s", [samples.record(f"a{i}") for i in range(300)])])
    start = 250  # inside the second chunk's predecessor: ids 251.. are wanted
    received: list[base.StoredRecord] = []

    async def follow() -> None:
        async for found in store.watch(start):
            received.extend(found)
            if len(received) >= 60:
                return

    follower = asyncio.create_task(follow())
    await store.append([samples.batch("t", [samples.record(f"b{i}") for i in range(10)])])
    await asyncio.wait_for(follower, 30)
    assert [r.id for r in received] == list(range(251, 311))
    assert [r.message for r in received[:6]] == ["a250", "a251", "a252", "a253", "a254", "a255"]
    after = await store.query(base.Query(after_id=start, limit=20))
    assert [r.id for r in after] == list(range(251, 271))
