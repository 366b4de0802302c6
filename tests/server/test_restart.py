"""A server restarted on the same SQLite file serves everything it had, cursors included."""

from __future__ import annotations

import asyncio

import httpx_sse
import orjson

from tests.server.conftest import ServerFactory
from tests.server.harness import T0, Line, Source

URL = "/v1/namespaces/ns/functions/hello/logs"
JSON = {"Accept": "application/json"}


async def test_restart_keeps_records_workloads_and_cursors(make_server: ServerFactory) -> None:
    first = await make_server()
    await first.register()
    await first.push([Line(f"line {i}", T0 + i) for i in range(6)])
    page = (await first.http.get(URL, params={"limit": "3"}, headers=JSON)).json()
    before = (await first.http.get(URL, headers=JSON)).json()["records"]
    await first.stop()

    second = await make_server()
    after = (await second.http.get(URL, headers=JSON)).json()["records"]
    assert after == before
    rest = await second.http.get(
        URL, params={"limit": "3", "cursor": page["nextCursor"]}, headers=JSON
    )
    assert [r["message"] for r in rest.json()["records"]] == ["line 3", "line 4", "line 5"]
    # A new file on the agent's side (the old source's offsets are already acknowledged).
    assert await second.push([Line("after restart", T0 + 10)], Source(key="new-file")) == 1
    newest = (await second.http.get(URL, params={"tailLines": "1"}, headers=JSON)).json()
    assert int(newest["records"][0]["id"]) > int(before[-1]["id"])


async def test_resume_after_restart_continues_from_the_store(make_server: ServerFactory) -> None:
    first = await make_server()
    await first.register()
    await first.push([Line(f"line {i}", T0 + i) for i in range(4)])
    ids = [r["id"] for r in (await first.http.get(URL, headers=JSON)).json()["records"]]
    await first.stop()

    second = await make_server()
    async with httpx_sse.aconnect_sse(
        second.http,
        "GET",
        URL,
        params={"follow": "true"},
        headers={"Accept": "text/event-stream", "Last-Event-ID": ids[1]},
    ) as source:
        events = source.aiter_sse()

        async def take(count: int) -> list[httpx_sse.ServerSentEvent]:
            return [await anext(events) for _ in range(count)]

        reset, *replayed = await asyncio.wait_for(take(3), 10)
        await second.push([Line("live", T0 + 10)], Source(key="new-file"))
        (live,) = await asyncio.wait_for(take(1), 10)
    assert reset.event == "reset"
    assert [e.id for e in replayed] == ids[2:]
    assert orjson.loads(live.data)["message"] == "live"
