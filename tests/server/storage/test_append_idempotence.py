from __future__ import annotations

import asyncio
from typing import Any

from tailrace.server.storage import base
from tests.server.storage import samples


async def test_append_stores_records_with_increasing_ids(store: Any) -> None:
    result = await store.append([samples.batch("src", [samples.record("a"), samples.record("b")])])
    assert [r.message for r in result.stored] == ["a", "b"]
    assert result.stored[0].id < result.stored[1].id
    assert result.duplicates == 0
    assert result.durable_offsets == {"src": 20}
    assert await store.last_id() == result.stored[1].id


async def test_resend_of_the_same_batch_stores_nothing(store: Any) -> None:
    sent = samples.batch("src", [samples.record("a"), samples.record("b")])
    await store.append([sent])
    again = await store.append([samples.batch("src", [samples.record("a"), samples.record("b")])])
    assert again.stored == []
    assert again.duplicates == 2
    assert again.durable_offsets == {"src": 20}
    assert await store.count(base.Query()) == 2


async def test_partially_overlapping_resend_stores_only_the_new_tail(store: Any) -> None:
    await store.append([samples.batch("src", [samples.record(m) for m in "ab"])])
    overlap = samples.batch("src", [samples.record(m) for m in "bcd"], first_offset=10)
    result = await store.append([overlap])
    assert [r.message for r in result.stored] == ["c", "d"]
    assert result.duplicates == 1
    assert result.durable_offsets == {"src": 40}
    found = await store.query(base.Query())
    assert [r.message for r in found] == ["a", "b", "c", "d"]


async def test_sources_keep_separate_marks(store: Any) -> None:
    await store.append([samples.batch("one", [samples.record("a")])])
    result = await store.append([samples.batch("two", [samples.record("b")])])
    assert [r.message for r in result.stored] == ["b"]
    assert await store.durable_offsets(["one", "two", "unknown"]) == {"one": 10, "two": 10}


async def test_covered_offset_advances_the_mark_past_dropped_lines(store: Any) -> None:
    result = await store.append([samples.batch("src", [], dropped_lines=3, covered_offset=500)])
    assert result.durable_offsets == {"src": 500}
    stats = await store.stats(base.Query(namespace="ns"))
    assert stats.dropped_lines == 3
    # A resend does not count its dropped lines twice.
    await store.append([samples.batch("src", [], dropped_lines=3, covered_offset=500)])
    assert (await store.stats(base.Query())).dropped_lines == 3


async def test_one_append_of_many_batches_is_applied_in_order(store: Any) -> None:
    first = samples.batch("src", [samples.record("a")])
    second = samples.batch("src", [samples.record("a"), samples.record("b")])
    result = await store.append([first, second])
    assert [r.message for r in result.stored] == ["a", "b"]
    assert result.duplicates == 1


async def test_append_records_without_source_is_never_deduplicated(store: Any) -> None:
    stored = await store.append_records([samples.record("x", source="otlp")] * 2)
    assert [r.source for r in stored] == ["otlp", "otlp"]
    assert await store.count(base.Query(sources=("otlp",))) == 2


async def test_stored_records_keep_every_field(store: Any) -> None:
    sent = samples.record(
        "msg",
        ts_ns=samples.T0 + 5,
        kind="Pipeline",
        workload="etl",
        workload_uid="w-uid",
        pod_uid="p-uid",
        container_id="containerd://abc",
        restart=2,
        execution_id="e1",
        attrs={"status": 200, "method": "GET"},
        flags=1,
        stream="stderr",
        level="ERROR",
    )
    await store.append([samples.batch("src", [sent])])
    (got,) = await store.query(base.Query())
    for name in [
        "ts_ns",
        "namespace",
        "pod",
        "container",
        "stream",
        "level",
        "message",
        "kind",
        "workload",
        "workload_uid",
        "pod_uid",
        "container_id",
        "restart",
        "execution_id",
        "attrs",
        "source",
        "flags",
    ]:
        assert getattr(got, name) == getattr(sent, name), name
    assert got.truncated
    assert got.id > 0
    assert got.received_ns > 0


async def test_concurrent_appends_each_get_their_own_result(store: Any) -> None:
    sends = [
        store.append([samples.batch(f"src-{i % 3}", [samples.record(f"m{i}")], first_offset=0)])
        for i in range(9)
    ]
    results = await asyncio.gather(*sends)
    assert sum(len(r.stored) for r in results) == 3  # one new line per source, six resends
    assert sum(r.duplicates for r in results) == 6
    assert all(r.durable_offsets == {f"src-{i % 3}": 10} for i, r in enumerate(results))
    ids = [r.id for result in results for r in result.stored]
    assert len(set(ids)) == 3
    assert await store.count(base.Query()) == 3
    assert await store.last_id() == max(ids)
