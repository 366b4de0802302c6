"""The background retention task: passes, counts, and survives a store that is down."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from tailrace.server import retention
from tailrace.server.storage import base, memory
from tests.server.storage import samples

T0 = samples.T0
DAY = 86_400 * 10**9


class FailingStore(memory.MemoryStore):
    async def apply_retention(self, now_ns: int) -> int:
        raise base.StoreUnavailable("locked")


async def test_a_pass_deletes_and_counts(store: Any) -> None:
    await store.put_workload(samples.workload(spec={"logs": {"retention": {"maxAge": "1d"}}}))
    old = samples.record("old", ts_ns=T0, kind="Function", workload="hello")
    new = samples.record("new", ts_ns=T0 + 2 * DAY, kind="Function", workload="hello")
    await store.append([samples.batch("s", [old, new])])
    registry = CollectorRegistry()
    metrics = retention.RetentionMetrics(registry)
    assert await retention.run_once(store, metrics, clock=lambda: T0 + 2 * DAY) == 1
    assert [r.message for r in await store.query(base.Query())] == ["new"]
    assert registry.get_sample_value("tailrace_server_retention_deleted_records_total") == 1
    assert (
        registry.get_sample_value("tailrace_server_retention_passes_total", {"outcome": "ok"}) == 1
    )


async def test_a_failed_pass_is_counted_and_the_loop_goes_on() -> None:
    store = FailingStore()
    await store.open()
    registry = CollectorRegistry()
    task = asyncio.create_task(retention.run(store, registry, interval_s=0))
    failed: float | None = None
    for _ in range(1000):  # a few event-loop turns are enough; bounded all the same
        failed = registry.get_sample_value(
            "tailrace_server_retention_passes_total", {"outcome": "failed"}
        )
        if failed and failed >= 2:
            break
        await asyncio.sleep(0)
    assert failed is not None
    assert failed >= 2  # the loop went on after the first failure
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
