"""Hyper Func `GET /logs/$name/$uuid`, line by line of seeds/000.

URL: the function name and its uuid (404 "no such function" when either does not match). Query:
`callid` (one call), `follow` (1/True/true or 0/False/false: stream), `tail` (all or a number).
Body: NDJSON events CALL, PENDING, RUNNING, FINISHED, FAILED with Time, Event, CallId,
ShortStdout, ShortStderr and Message. Status: 101 when the client asks for an upgrade (the raw
connection carries the events), 200 when it does not.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tailrace import demo
from tests.server.compat.conftest import (
    OPERATOR,
    READER,
    BuggyStore,
    ServerFactory,
    delete_workload,
    put_pod,
    rate_limited,
    secured_server,
    stream,
)
from tests.server.harness import T0, Line, Running, Source
from tests.support import processes

URL = "/logs/hello/uid-hello"
LABEL = "tailrace.dev/execution-id"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TERMINATED_1 = [
    {
        "name": "app",
        "restartCount": 0,
        "state": {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "finishedAt": "2023-11-14T22:14:00Z",
                "containerID": "containerd://c2",
            }
        },
    }
]


def _pod(call: str) -> dict[str, Any]:
    return {"uid": f"uid-{call}", "labels": {"app": "hello", LABEL: call}}


async def _events(server: Running, url: str = URL, **params: str) -> list[dict[str, Any]]:
    response = await server.http.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [orjson.loads(line) for line in response.text.splitlines()]


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["CallId"], e["Event"]) for e in events]


async def _finished_call(server: Running, call: str = "call-1") -> None:
    """One call as an execution pod: created, pending, running (prints), succeeded."""
    pod = f"hello-{call}"
    await put_pod(server, pod, phase="Pending", **_pod(call))
    await put_pod(server, pod, phase="Running", **_pod(call))
    await server.push([Line("HelloWorld", T0 + 5)], Source(pod=pod, pod_uid=f"uid-{call}"))
    await put_pod(server, pod, phase="Succeeded", **_pod(call))


async def _failed_call(server: Running, call: str = "call-2") -> None:
    pod = f"hello-{call}"
    await put_pod(server, pod, phase="Running", **_pod(call))
    source = Source(pod=pod, pod_uid=f"uid-{call}")
    await server.push([Line("Traceback: boom", T0 + 6, stream="stderr", level="ERROR")], source)
    await put_pod(server, pod, phase="Failed", statuses=TERMINATED_1, **_pod(call))


@pytest.fixture
async def function(live_server: Running) -> Running:
    assert (await live_server.register()).status_code == 200
    return live_server


async def test_an_execution_pod_gives_call_pending_running_finished(function: Running) -> None:
    await _finished_call(function)
    events = await _events(function)
    assert _summary(events) == [
        ("call-1", "CALL"),
        ("call-1", "PENDING"),
        ("call-1", "RUNNING"),
        ("call-1", "FINISHED"),
    ]
    assert all(TIME.match(e["Time"]) for e in events)
    assert events[0] == {"Time": events[0]["Time"], "Event": "CALL", "CallId": "call-1"}
    assert events[-1]["ShortStdout"] == "HelloWorld\n"
    assert "ShortStderr" not in events[-1]
    assert "ShortStdin" not in events[-1]  # the input of a call is not logged


async def test_a_failed_execution_pod_gives_failed_with_message_and_stderr(
    function: Running,
) -> None:
    await _failed_call(function)
    events = await _events(function)
    assert _summary(events) == [("call-2", "CALL"), ("call-2", "RUNNING"), ("call-2", "FAILED")]
    failed = events[-1]
    assert failed["Message"] == "Container app terminated with exit code 1 (Error)"
    assert failed["ShortStderr"] == "Traceback: boom\n"


async def test_calls_named_by_execution_id_in_json_output(function: Running) -> None:
    lines = [
        Line('{"msg":"start","executionId":"e-1"}', T0 + 1, execution_id="e-1"),
        Line('{"msg":"start","executionId":"e-2"}', T0 + 2, execution_id="e-2"),
        Line('{"msg":"done","executionId":"e-1","event":"FINISHED"}', T0 + 3, execution_id="e-1"),
        Line(
            '{"error":"bad input","executionId":"e-2","event":"FAILED"}',
            T0 + 4,
            stream="stderr",
            execution_id="e-2",
        ),
    ]
    await function.push(lines)
    events = await _events(function)
    assert _summary(events) == [
        ("e-1", "CALL"),
        ("e-1", "RUNNING"),
        ("e-2", "CALL"),
        ("e-2", "RUNNING"),
        ("e-1", "FINISHED"),
        ("e-2", "FAILED"),
    ]
    assert events[4]["ShortStdout"].startswith('{"msg":"start"')
    assert events[5]["Message"] == "bad input"


async def test_callid_and_tail(function: Running) -> None:
    await _finished_call(function)
    await _failed_call(function)
    assert _summary(await _events(function, callid="call-2")) == [
        ("call-2", "CALL"),
        ("call-2", "RUNNING"),
        ("call-2", "FAILED"),
    ]
    assert _summary(await _events(function, tail="3")) == [
        ("call-1", "FINISHED"),
        ("call-2", "RUNNING"),
        ("call-2", "FAILED"),
    ]
    assert await _events(function, tail="0") == []
    assert len(await _events(function, tail="all")) == 7
    assert await _events(function, callid="nobody") == []


async def test_the_documents_query_string_is_understood(function: Running) -> None:
    await _finished_call(function)
    await _failed_call(function)
    response = await function.http.get(URL + "?follow=0?callid=call-1")
    assert response.status_code == 200
    assert {orjson.loads(line)["CallId"] for line in response.text.splitlines()} == {"call-1"}


@pytest.mark.parametrize(
    "url", ["/logs/other/uid-hello", "/logs/hello/uid-other", "/logs/hello/hello"]
)
async def test_no_such_function_is_404(function: Running, url: str) -> None:
    response = await function.http.get(url)
    assert response.status_code == 404
    assert "no such function" in response.json()["message"]


@pytest.mark.parametrize(("name", "value"), [("follow", "yes please"), ("tail", "-3")])
async def test_invalid_values_are_400(function: Running, name: str, value: str) -> None:
    response = await function.http.get(URL, params={name: value})
    assert response.status_code == 400
    assert name in response.json()["message"]


@pytest.mark.parametrize("follow", ["1", "True", "true"])
async def test_follow_streams_new_events_with_200_when_no_upgrade_is_asked(
    function: Running, follow: str
) -> None:
    await _finished_call(function)
    async with stream(function, URL, params={"follow": follow, "tail": "1"}) as (response, lines):
        assert response.status_code == 200
        assert _summary([orjson.loads(await lines.next())]) == [("call-1", "FINISHED")]
        await _failed_call(function)
        events = [orjson.loads(line) for line in await lines.take(3)]
        assert _summary(events) == [("call-2", "CALL"), ("call-2", "RUNNING"), ("call-2", "FAILED")]
        assert events[-1]["Message"] == "Container app terminated with exit code 1 (Error)"


async def test_follow_through_a_disconnect_and_the_functions_deletion(function: Running) -> None:
    async with stream(function, URL, params={"follow": "1", "callid": "call-3"}) as (_, lines):
        await put_pod(function, "hello-call-3", phase="Pending", **_pod("call-3"))
        assert _summary([orjson.loads(line) for line in await lines.take(2)]) == [
            ("call-3", "CALL"),
            ("call-3", "PENDING"),
        ]
    # The call went on while nobody listened; asking again replays it, then follows.
    await put_pod(function, "hello-call-3", phase="Running", **_pod("call-3"))
    async with stream(function, URL, params={"follow": "true", "callid": "call-3"}) as (_, lines):
        assert [orjson.loads(line)["Event"] for line in await lines.take(3)] == [
            "CALL",
            "PENDING",
            "RUNNING",
        ]
        await put_pod(function, "hello-call-3", phase="Succeeded", **_pod("call-3"))
        assert orjson.loads(await lines.next())["Event"] == "FINISHED"
        await delete_workload(function, "functions", "hello")
        assert await lines.rest() == []


async def _raw_request(port: int, target: str, headers: dict[str, str]) -> bytes:
    """A Docker-style client: send the request, then read the raw connection to its end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode())
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


async def test_upgrade_is_101_with_events_on_the_raw_connection(tmp_path: Path) -> None:
    """Against `tailrace server` and a real agent, as `tailrace up` runs them."""
    server = processes.server_process(tmp_path)
    server.start()
    pods_dir = tmp_path / "pods"
    agent = processes.agent_process(tmp_path, pods_dir, server.grpc_addr)
    with processes.running(server, agent):
        await asyncio.to_thread(server.wait_ready)
        agent.start()
        function_uid = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            body = demo.workload_object("Function", "demo", "hello", function_uid, "hello")
            assert (await client.put("/v1/namespaces/demo/functions/hello", json=body)).is_success
            logs = demo.PodLogs(pods_dir, "demo", "hello-call-9", str(uuid.uuid4()))
            labels = {"app": "hello", LABEL: "call-9"}
            for phase in ("Pending", "Running"):
                pod = demo.pod_object(logs, labels, ["app"], phase=phase)
                assert (
                    await client.put(f"/v1/namespaces/demo/pods/{logs.pod}", json=pod)
                ).is_success
            logs.write("app", "HelloWorld")
            pod_url = f"/v1/namespaces/demo/pods/{logs.pod}/logs"

            async def collected() -> bool:
                return "HelloWorld" in (await client.get(pod_url)).text

            for _ in range(400):
                if await collected():
                    break
                await asyncio.sleep(0.05)
            pod = demo.pod_object(logs, labels, ["app"], phase="Succeeded")
            assert (await client.put(f"/v1/namespaces/demo/pods/{logs.pod}", json=pod)).is_success
            target = f"/logs/hello/{function_uid}?callid=call-9"
            upgrade = {"Connection": "Upgrade", "Upgrade": "tcp"}
            raw = await _raw_request(server.http_port, target, upgrade)
            head, _, body_bytes = raw.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode().split("\r\n")
            assert status_line == "HTTP/1.1 101 UPGRADED"
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
            assert headers["connection"] == "Upgrade"
            assert headers["upgrade"] == "tcp"
            events = [orjson.loads(line) for line in body_bytes.splitlines()]
            assert [e["Event"] for e in events] == ["CALL", "PENDING", "RUNNING", "FINISHED"]
            assert events[-1]["ShortStdout"] == "HelloWorld\n"
            # Without the upgrade headers the same request is an ordinary 200.
            plain = await client.get(target)
            assert plain.status_code == 200
            assert [orjson.loads(line) for line in plain.text.splitlines()] == events
            # Following over the upgraded connection: events as they happen, then the end.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
            follow = f"GET {target}&follow=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            writer.write((follow + "Upgrade: tcp\r\n\r\n").encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 101")
            while (await asyncio.wait_for(reader.readline(), 10)).strip():
                pass
            first = [orjson.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in range(4)]
            assert first == events
            deleted = await client.delete("/v1/namespaces/demo/functions/hello")
            assert deleted.is_success
            assert await asyncio.wait_for(reader.read(), 10) == b""  # the stream ends
            writer.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer other"}, 403), (READER, 200)],
)
async def test_auth_is_the_native_apis(
    make_server: ServerFactory, headers: dict[str, str], status: int
) -> None:
    server = await secured_server(make_server)
    assert (await server.register(headers=OPERATOR)).status_code == 200
    response = await server.http.get(URL, headers=headers)
    assert response.status_code == status
    if status != 200:
        assert set(response.json()) == {"message"}


async def test_rate_limit_is_429(make_server: ServerFactory) -> None:
    server = await make_server(limiter=rate_limited())
    await server.register()
    assert (await server.http.get(URL)).status_code == 200
    response = await server.http.get(URL, params={"follow": "1"})
    assert response.status_code == 429
    assert response.headers["retry-after"]


async def test_a_server_bug_is_500(make_server: ServerFactory, tmp_path: Path) -> None:
    store = BuggyStore(tmp_path / "buggy.db")
    server = await make_server(store=store)
    store.buggy = True
    response = await server.http.get(URL)
    assert response.status_code == 500
    assert set(response.json()) == {"message"}
