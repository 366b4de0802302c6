"""`tailrace operator`: kopf with Tailrace's handlers, its webhook server and the health server.

`run(settings)` is what the CLI calls; `operate(...)` is the same as a coroutine, which tests run
in-process against kmock with their own login handler and flags.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import prometheus_client

from tailrace import conventions
from tailrace_operator import (
    context,
    control,
    health,
    leadership,
    metrics,
    pods,
    settings,
    sidecar,
    webhook,
    workloads,
)

logger = logging.getLogger(__name__)

FINALIZER = f"{conventions.API_GROUP}/finalizer"


def run(operator_settings: settings.OperatorSettings) -> int:
    """Run the operator until SIGINT/SIGTERM; the exit code for the CLI."""
    problems = settings_problems(operator_settings)
    if problems:
        for problem in problems:
            logger.error("%s", problem)
        return 2
    try:
        asyncio.run(operate(operator_settings))
    except KeyboardInterrupt:
        return 130
    return 0


def settings_problems(operator_settings: settings.OperatorSettings) -> list[str]:
    """What makes these settings unusable, as messages naming the flag."""
    problems: list[str] = []
    addresses = [("--health-addr", operator_settings.health_addr)]
    if operator_settings.webhook_addr:  # "" turns the webhook off
        addresses.append(("--webhook-addr", operator_settings.webhook_addr))
    for flag, addr in addresses:
        try:
            health.split_addr(addr)
        except ValueError as err:
            problems.append(f"{flag}: {err}")
    missing_cert = operator_settings.webhook_cert is None or operator_settings.webhook_key is None
    if operator_settings.webhook_addr and not operator_settings.webhook_insecure and missing_cert:
        problems.append(
            "the webhook needs --webhook-cert and --webhook-key (or --webhook-insecure)"
        )
    if not operator_settings.server.startswith(("http://", "https://")):
        problems.append(f"--server must be an http(s):// URL, got {operator_settings.server!r}")
    return problems


async def operate(
    operator_settings: settings.OperatorSettings,
    *,
    registry: kopf.OperatorRegistry | None = None,
    login: bool = True,
    metrics_registry: prometheus_client.CollectorRegistry | None = None,
    ready_flag: asyncio.Event | None = None,
    stop_flag: asyncio.Event | None = None,
) -> None:
    """Run until stopped. `login=False` when the registry brings its own @kopf.on.login."""
    registry = registry if registry is not None else kopf.OperatorRegistry()
    if login:
        kopf.on.login(id="tailrace-login", registry=registry)(kopf.login_via_client)
    operator_metrics = metrics.create(metrics_registry or prometheus_client.CollectorRegistry())
    client = control.ControlClient(
        operator_settings.server,
        token=operator_settings.token,
        token_file=operator_settings.token_file,
        timeout_s=operator_settings.request_timeout_s,
        requests_total=operator_metrics.control_requests,
    )
    ctx = context.OperatorContext(
        settings=operator_settings, control=client, metrics=operator_metrics
    )
    pods.register(registry, ctx)
    workloads.register(registry, ctx)
    if operator_settings.webhook_addr:
        webhook.register(registry, ctx)

    @kopf.on.startup(id="tailrace-detect-sidecar-kind", registry=registry)
    async def detect_sidecar_kind(**_: Any) -> None:
        version = operator_settings.kubernetes_version or await _api_server_version()
        ctx.kubernetes_version = version
        ctx.native_sidecars = sidecar.native_sidecars_supported(version)
        logger.info(
            "Kubernetes %s: injecting %s sidecars",
            version or "(unknown)",
            "native" if ctx.native_sidecars else "plain",
        )

    own_tasks: list[asyncio.Task[None]] = []

    @kopf.on.cleanup(id="tailrace-stop-own-tasks", registry=registry)
    async def stop_own_tasks(**_: Any) -> None:
        # kopf treats tasks it did not start as hung and gives them 5 s before cancelling them;
        # the health server and the webhook probe can stop at once.
        for task in own_tasks:
            task.cancel()

    kopf_ready = asyncio.Event()
    pause = leadership.PauseTracker(paused=not operator_settings.standalone)
    pause.attach()
    webhook_ready = asyncio.Event()
    operator_task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf_settings(operator_settings),
            clusterwide=not operator_settings.namespaces,
            namespaces=operator_settings.namespaces,
            # Peering (leader election) is configured in kopf_settings(): passing peering_name or
            # standalone here as well would make peering mandatory even when standalone.
            ready_flag=kopf_ready,
            stop_flag=stop_flag,
        )
    )
    if operator_settings.webhook_addr:
        # kopf starts its webhook server in a task of its own and says nothing when it listens.
        listening_task = asyncio.create_task(
            _until_listening(operator_settings.webhook_addr, webhook_ready)
        )
    else:
        webhook_ready.set()
        listening_task = asyncio.create_task(asyncio.sleep(0))
    app = health.create_app(
        operator_metrics.registry,
        alive=lambda: not operator_task.done(),
        # A paused replica (not the peering leader) has stale indexes: keep it out of the Service.
        ready=lambda: kopf_ready.is_set() and webhook_ready.is_set() and not pause.paused,
    )
    health_started = asyncio.Event()
    health_task = asyncio.create_task(
        health.serve(app, operator_settings.health_addr, health_started)
    )
    own_tasks += [health_task, listening_task]
    try:
        if ready_flag is not None:
            await _wait_first(operator_task, kopf_ready, webhook_ready, health_started)
            ready_flag.set()
        await operator_task
    finally:
        for task in (health_task, operator_task, listening_task):
            task.cancel()
        await asyncio.gather(health_task, operator_task, listening_task, return_exceptions=True)
        await client.aclose()
        pause.detach()


async def _until_listening(addr: str, listening: asyncio.Event) -> None:
    host, port = health.split_addr(addr)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        listening.set()
        return


async def _wait_first(task: asyncio.Task[None], *flags: asyncio.Event) -> None:
    async def all_set() -> None:
        for flag in flags:
            await flag.wait()

    waiter = asyncio.create_task(all_set())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()  # re-raise why kopf stopped before it was ready


def kopf_settings(operator_settings: settings.OperatorSettings) -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    # Our own finalizer name and progress annotations: `kubectl get -o yaml` says whose they are,
    # and the CRD's structural schema (which prunes unknown status fields) keeps kopf's state.
    result.persistence.finalizer = FINALIZER
    result.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=conventions.API_GROUP
    )
    result.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=conventions.API_GROUP, key="last-handled-configuration"
    )
    # Only warnings become Kubernetes Events: kopf's per-handler "succeeded" Events about every pod
    # would flood the namespace (and the Event mirror would see them).
    result.posting.level = logging.WARNING
    result.peering.name = operator_settings.peering_name
    result.peering.priority = (
        leadership.random_priority()
        if operator_settings.peering_priority is None
        else operator_settings.peering_priority
    )
    result.peering.standalone = operator_settings.standalone
    # With several replicas, running without the peering object would let both act.
    result.peering.mandatory = not operator_settings.standalone
    result.peering.clusterwide = not operator_settings.namespaces
    if operator_settings.webhook_addr:
        result.admission.server = webhook_server(operator_settings)
    return result


def webhook_server(operator_settings: settings.OperatorSettings) -> kopf.WebhookServer:
    host, port = health.split_addr(operator_settings.webhook_addr)
    if operator_settings.webhook_insecure:
        return kopf.WebhookServer(addr=host, port=port, insecure=True)
    if operator_settings.webhook_cert is None or operator_settings.webhook_key is None:
        raise ValueError(
            "the webhook needs --webhook-cert and --webhook-key (or --webhook-insecure)"
        )
    return kopf.WebhookServer(
        addr=host,
        port=port,
        certfile=str(operator_settings.webhook_cert),
        pkeyfile=str(operator_settings.webhook_key),
    )


async def _api_server_version() -> str:
    """The API server's gitVersion through the kubernetes client (in-cluster, then kubeconfig)."""

    def fetch() -> str:
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        info = kubernetes.client.VersionApi().get_code(_request_timeout=10)
        return str(info.git_version)

    try:
        return await asyncio.to_thread(fetch)
    except Exception as err:  # any failure here only means "assume an old cluster"
        logger.warning("cannot read the Kubernetes version (%s); injecting plain sidecars", err)
        return ""
