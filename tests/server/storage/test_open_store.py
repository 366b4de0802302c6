from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tailrace.server import storage
from tailrace.server.storage import base, memory, sqlite


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/tailrace/logs.db", "/var/lib/tailrace/logs.db"),
        ("sqlite:////var/lib/tailrace/logs.db", "/var/lib/tailrace/logs.db"),
        ("sqlite:///./tailrace.db", "./tailrace.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_a_path(url: str, path: str) -> None:
    store = storage.open_store(url)
    assert isinstance(store, sqlite.SQLiteStore)
    assert store.path == path


def test_memory_url_opens_the_memory_store() -> None:
    assert isinstance(storage.open_store("memory://"), memory.MemoryStore)


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("mysql://db/logs", "no storage backend"),
        ("tailrace.db", "no storage backend"),
        ("sqlite://host/logs.db", "no host"),
        ("sqlite://", "without a path"),
    ],
)
def test_bad_urls_are_precise_errors(url: str, fault: str) -> None:
    with pytest.raises(base.UnknownStoreURL, match=fault):
        storage.open_store(url)


async def test_a_store_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    store = storage.open_store(f"sqlite://{tmp_path}/missing/dir/logs.db")
    with pytest.raises(base.StoreUnavailable, match="cannot open"):
        await store.open()


async def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = storage.open_store(f"sqlite://{tmp_path}/logs.db")
    await store.open()
    await store.close()
    with pytest.raises(base.StoreUnavailable):
        await store.query(base.Query())
    with pytest.raises(base.StoreUnavailable):
        await store.append([])


async def test_a_database_from_a_newer_server_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/logs.db"
    store = storage.open_store(url)
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "logs.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 0)")
    conn.close()
    newer = storage.open_store(url)
    with pytest.raises(base.StoreUnavailable, match="newer"):
        await newer.open()
