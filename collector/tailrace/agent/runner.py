"""The agent process: wires discovery, reading, buffering and forwarding, and runs until a signal.

The main thread reads (discover, pump, housekeeping, checkpoint); one thread pushes to the server;
one serves `/metrics`. On SIGTERM or SIGINT the agent stops reading, seals what it read, pushes the
buffer within `drain_timeout_s`, writes its checkpoints and returns 0. A second signal cuts the
drain short.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry

from tailrace.agent import (
    checkpoints,
    exposition,
    filesource,
    forwarder,
    jsonlog,
    metrics,
    spool,
    tailer,
    watchers,
)
from tailrace.settings import AgentSettings

log = logging.getLogger("tailrace.agent")


class Agent:
    def __init__(
        self, settings: AgentSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self.abandoned = False
        self._paced_before = False
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.state = checkpoints.Checkpoints(settings.state_dir)
        self._load_state()
        self.registry = CollectorRegistry()
        self.metrics = metrics.Metrics(self.registry)
        self.buffer = spool.Buffer(
            settings.memory_buffer_bytes, settings.state_dir / "spool", settings.spool_max_bytes
        )
        self.forwarder = forwarder.Forwarder(
            settings.server, self.buffer, self.state, self.metrics, token=lambda: _token(settings)
        )
        config = filesource.Config(
            node=settings.node,
            workload=settings.workload,
            line_policy=settings.line_policy,
            partial_timeout_s=settings.partial_timeout_s,
            batch_max_records=settings.batch_max_records,
            batch_max_bytes=settings.batch_max_bytes,
            json_level_field=settings.json_level_field,
            json_execution_field=settings.json_execution_field,
            execution_id=settings.execution_id,
        )
        self.tailer = tailer.Tailer(
            settings.pods_dir,
            config,
            self.state,
            self._emit,
            self.metrics,
            only_pod_uid=settings.only_pod_uid,
            batch_max_wait_s=settings.batch_max_wait_s,
            resume_from=self.forwarder.durable_offset,
        )
        self.registry.register(metrics.TailerCollector(self._snapshot))
        self.heartbeat = clock()
        self.exposition: exposition.ExpositionServer | None = None
        if settings.metrics_addr:
            self.exposition = exposition.ExpositionServer(
                settings.metrics_addr, self.registry, self._health
            )

    def _load_state(self) -> None:
        try:
            self.state.load()
        except checkpoints.CheckpointError as err:
            aside = self.state.path.with_name(f"{self.state.path.name}.bad-{int(time.time())}")
            self.state.path.rename(aside)
            log.error(
                "unreadable checkpoint file moved aside; starting over (the server drops "
                "what it already holds)",
                extra={"error": str(err), "moved_to": str(aside)},
            )

    def _pace(self) -> bool:
        """Wait for the server rather than spool: it is up and acknowledging, only slower than
        the reader, and every open file is its container's live file.

        The spool is for outages. A slow server sets the pace either way; spooling meanwhile
        only writes every batch to disk and reads it back (4 of 15 CPU-s on the bench's short
        corpus when the server is the bottleneck). But a rotated file must be read on at full
        speed, to the spool if need be: kubelet deletes it at the next rotation.
        """
        return (
            not self.stop.is_set()
            and self.forwarder.acknowledging()
            and not self.tailer.reading_rotated()
        )

    def _emit(self, sealed: filesource.Sealed) -> None:
        """Hand a batch to the buffer; block while it is full (backpressure: reading stops).

        While `_pace()` holds, the batch waits for room in memory instead of spilling to the
        spool; as soon as it no longer holds (the server stops acknowledging, a file rotates,
        a stop is asked) the batch takes the usual way: memory, spool, backpressure.
        """
        if self.abandoned:
            return
        if self._pace():
            if self.buffer.put(sealed, timeout=0, spill=False):
                return
            paced_since = self.clock()
            if not self._paced_before:
                self._paced_before = True
                log.info("server slower than reading; reading paced to it instead of spooling")
            try:
                while self._pace():
                    if self.buffer.put(sealed, timeout=0.2, spill=False):
                        return
            finally:
                self.metrics.paced_seconds.inc(self.clock() - paced_since)
        waited_since = 0.0
        while not self.buffer.put(sealed, timeout=0.5):
            if not waited_since:
                waited_since = self.clock()
                log.warning("send buffer full; reading paused until the server catches up")
            if self.hurry.is_set() or self.stop.is_set():
                # Anything later of the same source must not be acknowledged before this one:
                # give up on all of it; it is re-read from the checkpoint on the next start.
                self.abandoned = True
                return
        if waited_since:
            self.metrics.backpressure_seconds.inc(self.clock() - waited_since)

    def _snapshot(self) -> metrics.TailerStats:
        stats = self.tailer.snapshot()
        stats.buffer_memory_bytes = self.buffer.memory_bytes
        stats.buffer_spool_bytes = self.buffer.spool_bytes
        stats.checkpoint_age_s = self.clock() - self.state.saved_at if self.state.saved_at else 0.0
        return stats

    def _health(self) -> tuple[bool, dict[str, object]]:
        age = self.clock() - self.heartbeat
        return age < 10.0, {
            "loopAgeSeconds": round(age, 3),
            "filesOpen": len(self.tailer.files),
            "serverConnected": self.forwarder.connected,
            "bufferBytes": self.buffer.memory_bytes + self.buffer.spool_bytes,
        }

    def request_stop(self) -> None:
        if self.stop.is_set():
            self.hurry.set()
        self.stop.set()

    def run(self) -> int:
        settings = self.settings
        if self.exposition is not None:
            self.exposition.start()
        self.forwarder.start()
        log.info(
            "agent started",
            extra={
                "podsDir": str(settings.pods_dir),
                "server": settings.server,
                "stateDir": str(settings.state_dir),
                "mode": "sidecar" if settings.only_pod_uid else "node",
                "metricsPort": self.exposition.port if self.exposition else None,
            },
        )
        if not settings.pods_dir.exists():
            log.warning(
                "pods folder does not exist (yet)", extra={"podsDir": str(settings.pods_dir)}
            )
        watcher = watchers.create(settings.pods_dir, settings.poll_interval_s)
        try:
            return self._loop(watcher)
        finally:
            watcher.close()

    def _loop(self, watcher: watchers.Watcher) -> int:
        next_discovery = next_save = 0.0
        idle_wait = min(0.05, self.settings.poll_interval_s)
        while not self.stop.is_set():
            now = self.clock()
            if now >= next_discovery:
                self.tailer.discover(now)
                watcher.watch(self.tailer.folders())
                next_discovery = now + watcher.rescan_interval_s
            read = self.tailer.pump(now)
            self.tailer.housekeeping(now)
            if now >= next_save:
                self.state.save(now)
                next_save = now + 1.0
            self.heartbeat = now
            if not read and watcher.wait(idle_wait):
                next_discovery = 0.0
        return self._drain()

    def _drain(self) -> int:
        log.info("stopping: draining the send buffer", extra={"buffered": len(self.buffer)})
        deadline = self.clock() + self.settings.drain_timeout_s
        self.tailer.seal_all()
        self.forwarder.stopping.set()
        while not self.forwarder.join(0.1):
            if self.hurry.is_set() or self.clock() >= deadline:
                log.warning(
                    "drain cut short; unsent batches are re-read on the next start",
                    extra={"buffered": len(self.buffer)},
                )
                break
        self.forwarder.close()
        self.state.save(self.clock(), force=True)
        self.tailer.close()
        if self.exposition is not None:
            self.exposition.close()
        log.info("agent stopped")
        return 0


def _token(settings: AgentSettings) -> str:
    """The ingest token: the file when given (a flag wins over the environment), re-read."""
    if settings.token_file is not None:
        return Path(settings.token_file).read_text().strip()
    return settings.token


def _tune_malloc() -> None:
    """glibc malloc settings for a process that allocates and frees megabytes per batch.

    - Two arenas instead of one per thread and core (glibc's default): the reader, the forwarder
      and gRPC's threads each allocate and free megabytes of batches; with an arena each, freed
      memory stays spread over arenas and the agent's RSS creeps up by tens of MB.
    - Blocks of up to 16 MiB come from the heap, and up to 32 MiB of it is kept free rather than
      handed back. By default a block over 128 KiB (a read chunk, a batch's text, its serialized
      form, a push) is mapped for itself and unmapped when freed (the threshold adapts, but only
      up to the largest block freed so far), and the heap's top is trimmed past twice that, so
      the next block faults its pages in afresh. Reading 500,000 short lines took 115,000 page
      faults and 2.26 us a line, 16,000 and 1.98 us with these settings; the whole agent on the
      short bench corpus, where reading overlaps the forwarder, gained ~2.5 %.

    The same as MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=16777216 MALLOC_TRIM_THRESHOLD_=33554432,
    which the process cannot set for itself once started.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(name).mallopt
        mallopt(_M_ARENA_MAX, 2)
        mallopt(_M_MMAP_THRESHOLD, 16 * 1024 * 1024)
        mallopt(_M_TRIM_THRESHOLD, 32 * 1024 * 1024)


# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def run(settings: AgentSettings) -> int:
    """Run the agent until SIGTERM/SIGINT; the CLI's entry point. Returns the exit code."""
    _tune_malloc()
    if not logging.getLogger("tailrace").handlers:
        jsonlog.configure()
    agent: Agent | None = None
    early = threading.Event()  # a signal before the agent exists: stop as soon as it does

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        if agent is None:
            early.set()
        else:
            agent.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent = Agent(settings)
        if early.is_set():
            agent.request_stop()
        return agent.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
