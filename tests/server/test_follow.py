"""follow=true over real HTTP: catch-up then live, resume, heartbeats, cut-offs, disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import httpx_sse
import orjson

from tailrace.server import streaming
from tests.server.conftest import ServerFactory
from tests.server.harness import T0, Line, Running

POD_URL = "/v1/namespaces/ns/pods/hello-abc/logs"
WORKLOAD_URL = "/v1/namespaces/ns/functions/hello/logs"
SSE = {"Accept": "text/event-stream"}
BOUND_S = 10.0


async def _take(
    events: AsyncIterator[httpx_sse.ServerSentEvent], count: int
) -> list[httpx_sse.ServerSentEvent]:
    async def take() -> list[httpx_sse.ServerSentEvent]:
        taken = []
        async for event in events:
            taken.append(event)
            if len(taken) == count:
                break
        return taken

    return await asyncio.wait_for(take(), BOUND_S)


async def _until_subscribed(server: Running, count: int = 1) -> None:
    assert server.ctx is not None
    for _ in range(500):
        if server.ctx.hub.open_subscriptions >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the follower never subscribed")


async def test_follow_sends_catch_up_then_live_without_gap_or_repeat(server: Running) -> None:
    await server.push([Line(f"before {i}", T0 + i) for i in range(3)])
    async with httpx_sse.aconnect_sse(
        server.http, "GET", POD_URL, params={"follow": "true"}, headers=SSE
    ) as source:
        events = source.aiter_sse()
        catch_up = await _take(events, 3)
        await server.push([Line(f"after {i}", T0 + 10 + i) for i in range(2)])
        live = await _take(events, 2)
    received = catch_up + live
    messages = [orjson.loads(e.data)["message"] for e in received]
    assert messages == ["before 0", "before 1", "before 2", "after 0", "after 1"]
    ids = [int(e.id) for e in received]
    assert ids == sorted(set(ids))
    assert all(e.id == orjson.loads(e.data)["id"] for e in received)


async def test_follow_with_tail_lines_catches_up_with_the_newest_only(server: Running) -> None:
    await server.push([Line(f"line {i}", T0 + i) for i in range(10)])
    async with httpx_sse.aconnect_sse(
        server.http, "GET", POD_URL, params={"follow": "true", "tailLines": "2"}, headers=SSE
    ) as source:
        events = source.aiter_sse()
        catch_up = await _take(events, 2)
        await server.push([Line("fresh", T0 + 100)])
        (live,) = await _take(events, 1)
    assert [orjson.loads(e.data)["message"] for e in catch_up] == ["line 8", "line 9"]
    assert orjson.loads(live.data)["message"] == "fresh"


async def test_last_event_id_resumes_from_the_buffer_without_gap_or_repeat(
    server: Running,
) -> None:
    await server.push([Line(f"line {i}", T0 + i) for i in range(5)])
    page = await server.http.get(POD_URL, headers={"Accept": "application/json"})
    ids = [r["id"] for r in page.json()["records"]]
    async with httpx_sse.aconnect_sse(
        server.http,
        "GET",
        POD_URL,
        params={"follow": "true"},
        headers={**SSE, "Last-Event-ID": ids[1]},
    ) as source:
        events = await _take(source.aiter_sse(), 3)
    assert [e.id for e in events] == ids[2:]
    assert all(e.event == "message" for e in events)


async def test_client_that_fell_out_of_the_buffer_gets_reset_then_the_rest(
    make_server: ServerFactory,
) -> None:
    server = await make_server(hub=streaming.Hub(ring_lines=3))
    await server.push([Line(f"line {i}", T0 + i) for i in range(10)])
    page = await server.http.get(POD_URL, headers={"Accept": "application/json"})
    ids = [r["id"] for r in page.json()["records"]]
    async with httpx_sse.aconnect_sse(
        server.http,
        "GET",
        POD_URL,
        params={"follow": "true"},
        headers={**SSE, "Last-Event-ID": ids[0]},
    ) as source:
        events = await _take(source.aiter_sse(), 10)
    assert events[0].event == "reset"
    assert orjson.loads(events[0].data)["lastEventId"] == ids[0]
    assert [e.id for e in events[1:]] == ids[1:]


async def test_heartbeats_keep_a_quiet_stream_alive(make_server: ServerFactory) -> None:
    server = await make_server(hub=streaming.Hub(heartbeat_s=0.05))
    async with server.http.stream(
        "GET", POD_URL, params={"follow": "true"}, headers=SSE
    ) as response:

        async def first_heartbeat() -> str:
            async for line in response.aiter_lines():
                if line.startswith(": heartbeat"):
                    return line
            return ""

        assert await asyncio.wait_for(first_heartbeat(), BOUND_S) == ": heartbeat"


async def test_slow_consumer_is_cut_off_with_a_reason(make_server: ServerFactory) -> None:
    server = await make_server(hub=streaming.Hub(queue_records=5))
    assert server.ctx is not None
    hub = server.ctx.hub
    big = "x" * 8192
    async with server.http.stream(
        "GET", POD_URL, params={"follow": "true"}, headers=SSE
    ) as response:
        await _until_subscribed(server)
        # The client reads nothing: socket buffers fill, the server's writes stall, the queue
        # overflows, and the follower is dropped while ingest carries on.
        for round_ in range(40):
            stored = await server.push([Line(big, T0 + round_ * 1000 + i) for i in range(200)])
            assert stored == 200
            if hub.slow_consumers_cut:
                break
        assert hub.slow_consumers_cut == 1
        tail = b""

        async def drain() -> None:
            nonlocal tail
            async for chunk in response.aiter_bytes():
                tail = (tail + chunk)[-4096:]

        await asyncio.wait_for(drain(), BOUND_S)
    assert b"event: error" in tail
    assert b'"reason":"slow-consumer"' in tail
    assert hub.open_subscriptions == 0
    assert server.registry.get_sample_value("tailrace_server_live_slow_consumers_total") == 1


async def test_client_disconnect_releases_the_subscription(server: Running) -> None:
    assert server.ctx is not None
    async with server.http.stream("GET", POD_URL, params={"follow": "true"}, headers=SSE):
        await _until_subscribed(server)
    for _ in range(500):
        if server.ctx.hub.open_subscriptions == 0:
            break
        await asyncio.sleep(0.01)
    assert server.ctx.hub.open_subscriptions == 0


async def test_deleting_the_workload_ends_its_streams(server: Running) -> None:
    await server.register()
    await server.push([Line("hello", T0)])
    async with httpx_sse.aconnect_sse(
        server.http, "GET", WORKLOAD_URL, params={"follow": "true"}, headers=SSE
    ) as source:
        events = source.aiter_sse()
        (first,) = await _take(events, 1)
        deleted = await server.http.delete("/v1/namespaces/ns/functions/hello")
        assert deleted.status_code == 200
        assert deleted.json()["streamsEnded"] == 1
        rest = await asyncio.wait_for(_rest(events), BOUND_S)
    assert orjson.loads(first.data)["message"] == "hello"
    assert [e.event for e in rest] == ["workload-deleted"]
    assert orjson.loads(rest[0].data)["reason"] == "workload-deleted"


async def _rest(
    events: AsyncIterator[httpx_sse.ServerSentEvent],
) -> list[httpx_sse.ServerSentEvent]:
    return [event async for event in events]


async def test_ndjson_follow_streams_one_record_per_line(server: Running) -> None:
    await server.push([Line("one", T0)])
    async with server.http.stream(
        "GET", POD_URL, params={"follow": "true"}, headers={"Accept": "application/x-ndjson"}
    ) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = response.aiter_lines()
        first = await asyncio.wait_for(anext(lines), BOUND_S)
        await server.push([Line("two", T0 + 1)])
        second = await asyncio.wait_for(anext(lines), BOUND_S)
    assert [orjson.loads(x)["message"] for x in (first, second)] == ["one", "two"]


async def test_text_follow_filters_live_records_like_the_query(server: Running) -> None:
    await server.push([Line("keep 1", T0), Line("skip 1", T0 + 1, level="DEBUG")])
    async with server.http.stream(
        "GET", POD_URL, params={"follow": "true", "level": "INFO", "q": "keep"}
    ) as response:
        lines = response.aiter_lines()
        first = await asyncio.wait_for(anext(lines), BOUND_S)
        await server.push([Line("skip 2", T0 + 2), Line("keep 2", T0 + 3)])
        second = await asyncio.wait_for(anext(lines), BOUND_S)
    assert (first, second) == ("keep 1", "keep 2")


async def test_bad_last_event_id_is_a_400(server: Running) -> None:
    response = await server.http.get(
        POD_URL, params={"follow": "true"}, headers={**SSE, "Last-Event-ID": "abc"}
    )
    assert response.status_code == 400
    assert response.json()["details"]["parameter"] == "Last-Event-ID"


_ = httpx  # the client type used through server.http


async def test_follower_joining_during_ingest_sees_every_record_exactly_once(
    server: Running,
) -> None:
    total_batches, per_batch = 30, 20
    started = asyncio.Event()

    async def ingest() -> None:
        for b in range(total_batches):
            await server.push([Line(f"b{b}-{i}", T0 + b * 100 + i) for i in range(per_batch)])
            if b == 5:
                started.set()
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(ingest())
    await started.wait()
    seen: list[str] = []
    async with server.http.stream(
        "GET", POD_URL, params={"follow": "true"}, headers={"Accept": "application/x-ndjson"}
    ) as response:

        async def read_all() -> None:
            async for line in response.aiter_lines():
                if line:
                    seen.append(orjson.loads(line)["message"])
                    if len(seen) == total_batches * per_batch:
                        return

        await asyncio.wait_for(read_all(), BOUND_S)
    await writer
    expected = [f"b{b}-{i}" for b in range(total_batches) for i in range(per_batch)]
    assert sorted(seen) == sorted(expected)
    assert len(set(seen)) == len(seen)
