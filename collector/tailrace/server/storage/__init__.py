"""Storage backends behind the `Store` protocol (see base.py), picked by URL scheme.

`BACKENDS` maps a scheme to a factory taking the parsed URL; adding a backend is one entry.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from tailrace.server.storage import base, memory, postgres, sqlite

__all__ = ["BACKENDS", "base", "memory", "open_store", "postgres", "sqlite"]


def _sqlite(url: urllib.parse.SplitResult) -> base.Store:
    # sqlite:///relative.db, sqlite:////abs/path.db and sqlite:///:memory: (SQLAlchemy's spelling).
    # sqlite:///abs/path.db is absolute (as interfaces.md documents), sqlite:////abs/path.db too;
    # sqlite:///./rel.db is relative to the working directory; sqlite:///:memory: is in memory.
    if url.netloc:
        raise base.UnknownStoreURL(
            f"sqlite URLs have no host: use sqlite:///path, got {url.geturl()!r}"
        )
    path = urllib.parse.unquote(url.path).removeprefix("/")
    if not path:
        raise base.UnknownStoreURL("sqlite URL without a path: use sqlite:///path/to/file.db")
    if path != ":memory:" and not path.startswith(("/", ".")):
        path = "/" + path
    return sqlite.SQLiteStore(path)


def _memory(url: urllib.parse.SplitResult) -> base.Store:
    return memory.MemoryStore()


BACKENDS: dict[str, Callable[[urllib.parse.SplitResult], base.Store]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgresql": lambda url: postgres.PostgresStore(url.geturl()),
    "postgres": lambda url: postgres.PostgresStore(url.geturl()),
}


def open_store(url: str) -> base.Store:
    """The store a URL names, not yet opened: `await store.open()` connects and migrates.

    Raises `base.UnknownStoreURL` for a scheme no backend serves or a malformed URL.
    """
    parsed = urllib.parse.urlsplit(url)
    factory = BACKENDS.get(parsed.scheme)
    if factory is None:
        known = ", ".join(f"{scheme}://" for scheme in sorted(BACKENDS))
        raise base.UnknownStoreURL(f"no storage backend for {url!r}; known schemes: {known}")
    return factory(parsed)
