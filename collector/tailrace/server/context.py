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

    def _limit(self, principal: auth.Principal, request: Request) -> None:
        # Limits are per token; without authentication, per client address.
        key = principal.key
        if principal is auth.ANONYMOUS and request.client is not None:
            key = f"ip:{request.client.host}"
        wait_s = self.limiter.acquire(key)
        if wait_s > 0:
            self.metrics.rate_limited.inc()
            raise errors.too_many_requests(wait_s)

    async def reader(self, request: Request, namespace: str | None) -> auth.Principal:
        """Authorize a log read in `namespace` (None: across namespaces) and apply the rate limit.

        Raises 401/403/429 as `ApiError`. For a cross-namespace read the caller narrows what it
        returns to `principal.namespaces`.
        """
        principal = await self.authorizer.authorize(request.headers.get("authorization"), namespace)
        self._limit(principal, request)
        return principal

    async def deleter(self, request: Request, namespace: str) -> auth.Principal:
        """Authorize deleting stored logs in `namespace`; reading them is not enough."""
        return await self.authorizer.authorize_delete(
            request.headers.get("authorization"), namespace
        )

    async def operator(self, request: Request) -> auth.Principal:
        """Authorize a control-API call (operator credentials, like ingest), rate limited like
        any caller: the operator retries a 429 with backoff."""
        principal = await self.authorizer.authorize_control(request.headers.get("authorization"))
        self._limit(principal, request)
        return principal

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
