"""Client of the server's control API (docs/interfaces.md): the operator's only way to the server.

Two failure families, because the handlers react differently: `ServerUnreachable` (connection
refused, timeout, 5xx, 429, and refused credentials) is temporary and retried with backoff;
`ServerRejected` (other 4xx) means the server will not take this object as it is, which no retry
fixes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import prometheus_client

from tailrace import conventions


class ControlError(Exception):
    """The control API did not do what was asked."""


class ServerUnreachable(ControlError):
    """The server could not be reached or failed; worth retrying later."""


class ServerUnauthorized(ServerUnreachable):
    """The server refused the operator's credentials (401/403): retried, as a token can be fixed
    or rotated without touching the workload."""


class ServerRejected(ControlError):
    """The server answered 4xx: the object as sent is not acceptable."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ExtensionMissing(ControlError):
    """The server does not serve an optional endpoint (404/405): an older server."""


class ControlClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        token_file: Path | None = None,
        timeout_s: float = 10.0,
        requests_total: prometheus_client.Counter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self._token_file = token_file
        self._requests_total = requests_total
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def put_workload(
        self, kind: conventions.WorkloadKind, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        response = await self._send("PUT", _workload_path(kind, namespace, name), body)
        return _json_object(response)

    async def delete_workload(
        self, kind: conventions.WorkloadKind, namespace: str, name: str
    ) -> None:
        await self._send("DELETE", _workload_path(kind, namespace, name), missing_ok=True)

    async def workload_stats(
        self, kind: conventions.WorkloadKind, namespace: str, name: str
    ) -> dict[str, Any]:
        response = await self._send("GET", _workload_path(kind, namespace, name) + "/stats")
        return _json_object(response)

    async def put_pod(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        await self._send("PUT", _pod_path(namespace, name), body)

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._send("DELETE", _pod_path(namespace, name), missing_ok=True)

    async def put_pod_event(
        self, namespace: str, pod: str, event_name: str, body: Mapping[str, Any]
    ) -> None:
        path = f"{_pod_path(namespace, pod)}/events/{_segment(event_name)}"
        response = await self._send("PUT", path, body, missing_ok=True)
        if response.status_code in (404, 405):
            raise ExtensionMissing(f"the server does not serve PUT {path}")

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        missing_ok: bool = False,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        token = self._current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._http.request(
                method, path, json=dict(body) if body is not None else None, headers=headers
            )
        except httpx.HTTPError as err:
            self._count(method, "unreachable")
            raise ServerUnreachable(f"{method} {path}: {type(err).__name__}: {err}") from err
        self._count(method, str(response.status_code))
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnreachable(
                f"{method} {path}: server answered {response.status_code}: {_message(response)}"
            )
        if response.status_code in (401, 403):
            raise ServerUnauthorized(
                f"{method} {path}: server answered {response.status_code}: {_message(response)}"
            )
        if missing_ok and response.status_code in (404, 405):
            return response
        if response.status_code >= 400:
            raise ServerRejected(
                f"{method} {path}: server answered {response.status_code}: {_message(response)}",
                response.status_code,
            )
        return response

    def _current_token(self) -> str:
        if self._token_file is not None:
            try:
                return self._token_file.read_text().strip()
            except OSError as err:
                raise ServerUnreachable(f"cannot read token file {self._token_file}") from err
        return self._token

    def _count(self, method: str, code: str) -> None:
        if self._requests_total is not None:
            self._requests_total.labels(method=method, code=code).inc()


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _workload_path(kind: conventions.WorkloadKind, namespace: str, name: str) -> str:
    plural = conventions.KIND_PLURALS[kind]
    return f"/v1/namespaces/{_segment(namespace)}/{plural}/{_segment(name)}"


def _pod_path(namespace: str, name: str) -> str:
    return f"/v1/namespaces/{_segment(namespace)}/pods/{_segment(name)}"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        decoded = response.json()
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _message(response: httpx.Response) -> str:
    decoded = _json_object(response)
    message = decoded.get("message")
    return str(message) if message else response.text[:200]
