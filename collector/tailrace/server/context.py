"""What every HTTP surface works with: the store, the live-tail hub, auth, limits and metrics.

The native API and each compatibility surface receive one `ServerContext` and build their routes
on it, so they share one query model, one hub and one notion of who may read what.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tailrace.server import auth, cursors, errors, metrics, ratelimit, streaming
from tailrace.server.storage import base


@dataclass
class ServerContext:
    store: base.Store
    hub: streaming.Hub
    authorizer: auth.Authorizer
    limiter: ratelimit.RateLimiter
    signer: cursors.Signer
    metrics: metrics.HttpMetrics
    max_request_bytes: int = 8 * 1024 * 1024

    def _limit(self, principal: auth.Principal) -> None:
        # Limits are per token. Without authentication there is no caller to tell apart, and the
        # server listens on loopback only (or was told --insecure): nothing to limit by.
        if principal is auth.ANONYMOUS:
            return
        wait_s = self.limiter.acquire(principal.key)
        if wait_s > 0:
            self.metrics.rate_limited.inc()
            raise errors.too_many_requests(wait_s)

    async def reader(self, request: Request, namespace: str | None) -> auth.Principal:
        """Authorize a log read in `namespace` (None: across namespaces) and apply the rate limit.

        Raises 401/403/429 as `ApiError`. For a cross-namespace read the caller narrows what it
        returns to `principal.namespaces`.
        """
        principal = await self.authorizer.authorize(request.headers.get("authorization"), namespace)
        self._limit(principal)
        return principal

    async def operator(self, request: Request) -> auth.Principal:
        """Authorize a control-API call (operator credentials, like ingest).

        Not rate limited: an operator starting up mirrors every pod of the cluster at once, and
        its traffic is bounded by the cluster's own rate of change.
        """
        return await self.authorizer.authorize_control(request.headers.get("authorization"))

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused with 413 beyond `max_request_bytes`."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_request_bytes:
            raise errors.body_too_large(self.max_request_bytes)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_request_bytes:
                raise errors.body_too_large(self.max_request_bytes)
        return bytes(body)
