"""Live tail: one in-process broadcaster that fans stored records out to followers.

Ingest (and the control API, for system records) calls `Hub.publish` with records already made
durable, in id order. Each follower holds a `Subscription` with a bounded queue; a follower that
falls behind by more than its queue is cut off with the reason "slow-consumer" rather than
slowing ingest or the others. A ring buffer of recent records (bounded in lines and bytes; one
shared, plus one per registered workload sized by its spec) lets a reconnecting client resume
from its `Last-Event-ID` without a gap or a repeat, and tells it when it has fallen out.

Close reasons are part of the contract with the compatibility surfaces: Feldera ends its stream
and Hoody sends `scope-destroyed` on "workload-deleted".

A replica sharing its store with others (`follow_store`) reads every replica's records back from
the store only while someone follows on it (and for `feed_linger_s` after the last one left, so a
reconnect still resumes from the ring). Otherwise it only keeps its position at the store's
watermark: turning every record of every replica into objects nobody reads cost each replica
about 6 us of CPU per record stored anywhere. Records skipped that way are simply not in the rings
(their floors say so), so a resume from before them is served from the store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Final, Literal, Protocol, runtime_checkable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tailrace.server.storage import base

log = logging.getLogger(__name__)

CloseReason = Literal["slow-consumer", "workload-deleted", "shutdown"]
SLOW_CONSUMER: Final = "slow-consumer"
WORKLOAD_DELETED: Final = "workload-deleted"
SHUTDOWN: Final = "shutdown"

DEFAULT_RING_LINES = 50_000
DEFAULT_RING_BYTES = 32 * 1024 * 1024
DEFAULT_QUEUE_RECORDS = 10_000
DEFAULT_HEARTBEAT_S = 15.0
DEFAULT_FEED_LINGER_S = 60.0
DEFAULT_FEED_POLL_S = 0.1  # how far behind the store's watermark an idle replica's position lags
_ENCODED_ENTRIES = 20_000  # encodings kept for followers reading the same live records
_RECORD_OVERHEAD = 128  # rough bytes of a record beyond its message, for ring accounting


@runtime_checkable
class WatchableStore(Protocol):
    """A store several replicas share, which can tell each of them what any replica stored."""

    def watch(self, after_id: int) -> AsyncGenerator[list[base.StoredRecord], None]: ...

    async def last_id(self) -> int:
        """The id below which no record can still appear: where a feed may start."""


def record_bytes(record: base.StoredRecord) -> int:
    return len(record.message) + _RECORD_OVERHEAD


class Ring:
    """The most recent records, bounded by count and by bytes, in publish (id) order.

    `floor` is the highest id that may be missing: every published record with a higher id is
    still here, so a resume after any id >= floor is served without a gap.
    """

    def __init__(self, max_lines: int, max_bytes: int, floor: int = 0) -> None:
        self.max_lines = max(1, max_lines)
        self.max_bytes = max(1, max_bytes)
        self.floor = floor
        self._records: collections.deque[base.StoredRecord] = collections.deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(self, record: base.StoredRecord) -> None:
        self.extend((record,))

    def extend(self, records: Sequence[base.StoredRecord]) -> None:
        """Append every record, then evict the oldest beyond the bounds: the same records stay
        as when evicting after each one, since appending only ever tightens the bounds."""
        kept = self._records
        kept.extend(records)
        self._bytes += sum(len(r.message) for r in records) + len(records) * _RECORD_OVERHEAD
        while len(kept) > self.max_lines or (self._bytes > self.max_bytes and len(kept) > 1):
            evicted = kept.popleft()
            self._bytes -= record_bytes(evicted)
            self.floor = max(self.floor, evicted.id)

    def skip_to(self, record_id: int) -> None:
        """Records up to `record_id` were stored without passing through here: forget the rest."""
        self._records.clear()
        self._bytes = 0
        self.floor = max(self.floor, record_id)

    def covers(self, after_id: int) -> bool:
        return after_id >= self.floor

    def after(self, after_id: int) -> list[base.StoredRecord] | None:
        """Records with an id above `after_id`, or None when some of them were evicted."""
        if not self.covers(after_id):
            return None
        return [r for r in self._records if r.id > after_id]

    def last(self, count: int) -> list[base.StoredRecord]:
        if count <= 0:
            return []
        return list(self._records)[-count:]


class Subscription:
    """One follower's queue of live records matching `filters`."""

    def __init__(self, filters: base.Query, max_records: int, start_id: int) -> None:
        self.filters = filters
        # Built once: every published record is checked against every subscription.
        self.accepts = base.record_filter(filters)
        self.max_records = max_records
        # Records with an id at or below this were published before the subscription existed.
        self.start_id = start_id
        self.close_reason: CloseReason | None = None
        self._pending: collections.deque[base.StoredRecord] = collections.deque()
        self._wakeup = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def offer(self, record: base.StoredRecord) -> bool:
        """Queue a record; False (and closed as a slow consumer) when the queue is full."""
        if self.closed:
            return False
        if len(self._pending) >= self.max_records:
            self._pending.clear()
            self.close(SLOW_CONSUMER)
            return False
        self._pending.append(record)
        self._wakeup.set()
        return True

    def close(self, reason: CloseReason) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._wakeup.set()

    async def get(self, wait_s: float | None) -> list[base.StoredRecord]:
        """Every queued record; [] after `wait_s` seconds with none, or when closed and drained."""
        if not self._pending and not self.closed:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait_s)
            except TimeoutError:
                return []
        batch = list(self._pending)
        self._pending.clear()
        return batch


def _scope_keys(record: base.StoredRecord) -> tuple[tuple[str, ...], ...]:
    namespace = record.namespace
    if record.workload:
        return (
            (),
            ("ns", namespace),
            ("pod", namespace, record.pod),
            ("wl", namespace, record.kind, record.workload),
        )
    return (), ("ns", namespace), ("pod", namespace, record.pod)


def _subscription_key(filters: base.Query) -> tuple[str, ...]:
    """The narrowest index bucket that still sees every record a subscription could match."""
    if filters.namespace is not None and filters.pod is not None:
        return ("pod", filters.namespace, filters.pod)
    if filters.namespace is not None and filters.kind is not None and filters.workload is not None:
        return ("wl", filters.namespace, filters.kind, filters.workload)
    if filters.namespace is not None:
        return ("ns", filters.namespace)
    return ()


def _workload_ring_key(key: base.WorkloadKey) -> tuple[str, str, str]:
    return (key.namespace, key.kind, key.name)


class Hub:
    """The broadcaster: publish once, every matching subscription receives."""

    def __init__(
        self,
        ring_lines: int = DEFAULT_RING_LINES,
        ring_bytes: int = DEFAULT_RING_BYTES,
        queue_records: int = DEFAULT_QUEUE_RECORDS,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        feed_linger_s: float = DEFAULT_FEED_LINGER_S,
        feed_poll_s: float = DEFAULT_FEED_POLL_S,
    ) -> None:
        self.queue_records = queue_records
        self.heartbeat_s = heartbeat_s
        self.feed_linger_s = feed_linger_s
        self.feed_poll_s = feed_poll_s
        self.ring = Ring(ring_lines, ring_bytes)
        self.last_id = 0
        self._workload_rings: dict[tuple[str, str, str], Ring] = {}
        self._subscriptions: dict[tuple[str, ...], set[Subscription]] = {}
        self.slow_consumers_cut = 0
        self.fed_by_store = False
        # Live records are the same objects for every follower: encode each once per format.
        self._encoded: dict[tuple[int, str], tuple[base.StoredRecord, bytes]] = {}
        self._listeners: list[Callable[[Sequence[base.StoredRecord]], None]] = []
        self._skip_listeners: list[Callable[[], None]] = []
        self._followed = asyncio.Event()  # set by subscribe: the store's feed is wanted
        self._unfollowed_at = -math.inf  # when the last subscription went (time.monotonic)
        self._skipping = False
        self._end_listeners: list[Callable[[base.WorkloadKey, CloseReason], None]] = []

    def start(self, last_stored_id: int) -> None:
        """Records up to `last_stored_id` predate this process: only the store has them."""
        if self.fed_by_store:
            return  # the shared store's feed moves `last_id`, in its order (see follow_store)
        self.last_id = max(self.last_id, last_stored_id)
        self.ring.floor = max(self.ring.floor, last_stored_id)

    @property
    def open_subscriptions(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    def add_listener(self, listener: Callable[[Sequence[base.StoredRecord]], None]) -> None:
        """Also call `listener` with every published batch (compat surfaces with own buffers)."""
        self._listeners.append(listener)

    def add_skip_listener(self, listener: Callable[[], None]) -> None:
        """Also call `listener` when records are stored that listeners will never be given (a
        replica with nobody following reads none back from the shared store)."""
        self._skip_listeners.append(listener)

    def add_end_listener(self, listener: Callable[[base.WorkloadKey, CloseReason], None]) -> None:
        """Also call `listener` when a workload's streams end (surfaces with own followers)."""
        self._end_listeners.append(listener)

    def configure_workload(self, key: base.WorkloadKey, lines: int, max_bytes: int) -> None:
        """Give a workload its own ring, sized by spec.logs.ringBuffer."""
        ring_key = _workload_ring_key(key)
        ring = self._workload_rings.get(ring_key)
        if ring is None:
            self._workload_rings[ring_key] = Ring(lines, max_bytes, floor=self.last_id)
        else:
            ring.max_lines, ring.max_bytes = max(1, lines), max(1, max_bytes)

    def workload_ring(self, key: base.WorkloadKey) -> Ring | None:
        return self._workload_rings.get(_workload_ring_key(key))

    def publish(self, records: Sequence[base.StoredRecord]) -> None:
        """Called by ingest and the control API once records are durable.

        When the hub follows a shared store (`follow_store`), every replica's records arrive
        from the store's feed instead, in id order, so local publishes are left to it.
        """
        if self.fed_by_store:
            return
        self.deliver(records)

    async def follow_store(self, store: WatchableStore) -> None:
        """Feed the hub from a store shared by several replicas, until cancelled: the records
        while someone follows, only the position while nobody does."""
        self.fed_by_store = True
        while True:
            await self._track_position(store)
            await self._feed(store)

    async def _track_position(self, store: WatchableStore) -> None:
        """Until a subscription comes: keep `last_id` at the store's watermark, read nothing."""
        while not self._subscriptions:
            self._followed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._followed.wait(), self.feed_poll_s)
                continue
            position = await store.last_id()
            # A subscription made during the await starts at the current `last_id`; moving it
            # now would skip records between the two for that follower.
            if not self._subscriptions and position > self.last_id:
                self._skip_to(position)

    async def _feed(self, store: WatchableStore) -> None:
        """Deliver the store's records until nobody has followed for `feed_linger_s`."""
        self._skipping = False
        async with contextlib.aclosing(store.watch(self.last_id)) as batches:
            async for batch in batches:
                self.deliver(batch)
                if self._subscriptions:
                    continue
                if time.monotonic() - self._unfollowed_at >= self.feed_linger_s:
                    return

    def _skip_to(self, record_id: int) -> None:
        self.last_id = record_id
        self.ring.skip_to(record_id)
        for ring in self._workload_rings.values():
            ring.skip_to(record_id)
        if self._skipping:
            return
        self._skipping = True
        for listener in self._skip_listeners:
            try:
                listener()
            except Exception:
                log.exception("live-tail skip listener failed")

    def deliver(self, records: Sequence[base.StoredRecord]) -> None:
        """Fan records (in id order) out; never blocks, never raises for a slow follower."""
        if records:
            self.last_id = max(self.last_id, records[-1].id)
        self.ring.extend(records)
        if self._workload_rings:
            self._fill_workload_rings(records)
        if self._subscriptions:
            self._offer(records)
        for listener in self._listeners:
            try:
                listener(records)
            except Exception:
                log.exception("live-tail listener failed")

    def _fill_workload_rings(self, records: Sequence[base.StoredRecord]) -> None:
        rings = self._workload_rings
        found: dict[tuple[str, str, str], list[base.StoredRecord]] = {}
        for record in records:
            if record.workload:
                key = (record.namespace, record.kind, record.workload)
                if key in rings:
                    found.setdefault(key, []).append(record)
        for key, mine in found.items():
            rings[key].extend(mine)

    def _offer(self, records: Sequence[base.StoredRecord]) -> None:
        subscriptions = self._subscriptions
        for record in records:
            for key in _scope_keys(record):
                subs = subscriptions.get(key)
                if not subs:
                    continue
                for sub in list(subs):
                    if sub.accepts(record) and not sub.offer(record):
                        self.slow_consumers_cut += sub.close_reason == SLOW_CONSUMER
                        self._discard(sub)

    def encoded(
        self, record: base.StoredRecord, form: str, encode: Callable[[base.StoredRecord], bytes]
    ) -> bytes:
        """`encode(record)`, computed once per published record and `form` for all followers."""
        key = (record.id, form)
        entry = self._encoded.get(key)
        if entry is not None and entry[0] is record:
            return entry[1]
        data = encode(record)
        self._encoded[key] = (record, data)
        if len(self._encoded) > _ENCODED_ENTRIES:
            del self._encoded[next(iter(self._encoded))]
        return data

    def subscribe(self, filters: base.Query, max_records: int | None = None) -> Subscription:
        sub = Subscription(filters, max_records or self.queue_records, start_id=self.last_id)
        self._subscriptions.setdefault(_subscription_key(filters), set()).add(sub)
        self._followed.set()
        return sub

    def _discard(self, sub: Subscription) -> None:
        key = _subscription_key(sub.filters)
        subs = self._subscriptions.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscriptions[key]
                self._note_unfollowed()

    def _note_unfollowed(self) -> None:
        if not self._subscriptions:
            self._unfollowed_at = time.monotonic()

    def unsubscribe(self, sub: Subscription) -> None:
        self._discard(sub)

    def replay(self, filters: base.Query, after_id: int) -> list[base.StoredRecord] | None:
        """Matching buffered records with an id above `after_id`; None if the buffer lost some."""
        ring = self.ring
        if filters.namespace and filters.kind and filters.workload and filters.pod is None:
            key = base.WorkloadKey(filters.namespace, filters.kind, filters.workload)
            workload_ring = self.workload_ring(key)
            if workload_ring is not None and workload_ring.covers(after_id):
                ring = workload_ring
        buffered = ring.after(after_id)
        if buffered is None:
            return None
        accepts = base.record_filter(filters)
        return [r for r in buffered if accepts(r)]

    def end_workload(self, key: base.WorkloadKey, reason: CloseReason = WORKLOAD_DELETED) -> int:
        """Close every subscription scoped to the workload; returns how many."""
        subs = self._subscriptions.pop(("wl", key.namespace, key.kind, key.name), set())
        for sub in subs:
            sub.close(reason)
        self._note_unfollowed()
        self._workload_rings.pop(_workload_ring_key(key), None)
        for listener in self._end_listeners:
            try:
                listener(key, reason)
            except Exception:
                log.exception("workload-end listener failed")
        return len(subs)

    def close_all(self, reason: CloseReason = SHUTDOWN) -> None:
        for subs in self._subscriptions.values():
            for sub in subs:
                sub.close(reason)
        self._subscriptions.clear()
        self._note_unfollowed()


class LiveResponse(StreamingResponse):
    """A streaming response that always watches for the client going away.

    Starlette stops listening for `http.disconnect` under ASGI 2.4 and relies on a failing
    `send`, which for a quiet follower only happens at the next heartbeat. Here the body is
    cancelled as soon as the disconnect arrives, so the generator's `finally` releases its
    subscription within moments.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                with contextlib.suppress(OSError):
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
        if self.background is not None:
            await self.background()
