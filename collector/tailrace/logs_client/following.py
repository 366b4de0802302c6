"""`-f`: stream over SSE and, when the line drops, reconnect and resume where it stopped.

The server gives every SSE event the record's id; on reconnect the client sends the last one as
`Last-Event-ID` and the server replays what came after it. Ids already printed are remembered (a
bounded window) so a replay that overlaps never shows a line twice.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import httpx
import httpx_sse
import orjson

from tailrace.logs_client import api, connection, failures, options, rendering

RECENT_IDS = 50_000
_RECORD_EVENTS = ("", "message", "record", "log")
# The server ends a stream on purpose: the workload was deleted, nothing more will come.
_END_EVENTS = ("workload-deleted", "end", "scope-destroyed")
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 3.0


class RecentIds:
    """The last `size` ids seen, for dropping a replayed record that was already printed."""

    def __init__(self, size: int = RECENT_IDS) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._ids: set[str] = set()
        self._size = size

    def add(self, record_id: str) -> bool:
        """Remember `record_id`; False when it was already there."""
        if record_id in self._ids:
            return False
        self._ids.add(record_id)
        self._order.append(record_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class Follower:
    def __init__(
        self,
        client: httpx.Client,
        conn: connection.Connection,
        opts: options.Options,
        renderer: rendering.Renderer,
        *,
        status: TextIO = sys.stderr,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._conn = conn
        self._opts = opts
        self._renderer = renderer
        self._status = status
        self._sleep = sleep
        self._clock = clock
        self._seen = RecentIds()
        self.last_id: str | None = None
        self._lost_at: float | None = None  # when the current outage began
        self._ever_connected = False

    def _params(self) -> dict[str, str]:
        params = api.filter_params(self._opts)
        params["follow"] = "true"
        if self.last_id is None:
            if self._opts.tail is not None:
                params["tailLines"] = str(self._opts.tail)
        else:
            # Resuming: the position is Last-Event-ID. A time window would hide lines the agent
            # delivered late while the server was away, so it is not sent again.
            params.pop("last", None)
            params.pop("since", None)
        return params

    def _say(self, text: str) -> None:
        print(f"tailrace logs: {text}", file=self._status, flush=True)

    def _stream_once(self) -> bool:
        """One SSE connection until it ends; True when the server ended the stream on purpose."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        with httpx_sse.connect_sse(
            self._client,
            "GET",
            api.logs_path(self._conn, self._opts.target),
            params=self._params(),
            headers=headers,
        ) as source:
            api.check(source.response, self._conn, str(self._opts.target))
            self._connected()
            for event in source.iter_sse():
                if event.event in _END_EVENTS:
                    self._renderer.flush()
                    reason = _reason(event.data)
                    self._say(f"the server ended the stream{': ' + reason if reason else ''}")
                    return True
                if event.event in _RECORD_EVENTS and event.data:
                    self._show(event.id, _record(event.data))
                elif event.event == "error":
                    self._say(f"the server reports: {_reason(event.data)}")
        return False

    def _show(self, event_id: str, record: Any) -> None:
        if not isinstance(record, dict):
            return
        record_id = event_id or str(record.get("id", ""))
        if record_id and not self._seen.add(record_id):
            return
        self._renderer.write(record)
        self._renderer.flush()
        if record_id:
            self.last_id = record_id

    def _connected(self) -> None:
        if self._lost_at is not None:
            where = f" after id {self.last_id}" if self.last_id else ""
            self._say(f"reconnected; resuming{where}")
        self._lost_at = None
        self._ever_connected = True

    def run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                if self._stream_once():
                    return
                failure: failures.ClientFailure = failures.Unavailable(
                    "the server closed the stream", transient=True
                )
            except httpx.TransportError as err:
                failure = api.unreachable(self._conn, err)
            except failures.ClientFailure as err:
                failure = err
            if not failure.transient or not self._ever_connected:
                raise failure
            now = self._clock()
            if self._lost_at is None:
                self._lost_at = now
                backoff = BACKOFF_FIRST_S
                self._say(f"lost the stream ({failure.message}); reconnecting")
            elif now - self._lost_at > self._opts.reconnect_for_s:
                raise failures.Unavailable(
                    f"gave up reconnecting after {self._opts.reconnect_for_s:.0f} s: "
                    f"{failure.message}"
                )
            self._sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)


def _record(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise failures.Unavailable(
            f"the server sent an event that is not a JSON record: {err}"
        ) from err


def _reason(data: str) -> str:
    """The human part of a close or error event: its JSON `message`, else the raw data."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.strip()
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return data.strip()
