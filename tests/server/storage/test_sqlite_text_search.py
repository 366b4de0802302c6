"""The SQLite store's `Query.text` answers exactly what the memory store answers.

FTS5 names the chunks holding the words, and the records of those chunks are checked one by one;
the same records appended in big batches (chunks of up to 256) and in small ones (chunks of 7).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tailrace.server.storage import base, memory, sqlite
from tests.server.storage import samples

WORDS = ("alpha", "beta", "gamma", "delta", "error", "connection", "refused")


@pytest.fixture(params=[700, 7], ids=["big-chunks", "small-chunks"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    rng = random.Random(7)
    sent = []
    for i in range(3000):
        words = rng.choices(WORDS, k=rng.randrange(1, 6))
        if rng.random() < 0.03:
            words.append("zebra")  # a rare word: the sparse walk through FTS5 id ranges
        sent.append(
            samples.record(
                " ".join(words),
                ts_ns=samples.T0 + rng.randrange(400),  # many equal timestamps, out of order
                pod=f"pod-{i % 3}",
                level=rng.choice(("INFO", "ERROR")),
                kind="Function",
                workload=f"w{i % 2}",
            )
        )
    reference = memory.MemoryStore()
    candidate = sqlite.SQLiteStore(str(tmp_path / "text.db"))
    for store in (reference, candidate):
        await store.open()
        size = request.param
        for start in range(0, len(sent), size):
            await store.append([samples.batch(f"s{start}", sent[start : start + size])])
    try:
        yield reference, candidate
    finally:
        await candidate.close()


QUERIES = [
    base.Query(text="alpha"),
    base.Query(text="alpha", order="desc", limit=37),
    base.Query(text="connection refused", limit=50),
    base.Query(text="refused connection", order="desc", limit=50),
    base.Query(text="error", namespace="ns", kind="Function", workload="w1", limit=25),
    base.Query(text="beta", namespace="ns", pod="pod-2", min_level="ERROR", limit=10),
    base.Query(text="gamma", tail=15),
    base.Query(text="delta alpha beta", order="desc", limit=1000),
    base.Query(text="gamma", after=(samples.T0 + 200, 1500), limit=30),
    base.Query(text="gamma", after=(samples.T0 + 200, 1500), order="desc", limit=30),
    base.Query(text="gamma", since_ns=samples.T0 + 100, until_ns=samples.T0 + 120, limit=500),
    base.Query(text="nowhere"),
    base.Query(text="zebra", order="desc", limit=20),
    base.Query(text="zebra", namespace="ns", kind="Function", workload="w0", limit=40),
    base.Query(text="gamma zebra", limit=10),
    base.Query(text="zebra", tail=5, after=(samples.T0 + 50, 0)),
    base.Query(text="alpha", after_id=2900),
    base.Query(text="zebra", namespace="ns", pod="pod-1", order="desc", limit=7),
    base.Query(text="refused connection", namespace="ns", kind="Function", workload="w1", tail=9),
    base.Query(text="zebra", namespace="ns", pod="pod-2", after=(samples.T0 + 300, 0), limit=4),
    base.Query(text="zebra", namespace="ns", kind="Function", workload="nowhere"),
    base.Query(text="zebra", namespace="ns", pod="nowhere"),
    base.Query(text="alpha", namespace="other", pod="pod-1"),
]


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
async def test_text_search_matches_the_reference(pair: tuple[Any, Any], query: base.Query) -> None:
    reference, candidate = pair
    expected = [r.id for r in await reference.query(query)]
    assert [r.id for r in await candidate.query(query)] == expected
    assert await candidate.count(query) == await reference.count(query)
