"""Cursor paging over (ts_ns, id): never a record skipped or repeated, in either order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailrace.server.storage import base
from tests.server.storage import samples


async def page_through(store: Any, order: base.Order, size: int, **fields: Any) -> list[int]:
    seen: list[int] = []
    after: tuple[int, int] | None = None
    while True:
        page = await store.query(base.Query(order=order, limit=size, after=after, **fields))
        seen.extend(r.id for r in page)
        if len(page) < size:
            return seen
        after = (page[-1].ts_ns, page[-1].id)


async def test_paging_across_many_equal_timestamps(store: Any) -> None:
    sent = [samples.record(f"m{i}", ts_ns=samples.T0 + i // 50) for i in range(230)]
    await store.append([samples.batch("src", sent)])
    everything = [r.id for r in await store.query(base.Query(limit=1000))]
    for order in ("asc", "desc"):
        for size in (1, 7, 50, 229):
            seen = await page_through(store, order, size)
            assert sorted(seen) == sorted(everything)
            assert len(seen) == len(set(seen))
    assert await page_through(store, "desc", 13) == everything[::-1]


timestamps = st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=60)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=timestamps,
    order=st.sampled_from(["asc", "desc"]),
    size=st.integers(min_value=1, max_value=9),
    split=st.integers(min_value=1, max_value=4),
)
async def test_paging_in_either_order_returns_each_record_exactly_once(
    backend: Any,
    tmp_path_factory: pytest.TempPathFactory,
    offsets: list[int],
    order: base.Order,
    size: int,
    split: int,
) -> None:
    factory, _ = backend
    async with factory(tmp_path_factory.mktemp("paging")) as store:
        await _check_paging(store, offsets, order, size, split)


async def _check_paging(
    store: Any, offsets: list[int], order: base.Order, size: int, split: int
) -> None:
    # Out-of-order timestamps arriving in several appends, as from several agents.
    for part in range(split):
        chunk = offsets[part::split]
        await store.append(
            [samples.batch(f"s{part}", [samples.record(ts_ns=samples.T0 + t) for t in chunk])]
        )
    seen = await page_through(store, order, size)
    assert len(seen) == len(offsets)
    assert len(set(seen)) == len(seen)
    records = {r.id: r for r in await store.query(base.Query(limit=1000))}
    keys = [(records[i].ts_ns, i) for i in seen]
    assert keys == sorted(keys, reverse=order == "desc")
