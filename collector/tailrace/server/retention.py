"""Background retention: every interval, each workload's `spec.logs.retention` is enforced.

The runner starts `run(store, ...)` as a task and cancels it on shutdown. A pass that fails (store
down) is logged and counted, and the loop carries on: retention is housekeeping, never a reason
for the server to stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from tailrace import conventions
from tailrace.server.storage import base

log = logging.getLogger(__name__)

_P = f"{conventions.METRICS_PREFIX}_server_retention"


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deleted = Counter(
            f"{_P}_deleted_records", "Records deleted by retention.", registry=registry
        )
        self.passes = Counter(
            f"{_P}_passes", "Retention passes, by outcome.", ["outcome"], registry=registry
        )
        self.duration = Histogram(
            f"{_P}_pass_duration_seconds",
            "Time a retention pass took.",
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
            registry=registry,
        )


async def run_once(
    store: base.Store, metrics: RetentionMetrics, clock: Callable[[], int] = time.time_ns
) -> int:
    """One pass; returns the records deleted (0 when the pass failed)."""
    started = time.perf_counter()
    try:
        deleted = await store.apply_retention(clock())
    except base.StoreError as err:
        metrics.passes.labels("failed").inc()
        log.warning("retention pass failed: %s", err)
        return 0
    finally:
        metrics.duration.observe(time.perf_counter() - started)
    metrics.passes.labels("ok").inc()
    metrics.deleted.inc(deleted)
    if deleted:
        log.info("retention deleted %d records", deleted)
    return deleted


async def run(
    store: base.Store,
    registry: CollectorRegistry,
    interval_s: float = 60.0,
    clock: Callable[[], int] = time.time_ns,
) -> None:
    """Enforce retention every `interval_s` until cancelled (the first pass runs at once)."""
    metrics = RetentionMetrics(registry)
    while True:
        await run_once(store, metrics, clock)
        await asyncio.sleep(interval_s)
