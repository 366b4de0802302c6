"""Feldera `GET /v0/pipelines/{pipeline_name}/logs`, line by line of seeds/002.

The stream catches up with the per-pipeline circular buffer (limited in bytes and in lines,
whichever is reached first), then pushes new lines as they come; it ends when the pipeline is
deleted; 404/500/503 answer Feldera's ErrorResponse `{message, error_code, details}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailrace.server import auth
from tests.server.compat.conftest import BuggyStore, ServerFactory, delete_workload, stream
from tests.server.harness import T0, Line, Running, Source

URL = "/v0/pipelines/wordcount/logs"
PIPELINE = Source(pod="wordcount-0", container="runner", workload="Pipeline/wordcount")


async def _register(server: Running, ring: dict[str, Any] | None = None) -> None:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "wordcount"}}}
    if ring is not None:
        spec["logs"] = {"ringBuffer": ring}
    response = await server.register(kind="Pipeline", name="wordcount", spec=spec)
    assert response.status_code == 200, response.text


async def _push(server: Running, *messages: str, offset_ns: int = 0) -> None:
    lines = [Line(m, T0 + offset_ns + i) for i, m in enumerate(messages)]
    assert await server.push(lines, PIPELINE) == len(messages)


async def test_stream_catches_up_then_follows_as_text_plain(live_server: Running) -> None:
    await _register(live_server)
    await _push(live_server, "pipeline started", "step 1 done")
    async with stream(live_server, URL) as (response, lines):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert await lines.take(2) == ["pipeline started", "step 1 done"]
        await _push(live_server, "step 2 done", offset_ns=10)
        assert await lines.next() == "step 2 done"


async def test_catch_up_is_bounded_by_the_buffer_line_count(live_server: Running) -> None:
    await _register(live_server, ring={"lines": 3, "bytes": "1Mi"})
    await _push(live_server, *(f"line {i}" for i in range(10)))
    async with stream(live_server, URL) as (_, lines):
        assert await lines.take(3) == ["line 7", "line 8", "line 9"]
        await _push(live_server, "line 10", offset_ns=100)
        assert await lines.next() == "line 10"


async def test_catch_up_is_bounded_by_the_buffer_bytes_whichever_comes_first(
    live_server: Running,
) -> None:
    # 1 KiB holds two 400-byte lines (plus newlines), not three; the line limit is far away.
    await _register(live_server, ring={"lines": 1000, "bytes": "1Ki"})
    await _push(live_server, *(f"{i}" * 400 for i in range(5)))
    async with stream(live_server, URL) as (_, lines):
        assert await lines.take(2) == ["3" * 400, "4" * 400]
        await _push(live_server, "after", offset_ns=100)
        assert await lines.next() == "after"


async def test_stream_ends_when_the_pipeline_is_deleted(live_server: Running) -> None:
    await _register(live_server)
    await _push(live_server, "running")
    async with stream(live_server, URL) as (_, lines):
        assert await lines.next() == "running"
        await delete_workload(live_server, "pipelines", "wordcount")
        assert await lines.rest() == []
    response = await live_server.http.get(URL)
    assert response.status_code == 404


async def test_a_client_that_lost_the_stream_asks_again_and_catches_up(
    live_server: Running,
) -> None:
    await _register(live_server)
    await _push(live_server, "a", "b")
    async with stream(live_server, URL) as (_, lines):
        assert await lines.take(2) == ["a", "b"]
    # Disconnected; lines written meanwhile are in the buffer the next request catches up from.
    await _push(live_server, "c", "d", offset_ns=10)
    async with stream(live_server, URL) as (_, lines):
        assert await lines.take(4) == ["a", "b", "c", "d"]
        await _push(live_server, "e", offset_ns=20)
        assert await lines.next() == "e"
        await delete_workload(live_server, "pipelines", "wordcount")
        assert await lines.rest() == []


async def test_unknown_pipeline_is_404_with_feldera_error_body(server: Running) -> None:
    response = await server.http.get("/v0/pipelines/non-existent-pipeline/logs")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "message": "Unknown pipeline name 'non-existent-pipeline'",
        "error_code": "UnknownPipelineName",
        "details": {"pipeline_name": "non-existent-pipeline"},
    }


async def test_a_function_is_not_a_pipeline(server: Running) -> None:
    await server.register(kind="Function", name="wordcount")
    response = await server.http.get(URL)
    assert response.status_code == 404
    assert response.json()["error_code"] == "UnknownPipelineName"


async def test_pipeline_is_also_found_by_its_uid(live_server: Running) -> None:
    await _register(live_server)
    await _push(live_server, "by uid")
    async with stream(live_server, "/v0/pipelines/uid-wordcount/logs") as (response, lines):
        assert response.status_code == 200
        assert await lines.next() == "by uid"


async def test_store_unavailable_is_503_with_feldera_error_body(server: Running) -> None:
    await _register(server)
    assert server.ctx is not None
    await server.ctx.store.close()
    response = await server.http.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"message", "error_code", "details"}
    assert body["error_code"] == "ServiceUnavailable"


@pytest.mark.parametrize(
    ("header", "status"), [(None, 401), ("Bearer wrong", 401), ("Bearer other-ns", 403)]
)
async def test_bearer_token_is_required_like_the_native_api(
    make_server: ServerFactory, header: str | None, status: int
) -> None:
    tokens = auth.TokenTable.parse("reader ns\nother-ns elsewhere\n")
    ingesters = auth.TokenTable.parse("ingest *\n")
    server = await make_server(
        authorizer=auth.Authorizer(readers=tokens, ingesters=ingesters), ingest_token="ingest"
    )
    operator = {"Authorization": "Bearer ingest"}
    spec = {"selector": {"matchLabels": {"app": "wordcount"}}}
    registered = await server.register("Pipeline", "wordcount", spec=spec, headers=operator)
    assert registered.status_code == 200
    await _push(server, "secret")
    headers = {"Authorization": header} if header else {}
    response = await server.http.get(URL, headers=headers)
    assert response.status_code == status
    assert set(response.json()) == {"message", "error_code", "details"}
    async with stream(server, URL, headers={"Authorization": "Bearer reader"}) as (ok, lines):
        assert ok.status_code == 200
        assert await lines.next() == "secret"


async def test_a_server_bug_is_500_with_feldera_error_body(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    store = BuggyStore(tmp_path / "buggy.db")
    server = await make_server(store=store)
    store.buggy = True
    response = await server.http.get(URL)
    assert response.status_code == 500
    body = response.json()
    assert body["error_code"] == "InternalServerError"
    assert set(body) == {"message", "error_code", "details"}
