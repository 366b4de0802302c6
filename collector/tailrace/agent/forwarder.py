"""Pushes sealed batches to the server's `tailrace.v1.Ingest/Push` and records what it acknowledged.

One push is in flight at a time, oldest batches first: the server keeps a high-water mark per
source and would drop an older batch arriving after a newer one. A failed push is retried, the same
batches in the same order, with exponential backoff and jitter, and the agent says so in its log. A
batch the server refuses as invalid is not retried forever: it is counted and skipped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import grpc

from tailrace import conventions
from tailrace.agent import checkpoints, filesource, metrics, spool
from tailrace.wire.v1 import ingest_pb2

log = logging.getLogger("tailrace.agent.forwarder")

TOKEN_REFRESH_S = 60.0
OFFSETS_TIMEOUT_S = 2.0
OFFSETS_QUIET_S = 30.0
# A server whose pushes succeed and answer within this long is up and merely slow: the reader
# waits for it rather than spooling (see runner.Agent._pace). A push outstanding longer is trouble.
ACKING_WITHIN_S = 5.0
_PERMANENT = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


class Backoff:
    """Exponential delays with full jitter, capped; reset after a success."""

    def __init__(self, initial_s: float = 0.1, maximum_s: float = 5.0) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * (1 << min(self.attempt, 30)))
        self.attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


def frame(payloads: list[bytes]) -> bytes:
    """A serialized `PushRequest` from serialized `Batch`es: field 1, length-delimited, each."""
    parts = []
    for payload in payloads:
        parts.append(_BATCHES_TAG + _varint(len(payload)))
        parts.append(payload)
    return b"".join(parts)


_BATCHES_TAG = bytes([(1 << 3) | 2])  # PushRequest.batches: field 1, wire type 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Forwarder:
    def __init__(
        self,
        target: str,
        buffer: spool.Buffer,
        state: checkpoints.Checkpoints,
        agent_metrics: metrics.Metrics,
        token: Callable[[], str] = lambda: "",
        push_max_bytes: int = 2 * 1024 * 1024,
        push_timeout_s: float = 30.0,
    ) -> None:
        self.target = target
        self.buffer = buffer
        self.state = state
        self.metrics = agent_metrics
        self.push_max_bytes = push_max_bytes
        self.push_timeout_s = push_timeout_s
        # Projected service-account tokens are rotated by the kubelet: read again every minute.
        self._token = token
        self._token_read_at = -TOKEN_REFRESH_S
        self._metadata: tuple[tuple[str, str], ...] = ()
        self.channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        # Push with a pre-framed request: the batches are already serialized (see `frame`).
        self._push_raw = self.channel.unary_unary(
            "/tailrace.v1.Ingest/Push",
            request_serializer=None,
            response_deserializer=ingest_pb2.PushResponse.FromString,
        )
        self._offsets = self.channel.unary_unary(
            "/tailrace.v1.Ingest/Offsets",
            request_serializer=ingest_pb2.OffsetsRequest.SerializeToString,
            response_deserializer=ingest_pb2.OffsetsResponse.FromString,
        )
        self._offsets_quiet_until = 0.0
        self.backoff = Backoff()
        self.stopping = threading.Event()  # stop once the buffer is empty (drain)
        self.abort = threading.Event()  # stop now
        self.connected = False
        self.failing = False  # the last push failed (an outage until one succeeds)
        self._push_started = 0.0  # when the push in flight started; 0.0: none in flight
        self.last_success = 0.0
        self._thread = threading.Thread(target=self._run, name="tailrace-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self.abort.is_set():
            items = self.buffer.peek(self.push_max_bytes, timeout=0.2)
            if not items:
                if self.stopping.is_set():
                    return
                continue
            if self._push(items):
                self.buffer.remove(len(items))

    def _push(self, items: list[filesource.Sealed]) -> bool:
        request = frame([item.payload for item in items])
        metadata = self.metadata()
        started = self._push_started = time.monotonic()
        try:
            response = self._push_raw(
                request, timeout=self.push_timeout_s, metadata=metadata, wait_for_ready=False
            )
        except grpc.RpcError as err:
            self.failing = True
            self._push_started = 0.0
            return self._failed(err, items)
        self._push_started = 0.0
        self.failing = False
        self.metrics.push_seconds.observe(time.monotonic() - started)
        for ack in response.acks:
            self.state.acked(ack.key, ack.durable_offset)
        self.metrics.records_sent.inc(sum(item.records for item in items))
        self.metrics.batches_sent.inc(len(items))
        if not self.connected:
            log.info("server reachable; pushing", extra={"server": self.target})
        self.connected = True
        self.last_success = time.monotonic()
        self.backoff.reset()
        return True

    def acknowledging(self) -> bool:
        """The server is reachable and storing: no push failed since the last success, and the
        one in flight (if any) has not taken ACKING_WITHIN_S yet."""
        started = self._push_started
        return not self.failing and (not started or time.monotonic() - started < ACKING_WITHIN_S)

    def durable_offset(self, key: str) -> int:
        """What the server already holds of a source this agent has no checkpoint for.

        An agent whose state folder is new (an emptyDir, a lost disk) resumes there instead of
        re-sending whole files; the server would drop the duplicates anyway, so any failure just
        answers 0. After a failure the server is not asked again for a while, so discovering
        many files while it is down stays quick.
        """
        now = time.monotonic()
        if now < self._offsets_quiet_until:
            return 0
        try:
            response = self._offsets(
                ingest_pb2.OffsetsRequest(keys=[key]),
                timeout=OFFSETS_TIMEOUT_S,
                metadata=self.metadata(),
            )
        except grpc.RpcError as err:
            self._offsets_quiet_until = now + OFFSETS_QUIET_S
            log.info(
                "cannot ask the server where to resume; reading from the start",
                extra={"key": key, "error": str(err.code() if isinstance(err, grpc.Call) else err)},
            )
            return 0
        return max((ack.durable_offset for ack in response.acks if ack.key == key), default=0)

    def metadata(self, force: bool = False) -> tuple[tuple[str, str], ...]:
        now = time.monotonic()
        if force or now - self._token_read_at >= TOKEN_REFRESH_S:
            self._token_read_at = now
            try:
                token = self._token()
            except OSError as err:
                log.error("cannot read the ingest token", extra={"error": str(err)})
                return self._metadata
            self._metadata = (
                ((conventions.AUTHORIZATION_HEADER, f"Bearer {token}"),) if token else ()
            )
        return self._metadata

    def _failed(self, err: grpc.RpcError, items: list[filesource.Sealed]) -> bool:
        code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
        self.metrics.send_errors.labels(code.name).inc()
        if code in _PERMANENT:
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            log.error(
                "server refused a batch as invalid; skipping it",
                extra={"server": self.target, "code": code.name, "details": details},
            )
            self.metrics.rejected_batches.inc(len(items))
            self.failing = False  # it answered: reachable
            for item in items:
                self.state.acked(item.key, item.covered_offset)
            return True
        if code == grpc.StatusCode.UNAUTHENTICATED:
            self._token_read_at = -TOKEN_REFRESH_S  # perhaps rotated: read it again
        delay = self.backoff.next_delay()
        if self.connected or self.backoff.attempt == 1 or self.backoff.attempt % 10 == 0:
            log.warning(
                "server unavailable; retrying with backoff",
                extra={
                    "server": self.target,
                    "code": code.name,
                    "attempt": self.backoff.attempt,
                    "retry_in_s": round(delay, 3),
                },
            )
        self.connected = False
        self.abort.wait(delay)
        return False

    def close(self) -> None:
        self.abort.set()
        self.channel.close()
