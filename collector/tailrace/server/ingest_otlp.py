"""OTLP logs (opentelemetry.proto.logs.v1) turned into Tailrace records.

The Kubernetes resource attributes of the OpenTelemetry semantic conventions place a record:
`k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name`. A record without a
namespace and a pod cannot be served by any Tailrace API, so it is rejected and counted (OTLP's
partial success tells the sender). Severity numbers map onto Tailrace's six levels, the body
becomes the message (non-string bodies as JSON) and the log attributes become `attrs`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tailrace import conventions
from tailrace.server.storage import base

NAMESPACE: Final = "k8s.namespace.name"
POD: Final = "k8s.pod.name"
POD_UID: Final = "k8s.pod.uid"
CONTAINER: Final = "k8s.container.name"
CONTAINER_RESTART: Final = "k8s.container.restart_count"
MAX_TS_NS: Final = 2**63 - 1  # OTLP times are fixed64; stores keep signed 64-bit nanoseconds
EXECUTION_ATTRIBUTES: Final = ("executionId", "execution.id", "tailrace.execution_id")

# OTLP SeverityNumber ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.
_BY_NUMBER: Final = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_TEXT_ALIASES: Final = {
    "WARNING": "WARN",
    "ERR": "ERROR",
    "CRITICAL": "FATAL",
    "CRIT": "FATAL",
    "EMERGENCY": "FATAL",
    "PANIC": "FATAL",
    "NOTICE": "INFO",
}


@dataclass(slots=True)
class Converted:
    records: list[base.NewRecord] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""


def level(severity_number: int, severity_text: str) -> str:
    if 1 <= severity_number <= 24:
        return _BY_NUMBER[(severity_number - 1) // 4]
    text = severity_text.strip().upper()
    text = _TEXT_ALIASES.get(text, text)
    return text if text in conventions.LEVEL_RANK else "INFO"


def value(any_value: common_pb2.AnyValue) -> Any:
    """The plain Python (JSON-able) form of an OTLP AnyValue."""
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    if which == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, which)


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs}


def _message(body: common_pb2.AnyValue) -> str:
    if body.WhichOneof("value") == "string_value":
        return body.string_value
    plain = value(body)
    return "" if plain is None else orjson.dumps(plain).decode()


def to_records(request: logs_service_pb2.ExportLogsServiceRequest) -> Converted:
    converted = Converted()
    now = time.time_ns()
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        namespace = str(resource.get(NAMESPACE) or "")
        pod = str(resource.get(POD) or "")
        count = sum(len(scope.log_records) for scope in resource_logs.scope_logs)
        if not namespace or not pod:
            converted.rejected += count
            converted.reason = (
                f"resource attributes {NAMESPACE} and {POD} are required to place a log record"
            )
            continue
        pod_uid = str(resource.get(POD_UID) or "")
        container = str(resource.get(CONTAINER) or "")
        restart = resource.get(CONTAINER_RESTART)
        for scope_logs in resource_logs.scope_logs:
            for log_record in scope_logs.log_records:
                ts_ns = log_record.time_unix_nano or log_record.observed_time_unix_nano or now
                if ts_ns > MAX_TS_NS:
                    converted.rejected += 1
                    converted.reason = "time_unix_nano is beyond the year 2262 (int64 nanoseconds)"
                    continue
                attrs = attributes(log_record.attributes)
                if log_record.trace_id:
                    attrs["trace_id"] = log_record.trace_id.hex()
                if log_record.span_id:
                    attrs["span_id"] = log_record.span_id.hex()
                execution = next(
                    (
                        str(attrs[name])
                        for name in EXECUTION_ATTRIBUTES
                        if isinstance(attrs.get(name), str)
                    ),
                    "",
                )
                converted.records.append(
                    base.NewRecord(
                        ts_ns=ts_ns,
                        namespace=namespace,
                        pod=pod,
                        container=container,
                        stream="stdout",
                        level=level(log_record.severity_number, log_record.severity_text),
                        message=_message(log_record.body),
                        pod_uid=pod_uid,
                        restart=restart if isinstance(restart, int) else 0,
                        execution_id=execution,
                        attrs=attrs,
                        source="otlp",
                    )
                )
    return converted
