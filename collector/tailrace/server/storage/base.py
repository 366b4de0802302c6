"""The `Store` contract every storage backend implements, and the shapes it speaks in.

One query model (`Query`) serves every API surface: the native API, the five compatibility
facades and the CLI all turn their parameters into a `Query`. Backends (sqlite, postgres, memory)
are sibling modules; `tailrace.server.storage.open_store(url)` picks one by URL scheme.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, runtime_checkable

from tailrace import conventions

Order = Literal["asc", "desc"]
RecordSource = Literal["agent", "otlp", "operator", "kubernetes"]


class StoreError(Exception):
    """Base of every storage failure."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or is shutting down: the API answers 503."""


class InvalidQuery(StoreError, ValueError):
    """A `Query` the store cannot answer (unknown level, negative limit...): the API answers 400."""


class UnknownStoreURL(StoreError, ValueError):
    """`open_store` got a URL whose scheme no backend serves."""


@dataclass(frozen=True, slots=True)
class WorkloadKey:
    namespace: str
    kind: str  # "Function" | "Pipeline"
    name: str


@dataclass(slots=True)
class Workload:
    """A Function or Pipeline as registered through the control API."""

    key: WorkloadKey
    uid: str
    spec: dict[str, Any]  # the custom resource's spec, with defaults applied by the server
    generation: int = 0
    created_ns: int = 0
    deleted: bool = False


@dataclass(slots=True)
class Pod:
    """A pod as mirrored through the control API (the parts the server needs)."""

    namespace: str
    name: str
    uid: str
    labels: dict[str, str] = field(default_factory=dict)
    workload: WorkloadKey | None = None
    phase: str = ""
    obj: dict[str, Any] = field(default_factory=dict)  # the Pod as last seen, Kubernetes JSON


@dataclass(slots=True)
class NewRecord:
    """A record about to be stored; the store assigns `id` and `received_ns`."""

    ts_ns: int
    namespace: str
    pod: str
    container: str
    stream: str  # stdout | stderr | system
    level: str
    message: str
    kind: str = ""
    workload: str = ""
    workload_uid: str = ""
    pod_uid: str = ""
    container_id: str = ""
    restart: int = 0
    execution_id: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    source: RecordSource = "agent"
    flags: int = 0  # tailrace.records.FLAG_* bits

    @property
    def truncated(self) -> bool:
        return bool(self.flags & 1)

    @property
    def size(self) -> int:
        """Bytes the record counts for in stats and `maxBytes` retention: its UTF-8 message."""
        return len(self.message.encode())


@dataclass(slots=True)
class StoredRecord(NewRecord):
    """A record with its store-assigned id.

    A backend's `append` may be handed `StoredRecord` instances (ingest builds them so the live tail
    gets them without a copy): it then fills `id` and `received_ns` in place and returns the same
    objects. Plain `NewRecord`s are copied into new `StoredRecord`s.
    """

    id: int = 0
    received_ns: int = 0


def stamp(record: NewRecord, record_id: int, received_ns: int) -> StoredRecord:
    """The stored form of `record` (the same object when it already is a `StoredRecord`)."""
    if isinstance(record, StoredRecord):
        record.id = record_id
        record.received_ns = received_ns
        return record
    return StoredRecord(
        ts_ns=record.ts_ns,
        namespace=record.namespace,
        pod=record.pod,
        container=record.container,
        stream=record.stream,
        level=record.level,
        message=record.message,
        kind=record.kind,
        workload=record.workload,
        workload_uid=record.workload_uid,
        pod_uid=record.pod_uid,
        container_id=record.container_id,
        restart=record.restart,
        execution_id=record.execution_id,
        attrs=record.attrs,
        source=record.source,
        flags=record.flags,
        id=record_id,
        received_ns=received_ns,
    )


@dataclass(slots=True)
class IngestBatch:
    """Records read from one source file, with what makes their ingest idempotent.

    `end_offsets[i]` is the file offset just past record i. The store keeps, per `source_key`, the
    highest offset it has made durable, and skips every record whose end offset is not above it,
    so a resend stores nothing twice. `covered_offset` also advances the mark past lines that were
    deliberately dropped by the line-limit policy. `dropped_lines` are counted only when the batch
    advances the mark, so a resent batch does not count its drops twice.

    Records whose `kind`/`workload` are empty are attributed by the store, in the same transaction,
    from the pods registry (`put_pod` with a workload); the pod fields below attribute
    `dropped_lines` the same way even when the batch has no record.
    """

    source_key: str
    records: list[NewRecord]
    end_offsets: list[int]
    covered_offset: int
    dropped_lines: int = 0
    namespace: str = ""
    pod: str = ""
    pod_uid: str = ""
    container: str = ""
    kind: str = ""
    workload: str = ""
    # True when every record shares its namespace, pod, pod_uid, container, container_id,
    # restart, kind, workload, workload_uid and source, and its stream is stdout or stderr (a
    # wire batch, built from one Source): a store may then take the batch as one run.
    one_origin: bool = False

    def attribution_probe(self) -> NewRecord:
        """An empty record of the batch's pod: attributed like a record, it tells which
        workload the batch's dropped lines count against."""
        return NewRecord(
            ts_ns=0,
            namespace=self.namespace,
            pod=self.pod,
            container=self.container,
            stream="stdout",
            level="INFO",
            message="",
            kind=self.kind,
            workload=self.workload,
            pod_uid=self.pod_uid,
        )

    def drops_row(self, probe: NewRecord) -> tuple[str, str, str, str, str, str, int]:
        """The batch's dropped lines as a `drops` row (namespace, kind, workload, pod, pod_uid,
        container, lines), once `probe` (its `attribution_probe`) has been attributed."""
        return (
            probe.namespace,
            probe.kind,
            probe.workload,
            probe.pod,
            probe.pod_uid,
            probe.container,
            self.dropped_lines,
        )


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: list[StoredRecord]  # the records newly stored, with ids, in id order
    duplicates: int
    durable_offsets: dict[str, int]  # per source key, after this append
    # Records not stored because their workload's spec.logs says so (minLevel, enabled: false).
    filtered: int = 0


@dataclass(frozen=True, slots=True)
class Query:
    """A filter over stored records plus paging. Every field narrows; None/empty means 'any'."""

    namespace: str | None = None
    kind: str | None = None
    workload: str | None = None
    pod: str | None = None
    containers: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    min_level: str | None = None  # records below this level are left out
    text: str | None = None  # full-text search (q, keyword)
    execution_id: str | None = None
    restart: int | None = None  # kubectl logs --previous picks the restart below the latest
    sources: tuple[str, ...] = ()
    since_ns: int | None = None  # inclusive
    until_ns: int | None = None  # exclusive
    after: tuple[int, int] | None = None  # cursor: (ts_ns, id) of the last record already seen
    # Live tails: records with id above this one, always in ascending id order (`order`, `after`
    # and `tail` are then ignored). Ids grow in commit order, so nothing committed later is missed.
    after_id: int | None = None
    order: Order = "asc"
    limit: int = 100
    tail: int | None = None  # the last N matching records, returned in ascending order


@dataclass(frozen=True, slots=True)
class Stats:
    total: int
    by_level: dict[str, int]
    by_container: dict[str, int]
    by_execution: dict[str, int]
    by_namespace: dict[str, int]
    by_workload: dict[str, int]
    truncated_lines: int
    split_lines: int
    dropped_lines: int
    last_ts_ns: int | None
    bytes: int
    by_pod: dict[str, int] = field(default_factory=dict)


# Full-text search (`Query.text`): the text is cut into tokens the way SQLite FTS5's unicode61
# tokenizer does (runs of letters and digits, case-folded); a record matches when its message holds
# those tokens consecutively, i.e. the text as a phrase. Every backend implements exactly this.
_TOKEN = re.compile(r"[^\W_]+")
MAX_TEXT_TOKENS: Final = 32


def text_tokens(text: str) -> list[str]:
    return [token.casefold() for token in _TOKEN.findall(text)]


def level_rank(level: str) -> int:
    try:
        return conventions.LEVEL_RANK[level]
    except KeyError:
        raise InvalidQuery(
            f"unknown level {level!r}; expected one of {', '.join(conventions.LEVELS)}"
        ) from None


def admitted_rank(spec: Mapping[str, Any]) -> int | None:
    """The lowest level rank a workload stores (`spec.logs.minLevel`); None when logs are off."""
    logs = spec.get("logs") or {}
    if not isinstance(logs, Mapping):
        return 0
    if logs.get("enabled") is False:
        return None
    min_level = logs.get("minLevel")
    if isinstance(min_level, str):
        return conventions.LEVEL_RANK.get(min_level.upper(), 0)
    return 0


def check_query(query: Query) -> None:
    """Raise `InvalidQuery` for a query no backend should try to answer."""
    if query.limit < 0:
        raise InvalidQuery(f"limit must not be negative, got {query.limit}")
    if query.tail is not None and query.tail < 0:
        raise InvalidQuery(f"tail must not be negative, got {query.tail}")
    if query.order not in ("asc", "desc"):
        raise InvalidQuery(f"order must be asc or desc, got {query.order!r}")
    for level in query.levels:
        level_rank(level)
    if query.min_level is not None:
        level_rank(query.min_level)
    if query.text is not None:
        tokens = text_tokens(query.text)
        if not tokens:
            raise InvalidQuery(f"the search text {query.text!r} has no word to search for")
        if len(tokens) > MAX_TEXT_TOKENS:
            raise InvalidQuery(f"the search text has more than {MAX_TEXT_TOKENS} words")


@dataclass(frozen=True, slots=True)
class Totals:
    """How much the store holds: cheap to read (kept up to date by every write)."""

    rows: int
    bytes: int  # UTF-8 bytes of messages, as `Stats.bytes`


class Store(Protocol):
    """Durable log storage. Every method is safe to call concurrently from one event loop."""

    async def open(self) -> None:
        """Connect and migrate the schema to the current version."""

    async def close(self) -> None: ...

    async def append(self, batches: Sequence[IngestBatch]) -> AppendResult:
        """Store the records not stored before, atomically per call."""

    async def append_records(self, records: Sequence[NewRecord]) -> list[StoredRecord]:
        """Store records that have no source offsets (OTLP, operator system records)."""

    async def durable_offsets(self, keys: Sequence[str]) -> dict[str, int]: ...

    async def query(self, query: Query) -> list[StoredRecord]:
        """At most `query.limit` records (or `query.tail`), ordered by (ts_ns, id)."""

    async def count(self, query: Query) -> int:
        """How many records match, ignoring paging."""

    async def stats(self, query: Query) -> Stats: ...

    async def delete(self, query: Query) -> int:
        """Delete every matching record (paging fields are ignored); returns how many."""

    async def last_id(self) -> int:
        """The highest record id stored so far (0 when empty)."""

    async def put_workload(self, workload: Workload) -> None: ...

    async def get_workload(self, key: WorkloadKey) -> Workload | None: ...

    async def find_workload(self, namespace: str | None, ident: str) -> Workload | None:
        """A workload by uid (any namespace) or by name (in `namespace`, or anywhere if unique)."""

    async def list_workloads(self, namespace: str | None = None) -> list[Workload]: ...

    async def delete_workload(self, key: WorkloadKey) -> None: ...

    async def put_pod(self, pod: Pod) -> None:
        """Register or update a pod; when it names a workload, backfill its unattributed records."""

    async def assign_pod_workload(
        self, namespace: str, pod: str, workload: WorkloadKey, pod_uid: str = ""
    ) -> int:
        """Attribute the pod's records (and dropped-line counts) that have no workload yet.

        Records of a pod that arrived before the pod was registered are stored unattributed; this
        gives them `workload` (and its uid when registered). With `pod_uid`, only records of that
        pod incarnation (or with no uid) are touched. Returns the records updated.
        """

    async def get_pod(self, namespace: str, name: str) -> Pod | None: ...

    async def list_pods(self, workload: WorkloadKey | None = None) -> list[Pod]: ...

    async def delete_pod(self, namespace: str, name: str) -> None: ...

    async def apply_retention(self, now_ns: int) -> int:
        """Enforce each workload's spec.logs.retention (maxAge, maxLines, maxBytes); rows deleted.

        See `retention_policy.parse` for the accepted spec; a workload whose retention cannot be
        parsed keeps its records (the control API rejects such specs up front).
        """

    async def meta(self) -> Mapping[str, str]:
        """Small key/value facts about the store (schema version, instance id, created time)."""


@runtime_checkable
class KeepsTotals(Protocol):
    """A store that can say how much it holds without a scan (sqlite, memory)."""

    async def totals(self) -> Totals: ...


@runtime_checkable
class EstimatesTotals(Protocol):
    """A store that can estimate how much it holds from its statistics (postgres)."""

    async def estimated_totals(self) -> Totals: ...


async def gauge_totals(store: Store) -> Totals:
    """For metrics gauges: the backend's cheap estimate where it has one, else `totals`."""
    if isinstance(store, EstimatesTotals):
        return await store.estimated_totals()
    return await totals(store)


async def totals(store: Store) -> Totals:
    """Rows and message bytes in the whole store: cheap where the backend keeps them (metrics
    scrapes call this), a full `stats` scan otherwise."""
    if isinstance(store, KeepsTotals):
        return await store.totals()
    everything = await store.stats(Query())
    return Totals(everything.total, everything.bytes)


def record_filter(query: Query) -> Callable[[NewRecord], bool]:
    """The filters of `query` as a predicate on one record, paging fields aside: what each
    field means, for the memory store and for records a live tail sees before any store does."""
    levels = frozenset(query.levels)
    min_rank = level_rank(query.min_level) if query.min_level is not None else None
    tokens = text_tokens(query.text) if query.text else None

    def matches(r: NewRecord) -> bool:
        if query.namespace is not None and r.namespace != query.namespace:
            return False
        if query.kind is not None and r.kind != query.kind:
            return False
        if query.workload is not None and r.workload != query.workload:
            return False
        if query.pod is not None and r.pod != query.pod:
            return False
        if query.containers and r.container not in query.containers:
            return False
        if query.streams and r.stream not in query.streams:
            return False
        if levels and r.level not in levels:
            return False
        if min_rank is not None and conventions.LEVEL_RANK.get(r.level, 0) < min_rank:
            return False
        if query.execution_id is not None and r.execution_id != query.execution_id:
            return False
        if query.restart is not None and r.restart != query.restart:
            return False
        if query.sources and r.source not in query.sources:
            return False
        if query.since_ns is not None and r.ts_ns < query.since_ns:
            return False
        if query.until_ns is not None and r.ts_ns >= query.until_ns:
            return False
        if tokens:
            # The query's words appear consecutively, whole and case-folded.
            words = text_tokens(r.message)
            width = len(tokens)
            return any(words[i : i + width] == tokens for i in range(len(words) - width + 1))
        return True

    return matches
