"""The OpenAPI 3.1 document of the native and control APIs, served at /openapi.json.

Hand-written rather than generated: the parameters, their bounds and the error shape are the
contract, and a reviewer should be able to read them in one place. The schemathesis test fuzzes
the server against exactly this document.
"""

from __future__ import annotations

import functools
from typing import Any

from tailrace import conventions
from tailrace.server import query

_ERROR = {"$ref": "#/components/schemas/Error"}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
}
_PATH_NS = _param("ns", "path", _NAME, "Namespace.")
_PATH_PLURAL = _param(
    "plural", "path", {"type": "string", "enum": ["functions", "pipelines"]}, "Workload kind."
)
_PATH_NAME = _param("name", "path", _NAME, "Workload name.")
_PATH_POD = _param("pod", "path", _NAME, "Pod name.")

_TIME = {
    "type": "string",
    "maxLength": 64,
    "description": "RFC3339 (nanoseconds kept) or integer ns.",
}
_LOG_PARAMS = [
    _param(
        "q", "query", {"type": "string", "minLength": 1, "maxLength": 1024}, "Full-text search."
    ),
    _param(
        "level",
        "query",
        {"type": "string", "maxLength": 200},
        "Comma list of levels: " + ", ".join(conventions.LEVELS) + ".",
    ),
    _param("since", "query", _TIME, "Inclusive lower time bound."),
    _param("until", "query", _TIME, "Exclusive upper time bound."),
    _param(
        "last",
        "query",
        {"type": "string", "maxLength": 32, "pattern": "^([0-9]+(ns|us|ms|s|m|h|d|w))+$"},
        "Only the last duration, e.g. 5m, 2h, 7d (instead of since).",
    ),
    _param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": query.MAX_LIMIT},
        "Records per page.",
    ),
    _param("order", "query", {"type": "string", "enum": ["asc", "desc"]}, "Order by time."),
    _param(
        "cursor",
        "query",
        {"type": "string", "maxLength": 128},
        "Opaque cursor from a previous page (nextCursor or the Tailrace-Next-Cursor header).",
    ),
    _param("executionId", "query", {"type": "string", "maxLength": 256}, "One execution."),
    _param("container", "query", {"type": "string", "maxLength": 512}, "Comma list of containers."),
    _param(
        "stream",
        "query",
        {"type": "string", "maxLength": 64},
        "Comma list of streams: stdout, stderr, system.",
    ),
    _param(
        "tailLines",
        "query",
        {"type": "integer", "minimum": 0, "maximum": query.MAX_TAIL_LINES},
        "The newest N records, in ascending order.",
    ),
    _param(
        "follow",
        "query",
        {"type": "boolean"},
        "Stream new records after the catch-up (limit then only sets the catch-up page size).",
    ),
    _param(
        "Last-Event-ID",
        "header",
        {"type": "string", "pattern": "^[0-9]{1,19}$"},
        "With follow=true: resume after this record id without gap or repeat.",
    ),
]
_POD_PARAMS = [
    _param("previous", "query", {"type": "boolean"}, "Logs of the previous container instance."),
]

_RECORD = {
    "type": "object",
    "required": ["id", "time", "namespace", "pod", "container", "stream", "level", "message"],
    "properties": {
        "id": {"type": "string", "description": "Store-assigned, increasing; the SSE event id."},
        "time": {"type": "string", "description": "RFC3339 with nanoseconds."},
        "namespace": {"type": "string"},
        "pod": {"type": "string"},
        "container": {"type": "string"},
        "stream": {"type": "string", "enum": ["stdout", "stderr", "system"]},
        "level": {"type": "string", "enum": list(conventions.LEVELS)},
        "message": {"type": "string"},
        "executionId": {"type": ["string", "null"]},
        "workload": {
            "type": ["object", "null"],
            "properties": {"kind": {"type": "string"}, "name": {"type": "string"}},
        },
        "truncated": {"type": "boolean"},
        "attrs": {"type": "object"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "A parameter or body is invalid (details name it).",
        401: "No or unknown bearer token.",
        403: "The token may not read this namespace.",
        404: "Unknown workload or pod.",
        406: "None of the accepted media types can be served.",
        413: "The body is too large.",
        429: "Rate limited; see Retry-After.",
        503: "The store is unavailable.",
    }
    return {
        str(code): {
            "description": reasons[code],
            "content": {"application/json": {"schema": _ERROR}},
        }
        for code in codes
    }


_READ_ERRORS = _errors(400, 401, 403, 404, 406, 429, 503)
_SSE_EVENTS = (
    "Each record is an event whose id is the record id and whose data is the record JSON. "
    "Other events: `end` (paged answers: data {nextCursor}); with follow=true, `reset` (the "
    "Last-Event-ID fell out of the live buffer; the records after it follow from the store), "
    "`error` (data {reason, message}; reason slow-consumer or shutdown; the stream then ends) "
    "and `workload-deleted` (the workload was deleted; the stream ends). Comment lines "
    "`: heartbeat` keep idle streams open."
)
_LOGS_RESPONSE = {
    "200": {
        "description": "Records, in the format the Accept header asks for (text/plain by default).",
        "headers": {
            conventions.NEXT_CURSOR_HEADER: {
                "schema": {"type": "string"},
                "description": "Cursor of the next page (NDJSON, text and SSE answers).",
            }
        },
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/LogPage"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string", "description": _SSE_EVENTS}},
        },
    },
    **_READ_ERRORS,
}
_JSON_OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
_KUBE_OBJECT = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_CONTROL_ERRORS = _errors(400, 401, 403, 404, 413, 429, 503)


@functools.cache
def document() -> dict[str, Any]:
    workload = "/v1/namespaces/{ns}/{plural}/{name}"
    workload_params = [_PATH_NS, _PATH_PLURAL, _PATH_NAME]
    pod_params = [_PATH_NS, _PATH_POD]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tailrace",
            "version": "v1",
            "description": "Logs of Kubernetes functions and pipelines: query, follow, stats.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["message", "error_code", "details"],
                    "properties": {
                        "message": {"type": "string"},
                        "error_code": {"type": "string"},
                        "details": {"type": "object"},
                    },
                },
                "Record": _RECORD,
                "LogPage": {
                    "type": "object",
                    "required": ["records", "nextCursor"],
                    "properties": {
                        "records": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Record"},
                        },
                        "nextCursor": {"type": ["string", "null"]},
                    },
                },
                "Stats": {
                    "type": "object",
                    "required": ["total", "byLevel", "byContainer", "byExecution", "pods"],
                    "properties": {
                        "total": {"type": "integer"},
                        "byLevel": {"type": "object"},
                        "byContainer": {"type": "object"},
                        "byExecution": {"type": "object"},
                        "truncatedLines": {"type": "integer"},
                        "droppedLines": {"type": "integer"},
                        "splitLines": {"type": "integer"},
                        "lastLogAt": {"type": ["string", "null"]},
                        "pods": {"type": "integer"},
                    },
                },
            },
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/workloads": {
                "get": {
                    "operationId": "listWorkloads",
                    "summary": "Registered workloads and their pods, in readable namespaces.",
                    "parameters": [
                        _param(
                            "namespace",
                            "query",
                            {"type": "string", "maxLength": 253},
                            "One namespace.",
                        )
                    ],
                    "responses": {"200": _JSON_OK, **_READ_ERRORS},
                }
            },
            "/v1/logs": {
                "get": {
                    "operationId": "allLogs",
                    "summary": "Logs of every namespace (needs a token that may read all).",
                    "parameters": _LOG_PARAMS,
                    "responses": _LOGS_RESPONSE,
                }
            },
            "/v1/namespaces/{ns}/logs": {
                "get": {
                    "operationId": "namespaceLogs",
                    "summary": "Logs of every pod in a namespace.",
                    "parameters": [_PATH_NS, *_LOG_PARAMS],
                    "responses": _LOGS_RESPONSE,
                }
            },
            "/v1/namespaces/{ns}/pods/{pod}/logs": {
                "get": {
                    "operationId": "podLogs",
                    "summary": "Logs of one pod, like kubectl logs.",
                    "parameters": [*pod_params, *_LOG_PARAMS, *_POD_PARAMS],
                    "responses": _LOGS_RESPONSE,
                }
            },
            workload + "/logs": {
                "get": {
                    "operationId": "workloadLogs",
                    "summary": "Logs of a Function or Pipeline.",
                    "parameters": [*workload_params, *_LOG_PARAMS],
                    "responses": _LOGS_RESPONSE,
                },
                "delete": {
                    "operationId": "deleteWorkloadLogs",
                    "summary": "Delete the stored logs of a workload.",
                    "parameters": workload_params,
                    "responses": {"200": _JSON_OK, **_READ_ERRORS},
                },
            },
            workload + "/stats": {
                "get": {
                    "operationId": "workloadStats",
                    "parameters": workload_params,
                    "responses": {
                        "200": {
                            "description": "Counts.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Stats"}
                                }
                            },
                        },
                        **_READ_ERRORS,
                    },
                }
            },
            workload + "/events": {
                "get": {
                    "operationId": "workloadEvents",
                    "summary": "Execution events (CALL, PENDING, RUNNING, FINISHED, FAILED).",
                    "parameters": [
                        *workload_params,
                        _param(
                            "executionId",
                            "query",
                            {"type": "string", "maxLength": 256},
                            "One execution.",
                        ),
                        _param(
                            "limit",
                            "query",
                            {"type": "integer", "minimum": 1, "maximum": query.MAX_LIMIT},
                            "At most this many events.",
                        ),
                    ],
                    "responses": {"200": _JSON_OK, **_READ_ERRORS},
                }
            },
            workload: {
                "put": {
                    "operationId": "putWorkload",
                    "summary": "Control API: register or update a workload (Kubernetes JSON).",
                    "parameters": workload_params,
                    "requestBody": _KUBE_OBJECT,
                    "responses": {"200": _JSON_OK, **_CONTROL_ERRORS},
                },
                "delete": {
                    "operationId": "deleteWorkload",
                    "summary": "Control API: the workload is gone; its live streams end.",
                    "parameters": workload_params,
                    "responses": {"200": _JSON_OK, **_CONTROL_ERRORS},
                },
            },
            "/v1/namespaces/{ns}/pods/{pod}": {
                "put": {
                    "operationId": "putPod",
                    "summary": "Control API: mirror a Pod (Kubernetes JSON).",
                    "parameters": pod_params,
                    "requestBody": _KUBE_OBJECT,
                    "responses": {"200": _JSON_OK, **_CONTROL_ERRORS},
                },
                "delete": {
                    "operationId": "deletePod",
                    "parameters": pod_params,
                    "responses": {"200": _JSON_OK, **_CONTROL_ERRORS},
                },
            },
            "/v1/namespaces/{ns}/pods/{pod}/events/{event}": {
                "put": {
                    "operationId": "putPodEvent",
                    "summary": "Control API: a Kubernetes Event about a pod (idempotent by name).",
                    "parameters": [*pod_params, _param("event", "path", _NAME, "Event name.")],
                    "requestBody": _KUBE_OBJECT,
                    "responses": {"200": _JSON_OK, **_CONTROL_ERRORS},
                }
            },
            "/healthz": {
                "get": {"operationId": "healthz", "security": [], "responses": {"200": _JSON_OK}}
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "security": [],
                    "responses": {"200": _JSON_OK, "503": _JSON_OK},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }
