"""The PostgreSQL store's schema: migrations, day partitions and the id/feed functions.

Everything lives in one PostgreSQL schema (`?schema=` in the store URL, default `tailrace`), so
several stores can share a database (tests do). Migrations are numbered steps applied under a
database-wide advisory lock, so replicas starting together migrate once; `schema_version` holds the
step reached.

Since version 4 records are kept in chunks (`postgres_chunks`), declaratively partitioned by day
on their first timestamp (`chunks_d<day>` where day is `min_ts // DAY_NS`, negative days spelled
`m<n>`), created on demand before an ingest transaction and dropped whole by retention. Versions
1 to 3 kept a row per record in `records` (partitioned the same way); migration 4 converts them
(`postgres_migration_4`) and drops that table. Ids come from `record_ids` through `allocate_ids`,
which also makes the allocation visible to followers until the transaction ends (see
`safe_watermark` and docs/decisions/0005-postgres-store.md).
"""

from __future__ import annotations

import zlib
from typing import Final

DAY_NS: Final = 86_400 * 1_000_000_000

# Versions 1 to 3 (the per-record `records` table, which migration 4 drops). Text search index:
# the expression (which queries must repeat verbatim for the planner to use
# it). A tsvector is capped at 1 MB, so only the first SEARCH_INDEX_CHARS characters of tokens
# are indexed; a longer row also gets the lexeme LONG_ROW, which no token can be (tokens are
# letters and digits), and every search asks for it too, so long rows are always candidates.
SEARCH_INDEX_CHARS: Final = 200_000
LONG_ROW: Final = "__long__"
# Version 1 ran every row through PostgreSQL's text parser (to_tsvector), about 12 us a row.
_SEARCH_VECTOR_V1: Final = (
    f"(to_tsvector('simple'::regconfig, left(search, {SEARCH_INDEX_CHARS})) || "
    f"CASE WHEN octet_length(search) > {SEARCH_INDEX_CHARS} THEN '{LONG_ROW}'::tsvector "
    "ELSE ''::tsvector END)"
)
# Since version 2, a row shorter than SHORT_ROW_BYTES (most log lines) takes its tokens as they
# are: `search` is already the tokens between single spaces, so splitting it on spaces is the
# whole job, and no word in it can reach PostgreSQL's 2 KiB limit on a lexeme. Longer rows keep
# the parser, which skips over-long words. A query asks for its tokens both ways
# (before version 4), so a token the parser would split differently still finds its rows.
SHORT_ROW_BYTES: Final = 2048
SEARCH_VECTOR: Final = (
    f"(CASE WHEN octet_length(search) < {SHORT_ROW_BYTES} "
    "THEN array_to_tsvector(string_to_array(btrim(search, ' '), ' ')) "
    f"ELSE {_SEARCH_VECTOR_V1} END)"
)

# Advisory lock keys. Keys are per database, not per schema, so each schema gets its own tag;
# migrations take a fixed database-wide key because `CREATE EXTENSION` is database-wide too.
MIGRATION_LOCK: Final = (0x7461_696C, 0x6D69_6772)  # "tail", "migr"
_ALLOC_SUBKEY: Final = 0
_PARTITION_SUBKEY: Final = 1


def schema_tag(schema: str) -> int:
    """A positive int4 naming the schema in advisory lock keys (same value as int4 and as oid)."""
    return (zlib.crc32(schema.encode()) & 0x7FFF_FFFF) or 1


def partition_lock(schema: str) -> tuple[int, int]:
    return (schema_tag(schema), _PARTITION_SUBKEY)


def day_of(ts_ns: int) -> int:
    return ts_ns // DAY_NS


def partition_name(day: int, table: str = "chunks") -> str:
    return f"{table}_d{day}" if day >= 0 else f"{table}_dm{-day}"


def day_of_partition(name: str) -> int | None:
    if not name.startswith("chunks_d"):
        return None
    rest = name[len("chunks_d") :]
    negative = rest.startswith("m")
    digits = rest[1:] if negative else rest
    if not digits.isdigit():
        return None
    return -int(digits) if negative else int(digits)


def create_partition_sql(schema: str, day: int) -> str:
    low, high = day * DAY_NS, (day + 1) * DAY_NS
    return (
        f'CREATE TABLE IF NOT EXISTS "{schema}".{partition_name(day)} '
        f'PARTITION OF "{schema}".chunks FOR VALUES FROM ({low}) TO ({high})'
    )


def _functions(schema: str) -> list[str]:
    tag = schema_tag(schema)
    # `allocate_ids(n)` hands out a contiguous block of ids and, while still holding the allocation
    # lock, takes a transaction-level advisory lock whose key carries the block's first id (low 32
    # bits under this schema's tag). pg_locks shows that lock to every session at once, and
    # PostgreSQL releases it only after the transaction's commit is visible, so
    # `safe_watermark()` can tell which ids may still appear: none at or above the lowest
    # in-flight block. Both functions serialize on the same session-level lock, so no allocation
    # is half-visible (sequence advanced, lock not yet taken) to a watermark reader.
    return [
        f"""
CREATE OR REPLACE FUNCTION "{schema}".allocate_ids(n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  first_id bigint;
BEGIN
  PERFORM pg_advisory_lock({tag}, {_ALLOC_SUBKEY});
  BEGIN
    first_id := nextval('"{schema}".record_ids');
    IF n > 1 THEN
      PERFORM setval('"{schema}".record_ids', first_id + n - 1);
    END IF;
    PERFORM pg_advisory_xact_lock(({tag}::bigint << 32) | (first_id & 4294967295));
  EXCEPTION WHEN OTHERS THEN
    PERFORM pg_advisory_unlock({tag}, {_ALLOC_SUBKEY});
    RAISE;
  END;
  PERFORM pg_advisory_unlock({tag}, {_ALLOC_SUBKEY});
  RETURN first_id;
END $$
""",
        f"""
CREATE OR REPLACE FUNCTION "{schema}".safe_watermark() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  last_id bigint;
  called boolean;
  lowest bigint;
BEGIN
  PERFORM pg_advisory_lock({tag}, {_ALLOC_SUBKEY});
  BEGIN
    SELECT last_value, is_called INTO last_id, called FROM "{schema}".record_ids;
    IF NOT called THEN
      last_id := last_id - 1;
    END IF;
    -- The low 32 bits of an in-flight block's first id, back to a full id: in-flight blocks are
    -- within 2^32 ids of the sequence's current value.
    SELECT min(last_id - ((last_id - objid::bigint) % 4294967296 + 4294967296) % 4294967296)
      INTO lowest
      FROM pg_locks
     WHERE locktype = 'advisory' AND objsubid = 1 AND classid = {tag}::oid
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database());
  EXCEPTION WHEN OTHERS THEN
    PERFORM pg_advisory_unlock({tag}, {_ALLOC_SUBKEY});
    RAISE;
  END;
  PERFORM pg_advisory_unlock({tag}, {_ALLOC_SUBKEY});
  RETURN coalesce(lowest - 1, last_id);
END $$
""",
    ]


def _version_1(schema: str) -> list[str]:
    s = f'"{schema}"'
    return [
        f"CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
        # CACHE 1 (the default) matters: cached sequence values would break id order per block.
        f"CREATE SEQUENCE {s}.record_ids AS bigint CACHE 1",
        f"""CREATE TABLE {s}.records (
  id bigint NOT NULL,
  ts_ns bigint NOT NULL,
  received_ns bigint NOT NULL,
  namespace text NOT NULL,
  kind text NOT NULL,
  workload text NOT NULL,
  workload_uid text NOT NULL,
  pod text NOT NULL,
  pod_uid text NOT NULL,
  container text NOT NULL,
  container_id text NOT NULL,
  restart integer NOT NULL,
  stream text NOT NULL,
  level text NOT NULL,
  level_rank smallint NOT NULL,
  message text NOT NULL,
  search text NOT NULL,
  execution_id text NOT NULL,
  attrs text NOT NULL,
  source text NOT NULL,
  flags integer NOT NULL,
  size integer NOT NULL
) PARTITION BY RANGE (ts_ns)""",
        f"CREATE INDEX records_ts ON {s}.records (ts_ns, id)",
        f"CREATE INDEX records_id ON {s}.records (id)",
        f"CREATE INDEX records_pod ON {s}.records (namespace, pod, ts_ns, id)",
        f"CREATE INDEX records_workload ON {s}.records (namespace, kind, workload, ts_ns, id)",
        # Word-level GIN over the tokens (see SEARCH_VECTOR).
        f"CREATE INDEX records_search ON {s}.records USING gin ({_SEARCH_VECTOR_V1})",
        f"""CREATE TABLE {s}.sources (
  key text PRIMARY KEY,
  durable_offset bigint NOT NULL,
  updated_ns bigint NOT NULL
)""",
        # Lines the agent's line-limit policy dropped, one row per batch that dropped some.
        f"""CREATE TABLE {s}.drops (
  namespace text NOT NULL,
  kind text NOT NULL,
  workload text NOT NULL,
  pod text NOT NULL,
  pod_uid text NOT NULL,
  container text NOT NULL,
  lines bigint NOT NULL
)""",
        f"CREATE INDEX drops_by_pod ON {s}.drops (namespace, pod)",
        f"""CREATE TABLE {s}.workloads (
  namespace text NOT NULL,
  kind text NOT NULL,
  name text NOT NULL,
  uid text NOT NULL,
  spec text NOT NULL,
  generation bigint NOT NULL,
  created_ns bigint NOT NULL,
  deleted boolean NOT NULL,
  PRIMARY KEY (namespace, kind, name)
)""",
        f"CREATE INDEX workloads_uid ON {s}.workloads (uid)",
        f"""CREATE TABLE {s}.pods (
  namespace text NOT NULL,
  name text NOT NULL,
  uid text NOT NULL,
  labels text NOT NULL,
  workload_kind text,
  workload_name text,
  phase text NOT NULL,
  obj text NOT NULL,
  PRIMARY KEY (namespace, name)
)""",
        *_functions(schema),
    ]


def _version_2(schema: str) -> list[str]:
    # The word index without the text parser for ordinary rows (see SEARCH_VECTOR): ingest spends
    # about 21 us a row on it instead of 34. Rebuilding it reads every stored row once (about 3.5
    # minutes for ten million on the test machine). A new index has no statistics until ANALYZE,
    # and version 3 chose search plans by them.
    s = f'"{schema}"'
    return [
        f"DROP INDEX {s}.records_search",
        f"CREATE INDEX records_search ON {s}.records USING gin ({SEARCH_VECTOR})",
        f"ANALYZE {s}.records",
    ]


# The walk's index (the version-3 text search, gone with `records` in version 4): a workload's
# rows in time order with their tokens, so a search walking a workload reads index pages (some
# hundred rows each) instead of one heap page per row (a workload's rows are interleaved with
# every other workload's). Only rows whose tokens fit
# a B-tree entry are in it (SHORT_ROW_BYTES, well under the 2.7 KB limit of an entry); the long
# rows have an index of their own, and a walk merges both in time order.
WALK_INDEX_PREDICATE: Final = f"octet_length(search) < {SHORT_ROW_BYTES}"
LONG_INDEX_PREDICATE: Final = f"octet_length(search) >= {SHORT_ROW_BYTES}"
# Index-only scans skip the heap only for pages the visibility map marks all-visible, which
# (auto)VACUUM does. By default an insert-only table is vacuumed after 20 % more rows, which
# leaves the newest fifth of a big day partition (the rows a walk reads first) out; a fixed
# number of rows keeps that to the newest 100,000 rows or so of each partition.
PARTITION_OPTIONS: Final = (
    "autovacuum_vacuum_insert_threshold = 100000, autovacuum_vacuum_insert_scale_factor = 0"
)


def _version_3(schema: str) -> list[str]:
    # Building the walk indexes reads every stored row once (minutes at ten million rows).
    s = f'"{schema}"'
    return [
        f"CREATE INDEX records_workload_words ON {s}.records "
        f"(namespace, kind, workload, ts_ns, id) INCLUDE (search) WHERE {WALK_INDEX_PREDICATE}",
        f"CREATE INDEX records_workload_long ON {s}.records "
        f"(namespace, kind, workload, ts_ns, id) WHERE {LONG_INDEX_PREDICATE}",
        f"""DO $$
DECLARE
  part regclass;
BEGIN
  FOR part IN SELECT inhrelid::regclass FROM pg_inherits
               WHERE inhparent = '{s}.records'::regclass LOOP
    EXECUTE format('ALTER TABLE %s SET ({PARTITION_OPTIONS})', part);
  END LOOP;
END $$""",
    ]


def chunks_ddl(schema: str) -> list[str]:
    """Migration 4's first half: the chunks table and its indexes (idempotent: a migration that
    was killed part way runs it again). `postgres_migration_4` then moves the records over and
    `drop_records_ddl` takes the old table away."""
    s = f'"{schema}"'
    indexes = {
        # Pages walk a scope newest-first by max_ts or oldest-first by min_ts; the other column
        # drops the chunks that do not straddle a time bound (postgres_query).
        "chunks_by_max": "max_ts, min_ts",
        "chunks_by_min": "min_ts, max_ts",
        "chunks_by_pod_max": "namespace, pod, max_ts, min_ts",
        "chunks_by_pod_min": "namespace, pod, min_ts, max_ts",
        "chunks_by_workload_max": "namespace, kind, workload, max_ts, min_ts",
        "chunks_by_workload_min": "namespace, kind, workload, min_ts, max_ts",
        # Live tails and the feed read by id; deletes and counts walk in id order.
        "chunks_by_id": "id",
    }
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.chunks (
  id bigint NOT NULL,
  n integer NOT NULL,
  min_ts bigint NOT NULL,
  max_ts bigint NOT NULL,
  received_ns bigint NOT NULL,
  namespace text NOT NULL,
  kind text NOT NULL,
  workload text NOT NULL,
  workload_uid text NOT NULL,
  pod text NOT NULL,
  pod_uid text NOT NULL,
  container text NOT NULL,
  container_id text NOT NULL,
  restart integer NOT NULL,
  source text NOT NULL,
  stream text NOT NULL,
  levels integer NOT NULL,
  live integer NOT NULL,
  size bigint NOT NULL,
  dead bytea,
  executions text[] NOT NULL,
  words text[] NOT NULL,
  data bytea NOT NULL
) PARTITION BY RANGE (min_ts)""",
        # The blob is already compact, and pglz would spend ingest CPU finding that out.
        f"ALTER TABLE {s}.chunks ALTER COLUMN data SET STORAGE EXTERNAL",
        *(
            f"CREATE INDEX IF NOT EXISTS {name} ON {s}.chunks ({columns})"
            for name, columns in indexes.items()
        ),
        f"CREATE INDEX IF NOT EXISTS chunks_words ON {s}.chunks USING gin (words)",
        f"CREATE INDEX IF NOT EXISTS chunks_executions ON {s}.chunks USING gin (executions)",
    ]


def drop_records_ddl(schema: str) -> list[str]:
    """Migration 4's last step: the per-record table, its partitions and indexes go."""
    return [f'DROP TABLE IF EXISTS "{schema}".records CASCADE']


CURRENT_VERSION: Final = 4


def migrations(schema: str) -> dict[int, list[str]]:
    """Statements that bring the schema from version n-1 to n, by n, for n up to 3 (version 4
    moves the records in Python, in slices: `postgres_migration_4`)."""
    return {1: _version_1(schema), 2: _version_2(schema), 3: _version_3(schema)}
