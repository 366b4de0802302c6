"""The HTTP side's Prometheus metrics, on a registry passed in (never the global one).

Request counters and latency are labelled by route template (`/v1/namespaces/{ns}/...`), not by
path, so label cardinality stays fixed. Live streams and store size are read at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailrace import conventions

_P = f"{conventions.METRICS_PREFIX}_server"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class StoreSize:
    rows: int
    bytes: int


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{_P}_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{_P}_request_duration_seconds",
            "Time to answer an HTTP request (to the first byte for streams), by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.auth_failures = Counter(
            f"{_P}_auth_failures",
            "Requests refused by authentication or authorization, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            f"{_P}_rate_limited",
            "Requests answered 429 because the caller exceeded its rate limit.",
            registry=registry,
        )
        self.system_records = Counter(
            f"{_P}_system_records",
            "System records made from pod lifecycle changes by the control API.",
            registry=registry,
        )

    def watch_live(
        self,
        open_streams: Callable[[], int],
        slow_consumers: Callable[[], int],
        store_size: Callable[[], StoreSize | None],
    ) -> None:
        self.registry.register(_ScrapeTimeCollector(open_streams, slow_consumers, store_size))


class _ScrapeTimeCollector(Collector):
    def __init__(
        self,
        open_streams: Callable[[], int],
        slow_consumers: Callable[[], int],
        store_size: Callable[[], StoreSize | None],
    ) -> None:
        self._open_streams = open_streams
        self._slow_consumers = slow_consumers
        self._store_size = store_size

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{_P}_live_streams_open", "Live-tail streams open now.", value=self._open_streams()
        )
        yield CounterMetricFamily(
            f"{_P}_live_slow_consumers",
            "Live streams cut off because the client could not keep up.",
            value=self._slow_consumers(),
        )
        size = self._store_size()
        if size is not None:
            yield GaugeMetricFamily(f"{_P}_store_rows", "Records in the store.", value=size.rows)
            yield GaugeMetricFamily(
                f"{_P}_store_bytes", "Bytes of log messages in the store.", value=size.bytes
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template, or "unmatched" (no raw paths as label values)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


class RequestMetricsMiddleware:
    """Counts every HTTP request by route and status, and times it to the response start."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        timed = False

        async def observing_send(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = route_template(scope)
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)
                timed = True
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = route_template(scope)
            if not timed:
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route, str(status)).inc()
