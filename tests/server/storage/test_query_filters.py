from __future__ import annotations

from typing import Any

import pytest

from tailrace.server.storage import base
from tests.server.storage import samples

T0 = samples.T0


@pytest.fixture
async def filled(store: Any) -> Any:
    r = samples.record
    sent = [
        r("alpha starts", ts_ns=T0 + 1, level="DEBUG", kind="Function", workload="hello"),
        r(
            "beta connection refused",
            ts_ns=T0 + 2,
            level="ERROR",
            stream="stderr",
            kind="Function",
            workload="hello",
            execution_id="e1",
        ),
        r(
            "gamma warn disk",
            ts_ns=T0 + 3,
            level="WARN",
            container="sidecar",
            kind="Function",
            workload="hello",
            execution_id="e1",
            restart=1,
        ),
        r("delta other pod", ts_ns=T0 + 4, pod="pod-2", kind="Pipeline", workload="etl"),
        r("epsilon other ns", ts_ns=T0 + 5, namespace="ns2", pod="pod-9"),
        r("zeta otlp", ts_ns=T0 + 6, source="otlp", level="FATAL"),
    ]
    await store.append([samples.batch("src", sent)])
    return store


async def messages(store: Any, **fields: Any) -> list[str]:
    return [rec.message.split()[0] for rec in await store.query(base.Query(**fields))]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]),
        ({"namespace": "ns2"}, ["epsilon"]),
        ({"namespace": "nowhere"}, []),
        ({"namespace": "nowhere", "text": "alpha"}, []),
        ({"namespace": "ns", "kind": "Function", "workload": "hello"}, ["alpha", "beta", "gamma"]),
        ({"kind": "Pipeline"}, ["delta"]),
        ({"namespace": "ns", "pod": "pod-2"}, ["delta"]),
        ({"containers": ("sidecar",)}, ["gamma"]),
        ({"containers": ("sidecar", "app"), "namespace": "ns2"}, ["epsilon"]),
        ({"streams": ("stderr",)}, ["beta"]),
        ({"levels": ("WARN", "DEBUG")}, ["alpha", "gamma"]),
        ({"min_level": "WARN"}, ["beta", "gamma", "zeta"]),
        ({"min_level": "ERROR", "levels": ("WARN", "ERROR")}, ["beta"]),
        ({"execution_id": "e1"}, ["beta", "gamma"]),
        ({"restart": 1}, ["gamma"]),
        ({"sources": ("otlp",)}, ["zeta"]),
        ({"since_ns": T0 + 2, "until_ns": T0 + 4}, ["beta", "gamma"]),
        ({"text": "connection refused"}, ["beta"]),
        ({"text": "CONNECTION"}, ["beta"]),
        ({"text": "refused connection"}, []),
        ({"text": "conn"}, []),
        ({"text": "other", "namespace": "ns"}, ["delta"]),
        ({"order": "desc", "limit": 2}, ["zeta", "epsilon"]),
        ({"limit": 0}, []),
        ({"tail": 2}, ["epsilon", "zeta"]),
        ({"tail": 2, "namespace": "ns", "pod": "pod-1"}, ["gamma", "zeta"]),
        ({"tail": 0}, []),
        ({"after": (T0 + 2, 0)}, ["beta", "gamma", "delta", "epsilon", "zeta"]),
        ({"after": (T0 + 4, 0), "order": "desc"}, ["gamma", "beta", "alpha"]),
    ],
)
async def test_every_query_field_narrows(
    filled: Any, fields: dict[str, Any], expected: list[str]
) -> None:
    assert await messages(filled, **fields) == expected


async def test_count_ignores_paging(filled: Any) -> None:
    assert await filled.count(base.Query(namespace="ns", limit=1)) == 5
    assert await filled.count(base.Query(text="other")) == 2


async def test_after_id_returns_newer_records_in_id_order(filled: Any) -> None:
    everything = await filled.query(base.Query())
    newer = await filled.query(base.Query(after_id=everything[2].id, order="desc"))
    assert [r.id for r in newer] == sorted(r.id for r in everything[3:])
    assert await filled.query(base.Query(after_id=await filled.last_id())) == []


@pytest.mark.parametrize(
    ("fields", "fault"),
    [
        ({"levels": ("LOUD",)}, "unknown level"),
        ({"min_level": "nope"}, "unknown level"),
        ({"limit": -1}, "limit"),
        ({"tail": -3}, "tail"),
        ({"text": "!!!"}, "no word"),
        ({"text": " ".join(["w"] * 40)}, "more than"),
    ],
)
async def test_bad_query_is_a_precise_error(store: Any, fields: dict[str, Any], fault: str) -> None:
    with pytest.raises(base.InvalidQuery, match=fault):
        await store.query(base.Query(**fields))


async def test_records_with_equal_timestamps_come_in_id_order(store: Any) -> None:
    await store.append([samples.batch("src", [samples.record(str(i)) for i in range(5)])])
    asc = await store.query(base.Query())
    desc = await store.query(base.Query(order="desc"))
    assert [r.message for r in asc] == ["0", "1", "2", "3", "4"]
    assert desc == asc[::-1]
