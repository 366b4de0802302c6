"""PostgreSQL store behaviour that only a shared store has: several replicas on one schema.

Two `PostgresStore` instances on one schema stand in for two server replicas. The live-tail feed
is checked against a transaction held open by hand, which is how a slow replica looks to the
others: its ids are allocated but not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from tailrace.server import storage
from tailrace.server.storage import base, postgres, postgres_chunks
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[postgres.PostgresStore, ...]]:
    pg.require()
    schema = pg.schema_for(tmp_path)
    stores = [storage.open_store(pg.url(schema, pool_max="3")) for _ in range(2)]
    assert all(isinstance(s, postgres.PostgresStore) for s in stores)
    # Both open at once: migrations must serialize, not collide.
    await asyncio.gather(*(s.open() for s in stores))
    try:
        yield tuple(s for s in stores if isinstance(s, postgres.PostgresStore))
    finally:
        for s in stores:
            await s.close()
        pg.drop(schema)


async def test_the_same_resend_to_two_replicas_at_once_is_stored_once(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    for round_ in range(20):
        first = round_ * 100
        sent = [samples.record(f"r{round_} m{i}") for i in range(5)]
        results = await asyncio.gather(
            a.append([samples.batch("node-1/pod/app/0.log", sent, first)]),
            b.append([samples.batch("node-1/pod/app/0.log", sent, first)]),
        )
        assert sorted(len(r.stored) for r in results) == [0, 5]
        assert sorted(r.duplicates for r in results) == [0, 5]
        assert all(r.durable_offsets == {"node-1/pod/app/0.log": first + 50} for r in results)
    assert await a.count(base.Query()) == 100
    messages = [r.message for r in await b.query(base.Query(limit=1000))]
    assert len(messages) == len(set(messages)) == 100


async def test_ids_stay_unique_and_per_append_increasing_across_replicas(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    results = await asyncio.gather(
        *(
            store.append(
                [samples.batch(f"src-{i}", [samples.record(f"{i}-{j}") for j in range(50)])]
            )
            for i, store in enumerate([a, b] * 5)
        )
    )
    ids = [r.id for result in results for r in result.stored]
    assert len(ids) == len(set(ids)) == 500
    for result in results:
        own = [r.id for r in result.stored]
        assert own == list(range(own[0], own[0] + 50))


@contextlib.asynccontextmanager
async def held_allocation(schema: str) -> AsyncIterator[tuple[psycopg.AsyncConnection, int]]:
    """A transaction that has allocated one id and not committed: a replica caught mid-append."""
    conn = await psycopg.AsyncConnection.connect(pg.DSN, options=f"-c search_path={schema},public")
    try:
        cursor = await conn.execute("SELECT allocate_ids(1)")
        row = await cursor.fetchone()
        assert row is not None
        yield conn, int(row[0])
    finally:
        await conn.close()


async def _insert_held(conn: psycopg.AsyncConnection, record_id: int, message: str) -> None:
    record = base.stamp(samples.record(message), record_id, 1)
    await postgres_chunks.copy(conn, [postgres_chunks.row([record])])


async def test_a_follower_never_skips_an_id_that_commits_late(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    before = (await a.append_records([samples.record("before")]))[0].id
    async with held_allocation(a.schema) as (slow, held_id):
        later = (await b.append_records([samples.record("later")]))[0].id
        assert held_id < later
        # The later record is committed, but a follower must not see past the held id yet.
        assert await a.last_id() == held_id - 1
        seen = await b.query(base.Query(after_id=before))
        assert seen == []
        # Nor does any other read: a page or a tail would hand a follower the same gap.
        assert [r.message for r in await b.query(base.Query(order="desc"))] == ["before"]
        assert await b.count(base.Query()) == 2  # counting is not paging: it sees everything
        await _insert_held(slow, held_id, "slow")
        await slow.commit()
    assert await a.last_id() >= later
    seen = await b.query(base.Query(after_id=before))
    assert [r.message for r in seen] == ["slow", "later"]


async def test_an_abandoned_allocation_does_not_stall_followers(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    async with held_allocation(a.schema) as (slow, _):
        later = (await b.append_records([samples.record("later")]))[0].id
        await slow.rollback()
    assert await a.last_id() == later
    assert [r.message for r in await a.query(base.Query(after_id=0))] == ["later"]


async def test_watch_on_one_replica_delivers_what_another_stored_in_id_order(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    start = await a.last_id()
    received: list[base.StoredRecord] = []

    async def follow() -> None:
        async for records in a.watch(start):
            received.extend(records)
            if len(received) >= 30:
                return

    follower = asyncio.create_task(follow())
    for i in range(3):
        await b.append([samples.batch(f"s{i}", [samples.record(f"{i}-{j}") for j in range(10)])])
    await asyncio.wait_for(follower, 30)
    ids = [r.id for r in received]
    assert ids == sorted(ids)
    assert len(set(ids)) == 30
    assert {r.message for r in received} == {f"{i}-{j}" for i in range(3) for j in range(10)}


async def test_watch_waits_for_a_held_id_then_delivers_it_before_later_ones(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    received: list[str] = []
    got_two = asyncio.Event()

    async def follow() -> None:
        async for records in a.watch(await a.last_id()):
            received.extend(r.message for r in records)
            if len(received) >= 2:
                got_two.set()
                return

    async with held_allocation(a.schema) as (slow, held_id):
        follower = asyncio.create_task(follow())
        await b.append_records([samples.record("later")])
        # Nothing can be delivered while the held id is open: the watch must still be waiting.
        assert await a.last_id() == held_id - 1
        assert received == []
        await _insert_held(slow, held_id, "slow")
        await slow.commit()
        await asyncio.wait_for(got_two.wait(), 30)
        await follower
    assert received == ["slow", "later"]


async def test_watch_survives_losing_its_listen_connection_without_losing_records(
    replicas: tuple[postgres.PostgresStore, ...],
) -> None:
    a, b = replicas
    received: list[str] = []
    wanted = {f"m{i}" for i in range(20)}

    async def follow() -> None:
        async for records in a.watch(await a.last_id()):
            received.extend(r.message for r in records)
            if wanted <= set(received):
                return

    follower = asyncio.create_task(follow())
    await b.append_records([samples.record(f"m{i}") for i in range(10)])
    async with await psycopg.AsyncConnection.connect(pg.DSN, autocommit=True) as admin:
        # Kill the follower's LISTEN session: notifications sent meanwhile are lost for good.
        killed = 0
        for _ in range(100):
            cursor = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (f'LISTEN "{a.channel}"',),
            )
            killed = len(await cursor.fetchall())
            if killed:
                break
            await asyncio.sleep(0.05)
        assert killed == 1
    await b.append_records([samples.record(f"m{i}") for i in range(10, 20)])
    await asyncio.wait_for(follower, 30)
    assert sorted(received) == sorted(wanted)
