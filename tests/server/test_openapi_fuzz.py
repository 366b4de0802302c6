"""Schemathesis against a real `tailrace server` process: no request it allows gets a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support import processes


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    server = processes.server_process(workdir).start().wait_ready()
    try:
        # Something to read: a workload with a pod, so not every request is a 404.
        workload = {
            "kind": "Function",
            "metadata": {"name": "hello", "namespace": "ns", "uid": "u-1"},
            "spec": {"selector": {"matchLabels": {"app": "hello"}}},
        }
        httpx.put(
            f"{server.url}/v1/namespaces/ns/functions/hello", json=workload
        ).raise_for_status()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(running_server: processes.ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{running_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def test_document_is_valid_openapi(running_server: processes.ServerProcess) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = httpx.get(f"{running_server.url}/openapi.json").json()
    validator.validate(document)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert "/v1/namespaces/{ns}/pods/{pod}/logs" in paths
    assert "/v1/namespaces/{ns}/{plural}/{name}/logs" in paths


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_is_answered_with_a_server_error(case: Any) -> None:
    # Follow requests would stream forever; the fuzzer checks the paged answers.
    if case.query and str(case.query.get("follow", "")).lower() in ("true", "1"):
        case.query["follow"] = "false"
    response = case.call(timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
