"""The agent's Prometheus metrics, on a registry of its own.

Counters that the hot path would otherwise bump per line (lines by outcome, bytes read, parse
errors) are kept as plain integers by the readers and turned into samples at scrape time by
`TailerCollector`; the forwarder's few per-push counters are ordinary metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tailrace.agent import linelimit

PREFIX = "tailrace_agent"


@dataclass(slots=True)
class TailerStats:
    """A snapshot of the reader side, taken at scrape time."""

    lines: dict[linelimit.Outcome, int] = field(
        default_factory=lambda: dict.fromkeys(linelimit.OUTCOMES, 0)
    )
    physical_lines: int = 0
    bytes_read: int = 0
    parse_errors: int = 0
    partial_flushes: int = 0
    files_open: int = 0
    lag_bytes: int = 0
    buffer_memory_bytes: int = 0
    buffer_spool_bytes: int = 0
    checkpoint_age_s: float = 0.0


class TailerCollector(Collector):
    def __init__(self, snapshot: Callable[[], TailerStats]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        stats = self._snapshot()
        lines = CounterMetricFamily(
            f"{PREFIX}_lines",
            "Reassembled lines by what the line-limit policy did to them",
            labels=["outcome"],
        )
        for outcome, count in stats.lines.items():
            lines.add_metric([outcome], count)
        yield lines
        yield CounterMetricFamily(
            f"{PREFIX}_read_lines", "Physical lines read from log files", stats.physical_lines
        )
        yield CounterMetricFamily(
            f"{PREFIX}_read_bytes", "Bytes read from log files", stats.bytes_read
        )
        yield CounterMetricFamily(
            f"{PREFIX}_parse_errors",
            "Lines that fit no known format, forwarded as-is",
            stats.parse_errors,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_partial_flushes",
            "Dangling partial lines flushed on timeout, rotation or container exit",
            stats.partial_flushes,
        )
        yield GaugeMetricFamily(f"{PREFIX}_files_open", "Log files being read", stats.files_open)
        yield GaugeMetricFamily(
            f"{PREFIX}_lag_bytes", "Bytes written to log files and not read yet", stats.lag_bytes
        )
        buffer = GaugeMetricFamily(
            f"{PREFIX}_buffer_bytes", "Batches waiting for the server", labels=["tier"]
        )
        buffer.add_metric(["memory"], stats.buffer_memory_bytes)
        buffer.add_metric(["spool"], stats.buffer_spool_bytes)
        yield buffer
        yield GaugeMetricFamily(
            f"{PREFIX}_checkpoint_age_seconds",
            "Seconds since the checkpoint file was last written",
            stats.checkpoint_age_s,
        )


class Metrics:
    """Metrics updated as things happen (per push, per rotation), not per line."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records_sent = Counter(
            f"{PREFIX}_records_sent", "Records acknowledged by the server", registry=registry
        )
        self.batches_sent = Counter(
            f"{PREFIX}_batches_sent", "Batches acknowledged by the server", registry=registry
        )
        self.send_errors = Counter(
            f"{PREFIX}_send_errors", "Failed pushes by gRPC status", ["code"], registry=registry
        )
        self.rejected_batches = Counter(
            f"{PREFIX}_rejected_batches",
            "Batches the server refused as invalid (not retried)",
            registry=registry,
        )
        self.rotations = Counter(
            f"{PREFIX}_rotations", "File rotations followed, by kind", ["kind"], registry=registry
        )
        self.lost_bytes = Counter(
            f"{PREFIX}_lost_bytes",
            "Bytes that disappeared before they could be read (truncated or deleted unread)",
            registry=registry,
        )
        self.push_seconds = Histogram(
            f"{PREFIX}_push_seconds", "Latency of Ingest.Push", registry=registry
        )
        self.backpressure_seconds = Counter(
            f"{PREFIX}_backpressure_seconds",
            "Time reading was paused because the send buffer was full",
            registry=registry,
        )
        self.paced_seconds = Counter(
            f"{PREFIX}_paced_seconds",
            "Time reading waited for a server that is up but slower than the reader (instead of "
            "spooling)",
            registry=registry,
        )
