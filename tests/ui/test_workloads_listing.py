"""`GET /v1/workloads`, the list behind the viewer's pickers: every registered workload with its
pods, narrowed to the namespaces the caller's token may read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tailrace import demo
from tests.cli import feeding
from tests.support import processes

READER = "shop-reader"
ADMIN = "cluster-admin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.ServerProcess]:
    workdir = tmp_path_factory.mktemp("workloads")
    tokens = workdir / "tokens"
    tokens.write_text(f"{READER} shop\n{ADMIN} *\n")
    server = processes.server_process(workdir, extra=["--tokens-file", str(tokens)])
    with processes.running(server):
        server.start().wait_ready()
        feeding.register(server, workdir / "pods", token=ADMIN)
        pipeline = demo.workload_object("Pipeline", "billing", "invoices", str(uuid.uuid4()), "inv")
        r = httpx.put(
            f"{server.url}/v1/namespaces/billing/pipelines/invoices",
            json=pipeline,
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert r.status_code == 200, r.text
        yield server


def _list(server: processes.ServerProcess, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}/v1/workloads", params=params, headers=headers)


def _names(body: Any) -> list[tuple[str, str, str]]:
    return [(w["namespace"], w["kind"], w["name"]) for w in body["workloads"]]


def test_lists_every_workload_with_its_pods_for_a_token_that_reads_all(
    server: processes.ServerProcess,
) -> None:
    r = _list(server, ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert _names(body) == [("billing", "Pipeline", "invoices"), ("shop", "Function", "hello")]
    hello = body["workloads"][1]
    assert hello["pods"] == sorted(feeding.PODS)
    assert hello["uid"]


def test_a_namespace_token_sees_only_its_namespace(server: processes.ServerProcess) -> None:
    r = _list(server, READER)
    assert r.status_code == 200, r.text
    assert _names(r.json()) == [("shop", "Function", "hello")]
    assert _list(server, READER, namespace="billing").status_code == 403


def test_no_token_is_a_401(server: processes.ServerProcess) -> None:
    r = _list(server, None)
    assert r.status_code == 401
    assert set(r.json()) == {"message", "error_code", "details"}
