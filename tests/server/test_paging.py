"""Cursor paging over HTTP: equal timestamps never skip or repeat, cursors are bound and signed."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.harness import T0, Line, Running, Source

JSON = {"Accept": "application/json"}
_pods = itertools.count()


async def _page_all(server: Running, url: str, **params: str) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = await server.http.get(url, params=query, headers=JSON)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["records"])
        cursor = body["nextCursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


async def test_paging_across_many_records_sharing_one_timestamp(server: Running) -> None:
    await server.push([Line(f"same {i}", T0) for i in range(250)])
    await server.push([Line(f"later {i}", T0 + 1) for i in range(50)])
    url = "/v1/namespaces/ns/pods/hello-abc/logs"
    asc = await _page_all(server, url, limit="7")
    assert [r["message"] for r in asc] == [f"same {i}" for i in range(250)] + [
        f"later {i}" for i in range(50)
    ]
    desc = await _page_all(server, url, limit="13", order="desc")
    assert [r["id"] for r in desc] == [r["id"] for r in reversed(asc)]


async def test_cursor_from_another_query_is_refused(server: Running) -> None:
    await server.push([Line(f"line {i}", T0 + i) for i in range(5)])
    url = "/v1/namespaces/ns/pods/hello-abc/logs"
    first = await server.http.get(url, params={"limit": "2"}, headers=JSON)
    cursor = first.json()["nextCursor"]
    other = await server.http.get(url, params={"limit": "2", "cursor": cursor, "q": "line"})
    assert other.status_code == 400
    assert "different query" in other.json()["details"]["reason"]
    other_pod = await server.http.get(
        "/v1/namespaces/ns/pods/other/logs", params={"cursor": cursor}
    )
    assert other_pod.status_code == 400
    flipped = await server.http.get(url, params={"cursor": cursor, "order": "desc"})
    assert flipped.status_code == 400
    assert "order=asc" in flipped.json()["details"]["reason"]


async def test_tampered_cursor_is_refused(server: Running) -> None:
    await server.push([Line(f"line {i}", T0 + i) for i in range(5)])
    url = "/v1/namespaces/ns/pods/hello-abc/logs"
    first = await server.http.get(url, params={"limit": "2"}, headers=JSON)
    cursor = first.json()["nextCursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    response = await server.http.get(url, params={"limit": "2", "cursor": tampered})
    assert response.status_code == 400
    assert response.json()["details"]["parameter"] == "cursor"


async def test_cursor_with_last_window_stays_valid_on_the_next_page(server: Running) -> None:
    import time

    now = time.time_ns()
    await server.push([Line(f"line {i}", now - 1000 + i) for i in range(5)])
    url = "/v1/namespaces/ns/pods/hello-abc/logs"
    records = await _page_all(server, url, limit="2", last="1h")
    assert [r["message"] for r in records] == [f"line {i}" for i in range(5)]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3), min_size=0, max_size=40),
    limit=st.integers(min_value=1, max_value=9),
    order=st.sampled_from(["asc", "desc"]),
)
async def test_paging_returns_each_record_exactly_once(
    server: Running, offsets: list[int], limit: int, order: str
) -> None:
    pod = f"prop-{next(_pods)}"
    if offsets:
        await server.push(
            [Line(f"m{i}", T0 + offset) for i, offset in enumerate(offsets)], Source(pod=pod)
        )
    records = await _page_all(
        server, f"/v1/namespaces/ns/pods/{pod}/logs", limit=str(limit), order=order
    )
    messages = [r["message"] for r in records]
    assert sorted(messages) == sorted(f"m{i}" for i in range(len(offsets)))
    keys = [(r["time"], int(r["id"])) for r in records]
    assert keys == sorted(keys, reverse=order == "desc")
