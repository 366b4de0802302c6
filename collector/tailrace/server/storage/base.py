"""The `Store` contract every storage backend implements, and the shapes it speaks in.

One query model (`Query`) serves every API surface: the native API, the five compatibility
facades and the CLI all turn their parameters into a `Query`. Backends (sqlite, postgres, memory)
are sibling modules; `tailrace.server.storage.open_store(url)` picks one by URL scheme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Order = Literal["asc", "desc"]
RecordSource = Literal["agent", "otlp", "operator"]


class StoreError(Exception):
    """Base of every storage failure."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or is shutting down: the API answers 503."""


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


@dataclass(slots=True)
class StoredRecord(NewRecord):
    id: int = 0
    received_ns: int = 0


@dataclass(slots=True)
class IngestBatch:
    """Records read from one source file, with what makes their ingest idempotent.

    `end_offsets[i]` is the file offset just past record i. The store keeps, per `source_key`, the
    highest offset it has made durable, and skips every record whose end offset is not above it,
    so a resend stores nothing twice. `covered_offset` also advances the mark past lines that were
    deliberately dropped by the line-limit policy.
    """

    source_key: str
    records: list[NewRecord]
    end_offsets: list[int]
    covered_offset: int
    dropped_lines: int = 0


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: list[StoredRecord]  # the records newly stored, with ids, in id order
    duplicates: int
    durable_offsets: dict[str, int]  # per source key, after this append


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
    after_id: int | None = None  # records with id above this one, in id order (live tails)
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
        """Delete matching records; returns how many."""

    async def last_id(self) -> int:
        """The highest record id stored so far (0 when empty)."""

    async def put_workload(self, workload: Workload) -> None: ...

    async def get_workload(self, key: WorkloadKey) -> Workload | None: ...

    async def find_workload(self, namespace: str | None, ident: str) -> Workload | None:
        """A workload by uid (any namespace) or by name (in `namespace`, or anywhere if unique)."""

    async def list_workloads(self, namespace: str | None = None) -> list[Workload]: ...

    async def delete_workload(self, key: WorkloadKey) -> None: ...

    async def put_pod(self, pod: Pod) -> None: ...

    async def get_pod(self, namespace: str, name: str) -> Pod | None: ...

    async def list_pods(self, workload: WorkloadKey | None = None) -> list[Pod]: ...

    async def delete_pod(self, namespace: str, name: str) -> None: ...

    async def apply_retention(self, now_ns: int) -> int:
        """Enforce each workload's spec.logs.retention (maxAge, maxLines, maxBytes); rows deleted."""

    async def meta(self) -> Mapping[str, str]:
        """Small key/value facts about the store (schema version, instance id, created time)."""
