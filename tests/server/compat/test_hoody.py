"""Hoody proxy logs, line by line of seeds/004.

`GET /api/proxy-logs/_logs` searches request/response/event entries with limit, offset,
projectId, containerId, serviceName, level, includeRequestBody, includeResponseBody, last,
afterId, cursor, kind, method and source, answering `{entries, total, limit, offset}`;
`/_logs/stats` counts by level, project, container and service; `/_logs/stream` is SSE where
every frame carries `id: <ringSeq>`, `Last-Event-ID` resumes from the 5,000-entry ring,
`event: reset` follows a restart, `event: scope-destroyed` precedes the close when the container
goes away, and `:` heartbeats keep it alive. 403 and 429 answer `{statusCode, error, message}`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tailrace.server import auth, ratelimit
from tailrace.server.storage import base
from tailrace.server.surfaces import hoody
from tests.server.compat.conftest import LineReader, ServerFactory, delete_workload, stream
from tests.server.harness import T0, Line, Running, Source

LOGS = "/api/proxy-logs/_logs"
STATS = LOGS + "/stats"
STREAM = LOGS + "/stream"
API = Source(namespace="shop", pod="user-api-1", container="api", workload="Function/user-api")
WORKER = Source(namespace="shop", pod="billing-1", container="worker", workload="Function/billing")
HOOK = Source(namespace="blog", pod="webhook-1", container="hook", workload="Function/webhook")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

CREATED = (
    '{"level":"info","msg":"POST /v1/users 201","method":"POST","url":"/v1/users","status":201,'
    '"clientIp":"203.0.113.42","durationMs":102,"requestBody":"{\\"name\\":\\"ada\\"}",'
    '"responseBody":"{\\"id\\":1}"}'
)
INCOMING = '{"msg":"incoming","method":"GET","url":"/v1/users"}'
CREATED_WITHOUT_BODIES = orjson.dumps(
    {k: v for k, v in orjson.loads(CREATED).items() if not k.endswith("Body")}
).decode()
EDGE = '{"msg":"edge hit","source":"edge","method":"GET","url":"/","status":200}'


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    comment: bool = False

    def json(self) -> dict[str, Any]:
        return dict(orjson.loads("\n".join(self.data)))


async def next_frame(lines: LineReader, skip_heartbeats: bool = True) -> Frame:
    """The next SSE frame (a `:` comment counts as a heartbeat frame)."""
    frame = Frame()
    while True:
        line = await lines.next()
        if line == "":
            if frame.comment and skip_heartbeats:
                frame = Frame()
                continue
            if frame.data or frame.event or frame.comment:
                return frame
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            frame.comment = True
        elif name == "id":
            frame.id = value
        elif name == "event":
            frame.event = value
        elif name == "data":
            frame.data.append(value)


async def _register(server: Running, namespace: str, name: str, container: str) -> None:
    spec = {"selector": {"matchLabels": {"app": name}}, "logs": {"minLevel": "DEBUG"}}
    response = await server.register(name=name, namespace=namespace, spec=spec)
    assert response.status_code == 200, response.text
    pod = {
        "metadata": {
            "name": f"{name}-1",
            "namespace": namespace,
            "uid": f"uid-{name}-1",
            "labels": {"app": name},
        },
        "spec": {"containers": [{"name": container, "image": "x"}]},
        "status": {"phase": "Running"},
    }
    response = await server.http.put(f"/v1/namespaces/{namespace}/pods/{name}-1", json=pod)
    assert response.status_code == 200, response.text


async def _load(server: Running) -> None:
    await _register(server, "shop", "user-api", "api")
    await _register(server, "shop", "billing", "worker")
    await _register(server, "blog", "webhook", "hook")
    http_attrs = {"method": "POST", "url": "/v1/users", "status": 201}
    await server.push(
        [
            Line(CREATED, T0 + 1_000_000, attrs=http_attrs, execution_id="call-1"),
            Line(INCOMING, T0 + 2_000_000, attrs={"method": "GET", "url": "/v1/users"}),
            Line(EDGE, T0 + 3_000_000, attrs={"method": "GET", "url": "/", "status": 200}),
            Line("cache warmed", T0 + 4_000_000),
            Line("disk low", T0 + 5_000_000, level="WARN"),
            Line("crash", T0 + 6_000_000, level="ERROR", stream="stderr"),
            Line("verbose", T0 + 7_000_000, level="DEBUG"),
        ],
        API,
    )
    await server.push([Line("invoice sent", T0 + 8_000_000)], WORKER)
    await server.push([Line("hook fired", T0 + 9_000_000, level="WARN")], HOOK)


@pytest.fixture
async def loaded(live_server: Running) -> Running:
    await _load(live_server)
    return live_server


async def _query(server: Running, **params: str) -> dict[str, Any]:
    response = await server.http.get(LOGS, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _messages(body: dict[str, Any]) -> list[str]:
    return [entry["data"]["message"] for entry in body["entries"]]


async def _app(server: Running, **params: str) -> list[str]:
    """Messages of the entries, without the pods' lifecycle records (events too)."""
    body = await _query(server, **params)
    return [e["data"]["message"] for e in body["entries"] if e["data"]["stream"] != "system"]


async def test_entries_have_every_documented_field(loaded: Running) -> None:
    body = await _query(loaded, containerId="api", kind="response", method="POST")
    assert set(body) == {"entries", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (1, 200, 0)
    created = body["entries"][0]
    assert set(created) == {
        "id",
        "traceId",
        "tsMs",
        "tsIso",
        "kind",
        "level",
        "projectId",
        "containerId",
        "serviceName",
        "method",
        "url",
        "clientIp",
        "status",
        "data",
        "source",
    }
    assert isinstance(created["id"], int)
    assert uuid.UUID(created["traceId"])
    assert created["tsMs"] == (T0 + 1_000_000) // 1_000_000
    assert created["tsIso"] == "2023-11-14T22:13:20.001Z"
    assert ISO_MS.match(created["tsIso"])
    assert created["kind"] == "response"
    assert created["level"] == "info"
    assert created["projectId"] == "shop"
    assert created["containerId"] == "api"
    assert created["serviceName"] == "user-api"
    assert (created["method"], created["url"], created["status"]) == ("POST", "/v1/users", 201)
    assert created["clientIp"] == "203.0.113.42"
    assert created["data"]["durationMs"] == 102
    assert created["source"] == "backend"


async def test_access_log_lines_are_requests_and_responses_the_rest_events(
    loaded: Running,
) -> None:
    kinds = {e["data"]["message"]: e["kind"] for e in (await _query(loaded))["entries"]}
    assert kinds[INCOMING] == "request"
    assert kinds[EDGE] == "response"
    assert kinds["cache warmed"] == "event"
    assert kinds["invoice sent"] == "event"


async def test_bodies_are_left_out_unless_asked_for(loaded: Running) -> None:
    params = {"containerId": "api", "kind": "response", "method": "POST"}
    plain = (await _query(loaded, **params))["entries"][0]["data"]
    assert "requestBody" not in plain
    assert "responseBody" not in plain
    assert "ada" not in plain["message"]
    both = await _query(loaded, includeRequestBody="true", includeResponseBody="true", **params)
    data = both["entries"][0]["data"]
    assert data["requestBody"] == '{"name":"ada"}'
    assert data["responseBody"] == '{"id":1}'
    only_request = await _query(loaded, includeRequestBody="true", **params)
    assert "responseBody" not in only_request["entries"][0]["data"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"projectId": "blog"}, ["hook fired"]),
        ({"containerId": "worker"}, ["invoice sent"]),
        ({"serviceName": "billing"}, ["invoice sent"]),
        ({"projectId": "shop", "level": "warn,error"}, ["disk low", "crash"]),
        ({"level": "debug"}, ["verbose"]),
        ({"containerId": "api", "kind": "request"}, [INCOMING]),
        ({"containerId": "api", "kind": "event"}, ["cache warmed", "disk low", "crash", "verbose"]),
        ({"method": "get"}, [INCOMING, EDGE]),
        ({"source": "edge"}, [EDGE]),
        ({"source": "backend", "containerId": "hook"}, ["hook fired"]),
        (
            {"containerId": "api", "limit": "2"},
            [CREATED_WITHOUT_BODIES, INCOMING],
        ),
        ({"containerId": "api", "limit": "2", "offset": "2"}, [EDGE, "cache warmed"]),
        ({"containerId": "api", "last": "2"}, ["crash", "verbose"]),
    ],
)
async def test_filters(loaded: Running, params: dict[str, str], expected: list[str]) -> None:
    assert await _app(loaded, **params) == expected


async def test_total_counts_every_match_whatever_the_page(loaded: Running) -> None:
    body = await _query(loaded, projectId="shop", level="info", limit="1", offset="1")
    assert body["total"] == len((await _query(loaded, projectId="shop", level="info"))["entries"])
    assert (body["limit"], body["offset"]) == (1, 1)
    assert len(body["entries"]) == 1
    assert (await _query(loaded, method="GET", limit="1"))["total"] == 2


async def test_after_id_is_an_ascending_row_cursor(loaded: Running) -> None:
    every = (await _query(loaded, containerId="api"))["entries"]
    after = await _query(loaded, containerId="api", afterId=str(every[2]["id"]))
    assert [e["id"] for e in after["entries"]] == [e["id"] for e in every[3:]]


async def test_signed_cursor_pages_without_gaps_and_a_forged_one_expires(
    loaded: Running,
) -> None:
    seen: list[int] = []
    params = {"projectId": "shop", "limit": "3"}
    body = await _query(loaded, **params)
    while True:
        seen += [e["id"] for e in body["entries"]]
        if "nextCursor" not in body:
            break
        body = await _query(loaded, cursor=body["nextCursor"], **params)
    assert seen == [e["id"] for e in (await _query(loaded, projectId="shop"))["entries"]]
    response = await loaded.http.get(LOGS, params={"cursor": "bm90LXNpZ25lZA"})
    assert response.status_code == 410
    assert response.json() == {"__trailer": True, "error": "snapshot_expired", "status": 410}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("offset", "-1"),
        ("last", "x"),
        ("afterId", "abc"),
        ("kind", "trace"),
        ("source", "cdn"),
        ("level", "loud"),
        ("includeRequestBody", "maybe"),
    ],
)
async def test_invalid_parameters_are_400(loaded: Running, name: str, value: str) -> None:
    response = await loaded.http.get(LOGS, params={name: value})
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert body["error"] == "Bad Request"
    assert name in body["message"]


async def test_stats_count_by_level_project_container_and_service(loaded: Running) -> None:
    response = await loaded.http.get(STATS)
    assert response.status_code == 200
    stats = response.json()
    assert set(stats) == {"total", "byLevel", "byProject", "byContainer", "byService"}
    assert stats["total"] == sum(stats["byProject"].values())
    assert stats["byProject"]["blog"] == 1
    assert stats["byContainer"]["api"] == 7
    assert stats["byService"] == {"user-api": 7, "billing": 1, "webhook": 1}
    assert stats["byLevel"]["warn"] == 2
    assert stats["byLevel"]["debug"] == 1
    assert set(stats["byLevel"]) <= {"debug", "info", "warn", "error"}


async def test_stream_frames_carry_ring_seq_ids_and_json_entries(loaded: Running) -> None:
    async with stream(loaded, STREAM, params={"projectId": "shop"}) as (response, lines):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["connection"] == "keep-alive"
        await loaded.push([Line("live 1", T0 + 10**9), Line("live 2", T0 + 10**9 + 1)], API)
        await loaded.push([Line("elsewhere", T0 + 10**9 + 2)], HOOK)
        await loaded.push([Line("live 3", T0 + 10**9 + 3)], WORKER)
        frames = [await next_frame(lines) for _ in range(3)]
        assert [f.json()["data"]["message"] for f in frames] == ["live 1", "live 2", "live 3"]
        seqs = [int(f.id or "") for f in frames]
        assert seqs[0] < seqs[1] < seqs[2]
        assert frames[0].json()["kind"] == "event"
        assert frames[0].json()["projectId"] == "shop"


async def test_stream_filters_by_container_kind_and_level(loaded: Running) -> None:
    params = {"containerId": "api", "kind": "event", "level": "error"}
    async with stream(loaded, STREAM, params=params) as (_, lines):
        await loaded.push(
            [
                Line(INCOMING, T0 + 10**9, attrs={"method": "GET", "url": "/"}, level="ERROR"),
                Line("warn only", T0 + 10**9 + 1, level="WARN"),
                Line("boom", T0 + 10**9 + 2, level="ERROR"),
            ],
            API,
        )
        await loaded.push([Line("other boom", T0 + 10**9 + 3, level="ERROR")], WORKER)
        await loaded.push([Line("boom 2", T0 + 10**9 + 4, level="ERROR")], API)
        assert [(await next_frame(lines)).json()["data"]["message"] for _ in range(2)] == [
            "boom",
            "boom 2",
        ]


async def test_heartbeats_are_colon_comments(loaded: Running) -> None:
    async with stream(loaded, STREAM) as (_, lines):
        frame = await next_frame(lines, skip_heartbeats=False)
        assert frame.comment
        assert frame.data == []
        assert frame.id is None


async def test_last_event_id_resumes_from_the_ring_without_gap_or_repeat(
    loaded: Running,
) -> None:
    async with stream(loaded, STREAM, params={"containerId": "api"}) as (_, lines):
        await loaded.push([Line("one", T0 + 10**9), Line("two", T0 + 10**9 + 1)], API)
        first = await next_frame(lines)
        assert first.json()["data"]["message"] == "one"
    # Disconnected after "one": "two" and "three" are in the ring.
    await loaded.push([Line("three", T0 + 10**9 + 2)], API)
    headers = {"Last-Event-ID": first.id or ""}
    async with stream(loaded, STREAM, params={"containerId": "api"}, headers=headers) as (
        _,
        lines,
    ):
        replayed = [await next_frame(lines) for _ in range(2)]
        assert [f.json()["data"]["message"] for f in replayed] == ["two", "three"]
        await loaded.push([Line("four", T0 + 10**9 + 3)], API)
        live = await next_frame(lines)
        assert live.json()["data"]["message"] == "four"
        assert [int(f.id or "") for f in [first, *replayed, live]] == sorted(
            int(f.id or "") for f in [first, *replayed, live]
        )


async def test_reset_after_a_restart_and_seqs_restart_with_a_wide_margin(
    loaded: Running,
) -> None:
    async with stream(loaded, STREAM) as (_, lines):
        await loaded.push([Line("before restart", T0 + 10**9)], API)
        old = await next_frame(lines)
    await loaded.stop()
    await loaded.start()
    headers = {"Last-Event-ID": old.id or ""}
    async with stream(loaded, STREAM, headers=headers) as (response, lines):
        assert response.status_code == 200
        reset = await next_frame(lines)
        assert reset.event == "reset"
        assert reset.json()["lastEventId"] == old.id
        await loaded.push([Line("after restart", T0 + 10**9 + 1)], API)
        new = await next_frame(lines)
        assert new.json()["data"]["message"] == "after restart"
        assert int(new.id or "") >= int(old.id or "") + 10_000


async def test_an_id_the_ring_never_gave_is_answered_with_reset(loaded: Running) -> None:
    async with stream(loaded, STREAM, headers={"Last-Event-ID": "12345"}) as (_, lines):
        assert (await next_frame(lines)).event == "reset"


def test_a_ring_that_lost_track_of_records_resumes_no_earlier_seq() -> None:
    def record(record_id: int) -> base.StoredRecord:
        return base.StoredRecord(T0, "shop", "p", "api", "stdout", "INFO", "m", id=record_id)

    ring = hoody.Ring(T0)
    ring.publish([record(1), record(2)])
    last = ring.last_seq
    assert [r.id for _, r in ring.after(last - 1) or []] == [2]
    ring.lose_track()  # a replica nobody followed did not read the records stored meanwhile
    assert ring.after(last) is None
    ring.publish([record(9)])
    assert [r.id for _, r in ring.after(ring.last_seq - 1) or []] == [9]


async def test_scope_destroyed_then_close_when_the_container_goes_away(
    loaded: Running,
) -> None:
    async with stream(loaded, STREAM, params={"containerId": "worker"}) as (_, lines):
        await loaded.push([Line("working", T0 + 10**9)], WORKER)
        assert (await next_frame(lines)).json()["data"]["message"] == "working"
        await delete_workload(loaded, "functions", "user-api", namespace="shop")  # not ours
        await loaded.push([Line("still working", T0 + 10**9 + 1)], WORKER)
        assert (await next_frame(lines)).json()["data"]["message"] == "still working"
        await delete_workload(loaded, "functions", "billing", namespace="shop")
        destroyed = await next_frame(lines)
        assert destroyed.event == "scope-destroyed"
        assert destroyed.json()["containerId"] == "worker"
        assert await lines.rest() == []


async def test_a_project_wide_stream_outlives_a_deleted_workload(loaded: Running) -> None:
    async with stream(loaded, STREAM, params={"projectId": "shop"}) as (_, lines):
        await delete_workload(loaded, "functions", "billing", namespace="shop")
        await loaded.push([Line("still here", T0 + 10**9)], API)
        frame = await next_frame(lines)
        assert frame.event is None
        assert frame.json()["data"]["message"] == "still here"


async def _with_tokens(make_server: ServerFactory, **options: Any) -> Running:
    readers = auth.TokenTable.parse("shop-reader shop\nadmin *\n")
    ingesters = auth.TokenTable.parse("ingest *\n")
    server = await make_server(
        authorizer=auth.Authorizer(readers=readers, ingesters=ingesters),
        ingest_token="ingest",
        **options,
    )
    return server


@pytest.mark.parametrize("url", [LOGS, STATS, STREAM])
@pytest.mark.parametrize("token", [None, "wrong"])
async def test_missing_or_invalid_token_is_403(
    make_server: ServerFactory, url: str, token: str | None
) -> None:
    server = await _with_tokens(make_server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await server.http.get(url, headers=headers)
    assert response.status_code == 403
    body = response.json()
    assert body["statusCode"] == 403
    assert body["error"] == "Forbidden"
    assert "token" in body["message"].lower()


async def test_a_scoped_token_is_confined_to_its_project(make_server: ServerFactory) -> None:
    server = await _with_tokens(make_server)
    await server.push([Line("shop line", T0)], API)
    await server.push([Line("blog line", T0)], HOOK)
    shop = {"Authorization": "Bearer shop-reader"}
    body = (await server.http.get(LOGS, headers=shop)).json()
    assert [e["data"]["message"] for e in body["entries"]] == ["shop line"]
    denied = await server.http.get(LOGS, params={"projectId": "blog"}, headers=shop)
    assert denied.status_code == 403
    assert denied.json()["error"] == "Forbidden"
    stats = (await server.http.get(STATS, headers=shop)).json()
    assert stats["byProject"] == {"shop": 1}
    admin = (await server.http.get(STATS, headers={"Authorization": "Bearer admin"})).json()
    assert admin["byProject"] == {"shop": 1, "blog": 1}


async def test_rate_limit_is_429_with_hoody_body_and_counted(make_server: ServerFactory) -> None:
    server = await make_server(limiter=ratelimit.RateLimiter(0.01, 2))
    assert (await server.http.get(LOGS)).status_code == 200
    assert (await server.http.get(STATS)).status_code == 200
    response = await server.http.get(STREAM)
    assert response.status_code == 429
    assert response.headers["retry-after"]
    body = response.json()
    assert body["statusCode"] == 429
    assert body["error"] == "Too Many Requests"
    assert body["message"]
    metrics = (await server.http.get("/metrics")).text
    assert 'tailrace_server_requests_total{code="200",route="/api/proxy-logs/_logs"} 1.0' in metrics
    assert "tailrace_server_rate_limited_total 1.0" in metrics
