from __future__ import annotations

from typing import Any

import pytest

from tailrace import records
from tailrace.server.storage import base
from tests.server.storage import samples

T0 = samples.T0
SECOND = 1_000_000_000
HELLO = base.WorkloadKey("ns", "Function", "hello")
SCOPE = base.Query(namespace="ns", kind="Function", workload="hello")


def hello(message: str, **fields: Any) -> base.NewRecord:
    return samples.record(message, kind="Function", workload="hello", **fields)


async def test_delete_by_query_removes_exactly_the_matches(store: Any) -> None:
    sent = [hello(f"m{i} {'keep' if i % 2 else 'drop'}", ts_ns=T0 + i) for i in range(10)]
    await store.append([samples.batch("s", sent)])
    assert await store.delete(base.Query(text="drop", limit=1)) == 5
    left = await store.query(base.Query())
    assert all("keep" in r.message for r in left)
    assert await store.query(base.Query(text="drop")) == []
    assert await store.delete(base.Query(namespace="elsewhere")) == 0
    assert await store.delete(base.Query(since_ns=T0 + 5)) == 3
    assert await store.count(base.Query()) == 2


async def test_stats_count_by_level_container_execution_and_workload(store: Any) -> None:
    await store.append(
        [
            samples.batch(
                "s",
                [
                    hello("aé", level="ERROR", execution_id="e1", ts_ns=T0 + 1),
                    hello(
                        "bb",
                        container="side",
                        execution_id="e1",
                        ts_ns=T0 + 3,
                        flags=records.FLAG_TRUNCATED,
                    ),
                    hello("cc", flags=records.FLAG_SPLIT, ts_ns=T0 + 2),
                    samples.record("dd", pod="pod-9", namespace="ns2", ts_ns=T0 + 9),
                ],
                dropped_lines=4,
            )
        ]
    )
    stats = await store.stats(SCOPE)
    assert stats.total == 3
    assert stats.by_level == {"ERROR": 1, "INFO": 2}
    assert stats.by_container == {"app": 2, "side": 1}
    assert stats.by_execution == {"e1": 2}
    assert stats.by_workload == {"Function/hello": 3}
    assert stats.by_namespace == {"ns": 3}
    assert stats.by_pod == {"pod-1": 3}
    assert (stats.truncated_lines, stats.split_lines, stats.dropped_lines) == (1, 1, 4)
    assert stats.last_ts_ns == T0 + 3
    assert stats.bytes == len("aé".encode()) + 4
    everything = await store.stats(base.Query())
    assert everything.total == 4
    assert everything.by_namespace == {"ns": 3, "ns2": 1}
    empty = await store.stats(base.Query(namespace="none"))
    assert (empty.total, empty.last_ts_ns, empty.by_level) == (0, None, {})


@pytest.mark.parametrize(
    ("retention", "left"),
    [
        ({}, 10),
        ({"maxAge": "5s"}, 5),  # records at T0+5s..T0+9s are younger than 5 s at T0+10s
        ({"maxLines": 3}, 3),
        ({"maxBytes": "12"}, 4),  # four 3-byte messages
        ({"maxAge": "8s", "maxLines": 6, "maxBytes": "1Ki"}, 6),
    ],
)
async def test_retention_keeps_the_newest_records_within_every_limit(
    store: Any, retention: dict[str, Any], left: int
) -> None:
    await store.put_workload(samples.workload("hello", spec={"logs": {"retention": retention}}))
    sent = [hello(f"m{i:02d}"[:3], ts_ns=T0 + i * SECOND) for i in range(10)]
    other = [samples.record("old", ts_ns=T0, pod="pod-2")]
    await store.append([samples.batch("s", sent), samples.batch("t", other)])
    deleted = await store.apply_retention(T0 + 10 * SECOND)
    kept = await store.query(SCOPE)
    assert deleted == 10 - left
    assert [r.ts_ns for r in kept] == [T0 + i * SECOND for i in range(10 - left, 10)]
    assert await store.count(base.Query(pod="pod-2")) == 1  # unattributed: no policy
    assert await store.apply_retention(T0 + 10 * SECOND) == 0
    assert len(await store.query(base.Query(text=kept[0].message))) >= 1


async def test_retention_with_a_broken_spec_keeps_everything(store: Any) -> None:
    await store.put_workload(
        samples.workload("hello", spec={"logs": {"retention": {"maxAge": "soon"}}})
    )
    await store.append([samples.batch("s", [hello("x", ts_ns=0)])])
    assert await store.apply_retention(T0) == 0


async def test_totals_follow_appends_and_deletes(store: Any) -> None:
    await store.append([samples.batch("s", [hello("abc"), hello("dé")])])
    assert await base.totals(store) == base.Totals(2, 3 + 3)
    await store.delete(base.Query(text="abc"))
    assert await base.totals(store) == base.Totals(1, 3)
