from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tailrace.server.storage import base
from tests.server.storage import samples

HELLO = base.WorkloadKey("ns", "Function", "hello")


async def test_workloads_are_found_by_uid_or_name(store: Any) -> None:
    await store.put_workload(
        samples.workload("hello", uid="u1", spec={"logs": {"minLevel": "INFO"}})
    )
    await store.put_workload(samples.workload("etl", kind="Pipeline", uid="u2"))
    await store.put_workload(samples.workload("hello", namespace="other", uid="u3"))
    assert (await store.get_workload(HELLO)).spec == {"logs": {"minLevel": "INFO"}}
    assert (await store.find_workload(None, "u2")).key.name == "etl"
    assert (await store.find_workload("nowhere", "u2")).key.name == "etl"  # uid: any namespace
    assert (await store.find_workload("other", "hello")).uid == "u3"
    assert await store.find_workload(None, "hello") is None  # ambiguous by name
    assert (await store.find_workload(None, "etl")).uid == "u2"
    assert await store.find_workload("ns", "missing") is None
    assert [w.key.name for w in await store.list_workloads("ns")] == ["hello", "etl"]
    await store.delete_workload(HELLO)
    assert await store.get_workload(HELLO) is None


async def test_pods_registry_round_trips(store: Any) -> None:
    pod = base.Pod("ns", "pod-1", "p1", {"app": "hello"}, HELLO, "Running", {"kind": "Pod"})
    await store.put_pod(pod)
    await store.put_pod(base.Pod("ns", "pod-2", "p2"))
    assert await store.get_pod("ns", "pod-1") == pod
    assert [p.name for p in await store.list_pods(HELLO)] == ["pod-1"]
    assert [p.name for p in await store.list_pods()] == ["pod-1", "pod-2"]
    await store.delete_pod("ns", "pod-1")
    assert await store.get_pod("ns", "pod-1") is None


async def test_records_of_a_registered_pod_are_attributed_on_append(store: Any) -> None:
    await store.put_workload(samples.workload("hello", uid="wu"))
    await store.put_pod(base.Pod("ns", "pod-1", "p1", workload=HELLO))
    result = await store.append([samples.batch("s", [samples.record("x", pod_uid="p1")])])
    (stored,) = result.stored
    assert (stored.kind, stored.workload, stored.workload_uid) == ("Function", "hello", "wu")
    found = await store.query(base.Query(namespace="ns", kind="Function", workload="hello"))
    assert [r.message for r in found] == ["x"]


async def test_records_that_arrived_before_their_pod_are_backfilled(store: Any) -> None:
    await store.append(
        [samples.batch("s", [samples.record("early", pod_uid="p1")], dropped_lines=2)]
    )
    await store.append([samples.batch("t", [samples.record("other pod", pod="pod-2")])])
    scope = base.Query(namespace="ns", kind="Function", workload="hello")
    assert await store.count(scope) == 0
    await store.put_workload(samples.workload("hello", uid="wu"))
    await store.put_pod(base.Pod("ns", "pod-1", "p1", workload=HELLO))
    (found,) = await store.query(scope)
    assert (found.message, found.workload_uid) == ("early", "wu")
    assert (await store.stats(scope)).dropped_lines == 2
    assert await store.assign_pod_workload("ns", "pod-1", HELLO) == 0  # nothing left to do


async def test_backfill_leaves_another_incarnation_of_the_pod_alone(store: Any) -> None:
    await store.append([samples.batch("s", [samples.record("old", pod_uid="old-uid")])])
    assert await store.assign_pod_workload("ns", "pod-1", HELLO, pod_uid="new-uid") == 0
    assert await store.assign_pod_workload("ns", "pod-1", HELLO) == 1


@pytest.mark.parametrize(
    ("logs", "stored"),
    [
        ({}, ["DEBUG", "INFO", "ERROR"]),
        ({"minLevel": "INFO"}, ["INFO", "ERROR"]),
        ({"minLevel": "ERROR"}, ["ERROR"]),
        ({"enabled": False}, []),
    ],
)
async def test_workload_spec_decides_what_is_stored(
    store: Any, logs: dict[str, Any], stored: list[str]
) -> None:
    await store.put_workload(samples.workload("hello", spec={"logs": logs}))
    sent = [
        samples.record(level=level, kind="Function", workload="hello")
        for level in ("DEBUG", "INFO", "ERROR")
    ]
    result = await store.append([samples.batch("s", sent)])
    assert [r.level for r in result.stored] == stored
    assert result.filtered == 3 - len(stored)
    assert result.durable_offsets == {"s": 30}  # filtered lines are still acknowledged


async def test_data_survives_a_restart_of_the_store(backend: Any, tmp_path: Path) -> None:
    factory, durable = backend
    if not durable:
        pytest.skip("this backend keeps nothing across a restart by design")
    async with factory(tmp_path) as store:
        await store.put_workload(samples.workload("hello", uid="wu"))
        await store.put_pod(base.Pod("ns", "pod-1", "p1", workload=HELLO))
        first = await store.append([samples.batch("s", [samples.record(m) for m in "ab"])])
        await store.delete(base.Query(text="b"))
        last = await store.last_id()
        instance = (await store.meta())["instance_id"]
    async with factory(tmp_path) as store:
        assert [r.message for r in await store.query(base.Query())] == ["a"]
        assert await store.durable_offsets(["s"]) == {"s": 20}
        assert (await store.get_workload(HELLO)).uid == "wu"
        assert (await store.get_pod("ns", "pod-1")).workload == HELLO
        again = await store.append([samples.batch("s", [samples.record(m) for m in "abc"])])
        assert [r.message for r in again.stored] == ["c"]
        # Ids never go back, even after the newest record was deleted.
        assert again.stored[0].id > last >= first.stored[-1].id
        assert (await store.meta())["instance_id"] == instance
        assert (await store.query(base.Query(text="c")))[0].message == "c"
        assert (await base.totals(store)).rows == 2
