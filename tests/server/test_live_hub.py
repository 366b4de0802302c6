"""The live-tail hub on its own: rings, resume bounds, cut-offs, and feeding from a shared store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

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


def test_a_batch_leaves_a_ring_as_appending_its_records_one_by_one_would() -> None:
    records = [_record(i) for i in range(1, 40)]
    records[20].message = "x" * 500
    for lines, max_bytes in ((7, 1 << 20), (100, 1_000), (100, 10)):
        one_by_one, batched = streaming.Ring(lines, max_bytes), streaming.Ring(lines, max_bytes)
        for record in records:
            one_by_one.append(record)
        batched.extend(records[:25])
        batched.extend(records[25:])
        assert batched.after(batched.floor) == one_by_one.after(one_by_one.floor)
        assert (batched.floor, batched.bytes) == (one_by_one.floor, one_by_one.bytes)


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
    """A store other replicas write to: `add` stores records, `watch` reads them back by id."""

    def __init__(self) -> None:
        self.records: list[base.StoredRecord] = []
        self.added = asyncio.Event()
        self.watches: list[int] = []  # the after_id of every watch started
        self.read = 0  # records yielded by watches

    def add(self, *records: base.StoredRecord) -> None:
        self.records.extend(records)
        self.added.set()

    async def last_id(self) -> int:
        return self.records[-1].id if self.records else 0

    async def watch(self, after_id: int) -> AsyncGenerator[list[base.StoredRecord], None]:
        self.watches.append(after_id)
        last = after_id
        while True:
            found = [r for r in self.records if r.id > last]
            if found:
                self.read += len(found)
                last = found[-1].id
                yield found
            self.added.clear()
            await self.added.wait()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 5 s")


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
        store.add(_record(11), _record(12))
        received = await sub.get(5)
        assert [r.id for r in received] == [11, 12]
        assert store.watches == [10]
    finally:
        task.cancel()


async def test_a_replica_nobody_follows_reads_no_record_and_a_new_follower_misses_none() -> None:
    hub = streaming.Hub(feed_poll_s=0.01)
    store = _SharedStore()
    skipped: list[int] = []
    hub.add_skip_listener(lambda: skipped.append(hub.last_id))
    task = asyncio.create_task(hub.follow_store(store))
    try:
        store.add(*(_record(i) for i in range(1, 6)))
        await _until(lambda: hub.last_id == 5)
        store.add(_record(6))
        await _until(lambda: hub.last_id == 6)
        assert (store.watches, store.read, len(hub.ring)) == ([], 0, 0)
        assert skipped == [5]  # once per stretch without followers
        sub = hub.subscribe(base.Query())
        store.add(_record(7), _record(8))
        await _until(lambda: hub.last_id == 8)
        assert [r.id for r in await sub.get(0)] == [7, 8]
        assert store.watches == [6]
        # The ring holds what was read since; a resume from before that goes to the store.
        assert [r.id for r in hub.replay(base.Query(), 6) or []] == [7, 8]
        assert hub.replay(base.Query(), 5) is None
    finally:
        task.cancel()


async def test_the_feed_stops_once_the_last_follower_has_been_gone_for_the_linger() -> None:
    hub = streaming.Hub(feed_poll_s=0.01, feed_linger_s=0.0)
    store = _SharedStore()
    sub = hub.subscribe(base.Query())
    task = asyncio.create_task(hub.follow_store(store))
    try:
        store.add(_record(1))
        await _until(lambda: hub.last_id == 1)
        hub.unsubscribe(sub)
        store.add(_record(2))  # read (the watch was open), then the feed stops
        await _until(lambda: hub.last_id == 2)
        store.add(_record(3), _record(4))
        await _until(lambda: hub.last_id == 4)
        assert store.read == 2
        again = hub.subscribe(base.Query())
        store.add(_record(5))
        await _until(lambda: hub.last_id == 5)
        assert [r.id for r in await again.get(0)] == [5]
        assert store.watches == [0, 4]
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
