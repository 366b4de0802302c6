"""`/metrics` and `/healthz` of the agent on a tiny threaded `http.server` (no web framework)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def parse_addr(addr: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) to a bind address; raises ValueError with the reason."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class ExpositionServer:
    def __init__(
        self,
        addr: str,
        registry: CollectorRegistry,
        health: Callable[[], tuple[bool, dict[str, object]]],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, CONTENT_TYPE_LATEST, generate_latest(outer.registry))
                elif path == "/healthz":
                    ok, details = outer.health()
                    body = orjson.dumps({"status": "ok" if ok else "unhealthy", **details})
                    self._answer(200 if ok else 503, "application/json", body)
                else:
                    self._answer(404, "application/json", b'{"message": "not found"}')

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # scrapes are not worth a log line each

        self.registry = registry
        self.health = health
        self.httpd = ThreadingHTTPServer(parse_addr(addr), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="tailrace-metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
