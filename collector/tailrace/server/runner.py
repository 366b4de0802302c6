"""`tailrace server`: the store, the gRPC ingest and the HTTP app in one event loop.

SIGTERM and SIGINT stop both servers (live streams are ended first so uvicorn is not kept waiting
on followers), then the store is closed. Without authentication the server refuses to listen
anywhere but loopback unless `--insecure` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
from collections.abc import Iterator

import uvicorn
from prometheus_client import CollectorRegistry

from tailrace import settings
from tailrace.server import app, auth, ingest, ratelimit, retention, streaming
from tailrace.server.storage import base, open_store
from tailrace.server.surfaces import _upgrade

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    pass


def split_addr(addr: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected HOST:PORT, got {addr!r}")
    host = host.strip("[]") or "0.0.0.0"
    number = int(port)
    if not 0 <= number <= 65535:
        raise ConfigError(f"port out of range in {addr!r}")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(config: settings.ServerSettings) -> None:
    """Refuse a non-loopback bind without authentication unless `insecure` is set.

    Each listener needs its own kind: HTTP reads need reader auth (--tokens-file or
    --kubernetes-auth), gRPC ingest needs ingest auth (--ingest-tokens-file, or
    --kubernetes-auth with --ingest-service-account), or anyone could push forged logs.
    """
    readers = config.tokens_file is not None or config.kubernetes_auth
    ingesters = config.ingest_tokens_file is not None or (
        config.kubernetes_auth and bool(config.ingest_service_accounts)
    )
    listeners = (
        ("--http-addr", config.http_addr, readers, "--tokens-file or --kubernetes-auth"),
        (
            "--grpc-addr",
            config.grpc_addr,
            ingesters,
            "--ingest-tokens-file, or --kubernetes-auth with --ingest-service-account",
        ),
    )
    exposed_without_auth = False
    for flag, addr, authenticated, how in listeners:
        host, _ = split_addr(addr)
        if authenticated or is_loopback(host):
            continue
        if not config.insecure:
            raise ConfigError(
                f"{flag} {addr} is not a loopback address and has no authentication ({how}); "
                "pass --insecure to serve it anyway"
            )
        exposed_without_auth = True
    if exposed_without_auth:
        log.warning("--insecure: a listener without authentication is reachable beyond loopback")
    if not readers:
        log.warning("no authentication configured: serving on loopback only")


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runner owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# Ingest allocates a tracked object or more per record (the records of a batch live until it is
# stored): with the default gen-0 threshold of 700 the collector ran every few hundred records,
# about 1 us of the ~5.7 us of CPU a PostgreSQL replica spent per ingested record.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Collect rarely, and never scan what startup loaded (modules, settings, the store's pool)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _follow_store(hub: streaming.Hub, store: streaming.WatchableStore) -> None:
    while True:
        try:
            await hub.follow_store(store)
            return
        except base.StoreError as err:
            # Resumes after the last id delivered, so nothing is skipped or repeated.
            log.warning("live-tail feed from the shared store failed, retrying: %s", err)
            await asyncio.sleep(1.0)


async def serve(config: settings.ServerSettings) -> None:
    registry = CollectorRegistry()
    store = open_store(config.store_url)
    await store.open()
    try:
        hub = streaming.Hub(
            ring_lines=config.ring_lines,
            ring_bytes=config.ring_bytes,
            queue_records=config.follower_queue_records,
            heartbeat_s=config.heartbeat_s,
        )
        if isinstance(store, streaming.WatchableStore):
            # Before ingest starts: the feed begins at the store's current watermark, and from
            # then on every record, this replica's too, reaches the hub through it, in id order.
            hub.start(await store.last_id())
            hub.fed_by_store = True
        authorizer = auth.build(
            config.tokens_file,
            config.ingest_tokens_file,
            config.kubernetes_auth,
            config.ingest_service_accounts,
        )
        ctx = app.build_context(
            store,
            registry=registry,
            hub=hub,
            authorizer=authorizer,
            # Limits are per token: with no auth (loopback only) every client is the same local
            # user (UI, CLI, curl), and one shared bucket would only get in its way.
            limiter=ratelimit.RateLimiter(
                config.rate_limit_per_s if authorizer.enabled else 0, config.rate_limit_burst
            ),
            cursor_secret=config.cursor_secret,
            max_request_bytes=config.max_request_bytes,
        )
        asgi = app.build_app(ctx, config.surfaces, with_ui=config.ui)
        host, port = split_addr(config.http_addr)
        http = EmbeddedServer(
            uvicorn.Config(
                asgi,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=5,
                # Hyper's logs answer `101 UPGRADED` to clients that ask for an upgrade.
                http=_upgrade.UpgradableH11Protocol,
            )
        )
        grpc_server = await ingest.serve(
            config.grpc_addr, store, hub.publish, authorizer.authorize_ingest_async, registry
        )
        log.info(
            "gRPC ingest on %s (port %d), HTTP on %s",
            config.grpc_addr,
            grpc_server.port,
            config.http_addr,
        )
        loop = asyncio.get_running_loop()

        def stop() -> None:
            log.info("stopping")
            hub.close_all(streaming.SHUTDOWN)
            http.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        background = [
            asyncio.create_task(retention.run(store, registry, config.retention_interval_s))
        ]
        if isinstance(store, streaming.WatchableStore):
            # Several replicas share this store: live tails follow what any of them stores.
            background.append(asyncio.create_task(_follow_store(hub, store)))
        tune_gc()  # everything is loaded: what exists from here on is long-lived
        try:
            await http.serve()
        finally:
            for task in background:
                task.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await grpc_server.stop(5.0)
    finally:
        await store.close()


def run(config: settings.ServerSettings) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 for a configuration refused at start."""
    try:
        check_exposure(config)
    except ConfigError as err:
        log.error("%s", err)
        return 2
    try:
        asyncio.run(serve(config))
    except (ConfigError, base.UnknownStoreURL, auth.AuthConfigError, OSError) as err:
        log.error("cannot start the server: %s", err)
        return 2
    return 0
