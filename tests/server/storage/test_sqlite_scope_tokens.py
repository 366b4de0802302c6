"""Scoped searches through the FTS5 scope tokens find exactly what the reference store finds."""

from __future__ import annotations

from pathlib import Path

from tailrace.server.storage import base, memory, sqlite
from tests.server.storage import samples


async def test_a_message_holding_a_scope_token_widens_no_search(tmp_path: Path) -> None:
    store = sqlite.SQLiteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        sent = [
            samples.record("plain words", pod="pod-1"),
            samples.record("odd \ue0002 token", pod="pod-1"),
            samples.record("other words", pod="pod-2"),
        ]
        await store.append([samples.batch("s", sent)])
        assert [r.id for r in await store.query(base.Query(text="words"))] == [1, 3]
        pod_2 = base.Query(namespace="ns", pod="pod-2", text="words")
        assert [r.id for r in await store.query(pod_2)] == [3]
        assert await store.query(base.Query(namespace="ns", pod="pod-2", text="odd")) == []
        assert await store.query(base.Query(text="2")) == []
    finally:
        await store.close()


async def test_a_pod_of_many_workloads_is_searched_without_naming_them(tmp_path: Path) -> None:
    reference = memory.MemoryStore()
    candidate = sqlite.SQLiteStore(str(tmp_path / "t.db"))
    sent = [
        samples.record(
            f"job {i} refused" if i % 4 == 0 else f"job {i} done",
            ts_ns=samples.T0 + (i * 7919) % 100,
            pod="shared",
            kind="Function",
            workload=f"w{i % 12}",
        )
        for i in range(240)
    ]
    for store in (reference, candidate):
        await store.open()
        await store.append([samples.batch("s", sent)])
    try:
        for query in (
            base.Query(namespace="ns", pod="shared", text="refused", limit=7),
            base.Query(namespace="ns", pod="shared", text="refused", order="desc", limit=9),
            base.Query(namespace="ns", kind="Function", workload="w4", text="refused", tail=3),
        ):
            expected = [r.id for r in await reference.query(query)]
            assert [r.id for r in await candidate.query(query)] == expected
    finally:
        await candidate.close()
