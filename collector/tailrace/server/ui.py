"""The log viewer at /ui: static files shipped in the package, no build step, nothing external.

The page talks only to this server's native API (same origin), so it is served with a Content
Security Policy that forbids every other origin: a viewer of other people's logs must not become
a way to send them elsewhere, and "no CDN" is enforced rather than hoped for.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/ui"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # The files change with the package version; a reload should always see the installed ones.
    (b"cache-control", b"no-cache"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self._app(scope, receive, send_with_headers)


async def _to_index(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=308)


def routes() -> list[BaseRoute]:
    """`/ui` (redirect) and `/ui/...` (the files); the app adds them to its routes."""
    files = StaticFiles(directory=STATIC_DIR, html=True)
    return [
        Route(PREFIX, _to_index, methods=["GET", "HEAD"]),
        Mount(PREFIX, app=_SecurityHeaders(files), name="ui"),
    ]
