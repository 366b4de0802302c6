"""Deno Deploy deployments API, line by line of seeds/003.

`GET /v1/deployments/{deploymentId}` answers the deployment's details; `/build_logs` and
`/app_logs` answer a JSON array, or a stream of newline-delimited JSON objects when the client
accepts `application/x-ndjson`. App logs are past logs when `since` or `until` is given (with
`limit`, `order` and `cursor`), real-time logs otherwise; `q`, `level` and `region` filter both.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import orjson
import pytest

from tailrace import conventions
from tests.server.compat.conftest import (
    OPERATOR,
    READER,
    ServerFactory,
    delete_workload,
    put_pod,
    rate_limited,
    secured_server,
    stream,
)
from tests.server.harness import T0, Line, Running, Source, pod_object

NDJSON = {"Accept": "application/x-ndjson"}
DEPLOYMENT = "/v1/deployments/hello"
APP_LOGS = DEPLOYMENT + "/app_logs"
REGION = "topology.kubernetes.io/region"
EAST = Source(pod="hello-east", pod_uid="uid-east", container="app")
WEST = Source(pod="hello-west", pod_uid="uid-west", container="app")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
PAST = {"since": "2023-11-14T00:00:00Z"}


async def _deploy(server: Running) -> None:
    spec = {"selector": {"matchLabels": {"app": "hello"}}, "logs": {"minLevel": "DEBUG"}}
    assert (await server.register(spec=spec)).status_code == 200
    for source, region in ((EAST, "us-east"), (WEST, "eu-west")):
        await put_pod(
            server, source.pod, uid=source.pod_uid, labels={"app": "hello", REGION: region}
        )


@pytest.fixture
async def deployed(live_server: Running) -> Running:
    await _deploy(live_server)
    pod = (await live_server.http.get("/v1/namespaces/ns/functions/hello/stats")).json()
    assert pod["pods"] == 2
    body = pod_object("hello-build", uid="uid-build", labels={"app": "hello", REGION: "us-east"})
    body["spec"]["initContainers"] = [{"name": "build", "image": "deno:1"}]
    response = await live_server.http.put("/v1/namespaces/ns/pods/hello-build", json=body)
    assert response.status_code == 200, response.text
    await live_server.push(
        [Line("npm install: 42 packages", T0), Line("build failed once", T0 + 1, level="ERROR")],
        Source(pod="hello-build", pod_uid="uid-build", container="build"),
    )
    await live_server.push(
        [
            Line("listening on :8080", T0 + 10, execution_id="e-1"),
            Line("GET /hello 200", T0 + 11),
            Line("cache cold", T0 + 12, level="DEBUG"),
        ],
        EAST,
    )
    await live_server.push(
        [
            Line("GET /hello 200", T0 + 20),
            Line("slow upstream", T0 + 21, level="WARN"),
            Line("upstream failed", T0 + 22, level="ERROR", stream="stderr"),
        ],
        WEST,
    )
    return live_server


async def _app_logs(server: Running, **params: str) -> list[dict[str, Any]]:
    response = await server.http.get(APP_LOGS, params={**PAST, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return list(response.json())


async def test_deployment_details(deployed: Running) -> None:
    response = await deployed.http.get(DEPLOYMENT)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "projectId",
        "status",
        "domains",
        "databases",
        "createdAt",
        "updatedAt",
    }
    assert body["id"] == "uid-hello"
    assert str(uuid.UUID(body["projectId"])) == body["projectId"]
    assert body["status"] == "success"
    assert isinstance(body["domains"], list)
    assert set(body["databases"]) == {"default"}
    assert ISO.match(body["createdAt"])
    assert ISO.match(body["updatedAt"])
    # The deployment is found by its uid too, and the project is the same for the namespace.
    by_uid = (await deployed.http.get("/v1/deployments/uid-hello")).json()
    assert by_uid == body
    await deployed.register(name="other", labels={"app": "other"})
    other = (await deployed.http.get("/v1/deployments/other")).json()
    assert other["projectId"] == body["projectId"]
    assert other["status"] == "pending"


async def test_unknown_deployment_is_404_on_every_path(server: Running) -> None:
    for suffix in ("", "/build_logs", "/app_logs"):
        response = await server.http.get(f"/v1/deployments/nope{suffix}", params=PAST)
        assert response.status_code == 404
        body = response.json()
        assert body["code"] == "deploymentNotFound"
        assert "nope" in body["message"]


async def test_build_logs_are_the_init_containers_records(deployed: Running) -> None:
    response = await deployed.http.get(DEPLOYMENT + "/build_logs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    logs = response.json()
    assert {"level": "info", "message": "npm install: 42 packages"} in logs
    assert {"level": "error", "message": "build failed once"} in logs
    assert all(set(log) == {"level", "message"} for log in logs)
    assert not any("listening" in log["message"] for log in logs)


async def test_build_logs_as_ndjson(deployed: Running) -> None:
    response = await deployed.http.get(DEPLOYMENT + "/build_logs", headers=NDJSON)
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert lines[:2] == [
        {"level": "info", "message": "npm install: 42 packages"},
        {"level": "error", "message": "build failed once"},
    ]


async def test_past_app_logs_have_time_level_message_region(deployed: Running) -> None:
    logs = await _app_logs(deployed)
    assert [log["message"] for log in logs] == [
        "listening on :8080",
        "GET /hello 200",
        "cache cold",
        "GET /hello 200",
        "slow upstream",
        "upstream failed",
    ]
    assert logs[0] == {
        "time": "2023-11-14T22:13:20.000000010Z",
        "level": "info",
        "message": "listening on :8080",
        "region": "us-east",
    }
    assert [log["level"] for log in logs] == ["info", "info", "debug", "info", "warning", "error"]
    assert [log["region"] for log in logs][3:] == ["eu-west"] * 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "upstream"}, ["slow upstream", "upstream failed"]),
        ({"level": "warning,error"}, ["slow upstream", "upstream failed"]),
        ({"level": "debug"}, ["cache cold"]),
        ({"region": "us-east"}, ["listening on :8080", "GET /hello 200", "cache cold"]),
        ({"region": "eu-west,us-east", "level": "error"}, ["upstream failed"]),
        ({"region": "mars"}, []),
        (
            {"since": "2023-11-14T22:13:20.000000020Z"},
            ["GET /hello 200", "slow upstream", "upstream failed"],
        ),
        ({"until": "2023-11-14T22:13:20.000000012Z"}, ["listening on :8080", "GET /hello 200"]),
        ({"limit": "2"}, ["listening on :8080", "GET /hello 200"]),
        ({"order": "desc", "limit": "2"}, ["upstream failed", "slow upstream"]),
    ],
)
async def test_app_log_filters(
    deployed: Running, params: dict[str, str], expected: list[str]
) -> None:
    assert [log["message"] for log in await _app_logs(deployed, **params)] == expected


async def test_cursor_pages_through_past_logs_without_gaps(deployed: Running) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params = {**PAST, "limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await deployed.http.get(APP_LOGS, params=params)
        seen += [log["message"] for log in response.json()]
        cursor = response.headers.get(conventions.NEXT_CURSOR_HEADER)
        if cursor is None:
            break
    assert seen == [log["message"] for log in await _app_logs(deployed)]
    response = await deployed.http.get(APP_LOGS, params={**PAST, "cursor": "forged"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalidRequest"


async def test_past_app_logs_as_ndjson(deployed: Running) -> None:
    response = await deployed.http.get(APP_LOGS, params={**PAST, "level": "error"}, headers=NDJSON)
    assert response.headers["content-type"] == "application/x-ndjson"
    assert [orjson.loads(line)["message"] for line in response.text.splitlines()] == [
        "upstream failed"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("level", "loud"), ("since", "yesterday"), ("limit", "0"), ("order", "up")],
)
async def test_invalid_parameters_are_400(deployed: Running, name: str, value: str) -> None:
    response = await deployed.http.get(APP_LOGS, params={**PAST, name: value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalidRequest"
    assert name in body["message"]


async def test_real_time_ndjson_stream_survives_a_disconnect_and_ends_on_delete(
    deployed: Running,
) -> None:
    async with stream(deployed, APP_LOGS, headers=NDJSON, params={"level": "info,error"}) as (
        response,
        lines,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        await deployed.push(
            [Line("live one", T0 + 100), Line("noise", T0 + 101, level="DEBUG")], EAST
        )
        first = orjson.loads(await lines.next())
        assert first == {
            "time": "2023-11-14T22:13:20.000000100Z",
            "level": "info",
            "message": "live one",
            "region": "us-east",
        }
    # Away for a while: the client fills the gap with past logs since its last time, then
    # goes back to real time.
    await deployed.push([Line("while away", T0 + 200, level="ERROR")], WEST)
    gap = await _app_logs(deployed, since=first["time"], level="info,error")
    assert [log["message"] for log in gap] == ["live one", "while away"]
    async with stream(deployed, APP_LOGS, headers=NDJSON) as (_, lines):
        await deployed.push([Line("back live", T0 + 300)], WEST)
        assert orjson.loads(await lines.next())["message"] == "back live"
        await delete_workload(deployed, "functions", "hello")
        assert await lines.rest() == []


async def test_real_time_json_array_is_closed_when_the_deployment_is_deleted(
    deployed: Running,
) -> None:
    async with stream(deployed, APP_LOGS, params={"q": "live"}) as (response, _):
        assert response.headers["content-type"] == "application/json"
        chunks = response.aiter_bytes()
        body = bytearray(await asyncio.wait_for(anext(chunks), 10))
        await deployed.push([Line("live a", T0 + 100), Line("other", T0 + 101)], EAST)
        await deployed.push([Line("live b", T0 + 102)], WEST)
        while body.count(b"live") < 2:
            body += await asyncio.wait_for(anext(chunks), 10)
        await delete_workload(deployed, "functions", "hello")
        async for chunk in chunks:
            body += chunk
    assert [log["message"] for log in orjson.loads(bytes(body))] == ["live a", "live b"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "unauthorized"), ({"Authorization": "Bearer other"}, 403, "forbidden")],
)
async def test_auth_is_the_native_apis(
    make_server: ServerFactory, headers: dict[str, str], status: int, code: str
) -> None:
    server = await secured_server(make_server)
    assert (await server.register(headers=OPERATOR)).status_code == 200
    for url in (DEPLOYMENT, DEPLOYMENT + "/build_logs", APP_LOGS):
        response = await server.http.get(url, headers=headers)
        assert response.status_code == status
        assert response.json()["code"] == code
    assert (await server.http.get(DEPLOYMENT, headers=READER)).status_code == 200


async def test_rate_limit_is_429(make_server: ServerFactory) -> None:
    server = await make_server(limiter=rate_limited())
    await server.register()
    assert (await server.http.get(DEPLOYMENT)).status_code == 200
    response = await server.http.get(APP_LOGS)
    assert response.status_code == 429
    assert response.json()["code"] == "tooManyRequests"
