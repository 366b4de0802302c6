"""The live-tail feed of the PostgreSQL store: what a follower may read, up to where.

`safe_watermark()` (see postgres_schema) is the highest id below which no record can still appear;
a feed read returns records above the caller's position up to it, in id order, so a follower
resuming from the last id it delivered never skips one that another replica commits late.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from tailrace.server.storage import base, postgres_scan

BATCH: Final = 2_000


async def watermark(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = await conn.execute("SELECT safe_watermark()")
    row = await cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def read(
    conn: psycopg.AsyncConnection[Any], last: int
) -> tuple[list[base.StoredRecord], int]:
    """Records in (last, watermark], about BATCH (whole chunks), and the id read up to."""
    upto = await watermark(conn)
    if upto <= last:
        return [], last
    # A new statement, hence a new snapshot: every block below the watermark is visible now.
    found = await postgres_scan.feed(conn, last, upto, BATCH)
    if len(found) >= BATCH:
        return found, found[-1].id
    return found, upto
