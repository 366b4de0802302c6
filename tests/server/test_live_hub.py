"""The live-tail hub on its own: rings, resume bounds, cut-offs, and feeding from a shared store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tailrace.server import streaming
from tailrace.server.storage import base


def _record(record_id: int, pod: str = "p", workload: str = "") -> base.StoredRecord:
    return base.StoredRecord(
        ts_ns=record_id,
        namespace="ns",
        pod=pod,
        container="c",
        stream="stdout",
        level="INFO",
        message=f"m{record_id}",
        kind="Function" if workload else "",
        workload=workload,
        id=record_id,
    )


def test_ring_is_bounded_by_lines_and_bytes_and_knows_what_it_lost() -> None:
    ring = streaming.Ring(max_lines=3, max_bytes=10_000)
    for i in range(1, 6):
        ring.append(_record(i))
    assert [r.id for r in ring.after(2) or []] == [3, 4, 5]
    assert ring.after(1) is None
    small = streaming.Ring(max_lines=100, max_bytes=2 * streaming.record_bytes(_record(1)))
    for i in range(1, 6):
        small.append(_record(i))
    assert len(small) == 2
    assert small.floor == 3


def test_replay_prefers_the_workload_ring() -> None:
    hub = streaming.Hub(ring_lines=2)
    key = base.WorkloadKey("ns", "Function", "hello")
    hub.configure_workload(key, lines=100, max_bytes=1 << 20)
    hub.publish([_record(i, workload="hello" if i % 2 else "") for i in range(1, 11)])
    filters = base.Query(namespace="ns", kind="Function", workload="hello")
    assert [r.id for r in hub.replay(filters, 0) or []] == [1, 3, 5, 7, 9]
    assert hub.replay(base.Query(namespace="ns"), 0) is None


async def test_slow_subscription_is_closed_and_dropped_without_blocking() -> None:
    hub = streaming.Hub(queue_records=2)
    slow = hub.subscribe(base.Query(namespace="ns", pod="p"))
    other = hub.subscribe(base.Query(namespace="ns"), max_records=100)
    hub.publish([_record(i) for i in range(1, 6)])
    assert slow.close_reason == streaming.SLOW_CONSUMER
    assert await slow.get(0) == []
    assert [r.id for r in await other.get(0)] == [1, 2, 3, 4, 5]
    assert hub.open_subscriptions == 1
    assert hub.slow_consumers_cut == 1


async def test_ending_a_workload_closes_its_subscriptions_after_pending_records() -> None:
    hub = streaming.Hub()
    ended: list[tuple[base.WorkloadKey, str]] = []
    hub.add_end_listener(lambda key, reason: ended.append((key, reason)))
    key = base.WorkloadKey("ns", "Function", "hello")
    sub = hub.subscribe(base.Query(namespace="ns", kind="Function", workload="hello"))
    hub.publish([_record(1, workload="hello")])
    assert hub.end_workload(key) == 1
    assert [r.id for r in await sub.get(0)] == [1]
    assert sub.close_reason == streaming.WORKLOAD_DELETED
    assert ended == [(key, streaming.WORKLOAD_DELETED)]


class _SharedStore:
    def __init__(self) -> None:
        self.batches: asyncio.Queue[list[base.StoredRecord]] = asyncio.Queue()
        self.started_after: int | None = None

    async def watch(self, after_id: int) -> AsyncIterator[list[base.StoredRecord]]:
        self.started_after = after_id
        while True:
            yield await self.batches.get()


async def test_a_hub_following_a_shared_store_ignores_local_publishes() -> None:
    hub = streaming.Hub()
    hub.start(last_stored_id=10)
    store = _SharedStore()
    assert isinstance(store, streaming.WatchableStore)
    sub = hub.subscribe(base.Query())
    task = asyncio.create_task(hub.follow_store(store))
    try:
        await asyncio.sleep(0)
        hub.publish([_record(11)])  # stored here, but the feed is the one source of truth
        await store.batches.put([_record(11), _record(12)])
        received = await sub.get(5)
        assert [r.id for r in received] == [11, 12]
        assert store.started_after == 10
    finally:
        task.cancel()


def test_a_live_record_is_encoded_once_for_all_followers() -> None:
    hub = streaming.Hub()
    calls: list[int] = []

    def encode(record: base.StoredRecord) -> bytes:
        calls.append(record.id)
        return record.message.encode()

    record = _record(1)
    assert hub.encoded(record, "sse", encode) == b"m1"
    assert hub.encoded(record, "sse", encode) == b"m1"
    assert calls == [1]
    # A different object under the same id (the store reused it after a delete) is re-encoded.
    other = _record(1)
    other.message = "changed"
    assert hub.encoded(other, "sse", encode) == b"changed"
