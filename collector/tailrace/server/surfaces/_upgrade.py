"""HTTP/1.1 `101 Switching Protocols` for plain ASGI responses, as Docker-style clients expect.

Hyper's `GET /logs/...` answers `101 UPGRADED` with `Connection: Upgrade` and `Upgrade: tcp`
when the client asks for an upgrade, and then writes the log stream on the raw connection (the
"hijack" Docker clients and proxies know). ASGI has no such response: uvicorn's h11 protocol
refuses a 101 status and handles only WebSocket upgrades. This protocol class, passed to uvicorn
as `http=`, lets an app answer any non-WebSocket upgrade request with a 101: the status line and
headers are written as they are, then every body chunk goes to the socket unframed, and the
connection closes when the body ends.

Apps see the `tailrace.http.upgrade` scope extension on requests where this is possible, so
they can fall back to an ordinary `200` where the server runs without this class.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http import h11_impl

EXTENSION = "tailrace.http.upgrade"


def upgrade_requested(headers: Any) -> bool:
    """Whether request headers (ASGI pairs or a Starlette `Headers`) propose an upgrade."""
    pairs = headers.raw if hasattr(headers, "raw") else headers
    connection = b""
    upgrade = b""
    for name, value in pairs:
        if name.lower() == b"connection":
            connection += b"," + value.lower()
        elif name.lower() == b"upgrade":
            upgrade = value.strip().lower()
    tokens = {token.strip() for token in connection.split(b",")}
    return b"upgrade" in tokens and bool(upgrade) and upgrade != b"websocket"


class _UpgradeCycle(h11_impl.RequestResponseCycle):
    """A request/response cycle that may switch protocols instead of answering in HTTP."""

    _switched = False

    async def send(self, message: Any) -> None:
        if (
            not self.response_started
            and message["type"] == "http.response.start"
            and message["status"] == 101
        ):
            self.response_started = True
            self._switched = True
            headers = [*self.default_headers, *message.get("headers", [])]
            head = b"HTTP/1.1 101 UPGRADED\r\n"
            head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self.transport.write(head + b"\r\n")
            return
        if not self._switched:
            await super().send(message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected or self.response_complete:
            return
        body = message.get("body", b"")
        if body:
            self.transport.write(body)
        if not message.get("more_body", False):
            self.response_complete = True
            self.message_event.set()
            self.transport.close()


class UpgradableH11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 protocol, plus 101 responses to non-WebSocket upgrade requests."""

    def _should_upgrade(self) -> bool:
        # Other upgrades are the app's to answer; uvicorn would only warn about them.
        return self._get_upgrade() == b"websocket" and self._should_upgrade_to_ws()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        cycle = self.cycle
        if cycle is None or cycle is before or cycle.response_started:
            return
        if upgrade_requested(cycle.scope["headers"]):
            # The app task is created but has not run yet: it will see both changes.
            cycle.__class__ = _UpgradeCycle
            cycle.scope.setdefault("extensions", {})[EXTENSION] = {}
