"""Chunks: how both stores (SQLite, and PostgreSQL through `postgres_chunks`) keep records, many
to a row.

A chunk holds up to `CHUNK_RECORDS` consecutive records of one origin (namespace, pod, container,
workload, restart, source: the fields every record of one agent batch shares) with consecutive
ids: record i of chunk c has id `c.id + i`. Its per-record columns (time, stream, level, flags,
message, execution id, attrs) are the row's `data` blob, laid out so that reading it back costs
a few copies rather than a parse per record (`_HEADER`); the row next to it holds what the
indexes and the planner need (min/max time, the scope refs, a bitmask of levels, the live count
and bytes).

The records of one chunk span at most `CHUNK_SPAN_NS` of timestamps. That bound is what lets a
page at a cursor find every chunk straddling the cursor by an index range (`max_ts <= T + span`)
instead of a scan: the ingest side cuts a chunk early rather than let it span more.

Records deleted out of a chunk that keeps others are marked in a tombstone bitmap (`dead`, an
integer's little-endian bytes, bit i for record i); the blob never changes, so the chunk's FTS5
text (`fts_text`) can always be rebuilt from it, which removing an FTS5 entry requires.
"""

from __future__ import annotations

import array
import operator
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import Any, Final

import orjson

from tailrace import conventions, records
from tailrace.server.storage import base

CHUNK_RECORDS: Final = 256
CHUNK_SPAN_NS: Final = 60 * 1_000_000_000
# Marks a scope token in FTS5 text: a private-use character that FTS5's unicode61 tokenizer keeps
# inside a token and that a query's tokens (letters and digits) never hold.
SCOPE_MARK: Final = "\ue000"

# The blob: a header (record count, text bytes), then fixed-width columns (ts_ns int64, message
# end offsets uint32, little-endian), one byte per record each for stream, level and flags, the
# messages' UTF-8 text, and a JSON object of the sparse columns ({"e": [[i, execution id]...],
# "a": [[i, attrs]...]}) when any record has one.
_HEADER: Final = struct.Struct("<II")
_SWAP: Final = sys.byteorder != "little"
_STREAM_CODES: Final = records.STREAM_CODES
_STREAM_NAMES: Final = records.STREAM_NAMES
_LEVELS: Final = conventions.LEVELS
_LEVEL_RANK: Final = conventions.LEVEL_RANK
_INFO: Final = _LEVEL_RANK["INFO"]

# The fields every record of a chunk shares, in the order of the `origins` table's columns.
ORIGIN_FIELDS: Final = (
    "namespace",
    "kind",
    "workload",
    "workload_uid",
    "pod",
    "pod_uid",
    "container",
    "container_id",
    "restart",
    "source",
)
origin_of = operator.attrgetter(*ORIGIN_FIELDS)
_get_ts = operator.attrgetter("ts_ns")
_get_message = operator.attrgetter("message")
_get_level = operator.attrgetter("level")
_get_stream = operator.attrgetter("stream")
_get_flags = operator.attrgetter("flags")
_get_execution = operator.attrgetter("execution_id")
_get_attrs = operator.attrgetter("attrs")


def odd_stream(stream: str) -> str:
    """The stream kept on the origin: '' for stdout/stderr (coded per record), else the name."""
    return "" if stream in _STREAM_CODES else stream


def scope_token(workload_ref: int) -> str:
    """The FTS5 query term matching the chunks of one workload ref (see `fts_text`)."""
    return f'"{SCOPE_MARK}{workload_ref}"'


def fts_text(messages: Sequence[str], workload_ref: int) -> str:
    """What FTS5 indexes for a chunk: its messages, then a token naming its workload ref."""
    return "\n".join(messages) + f" {SCOPE_MARK}{workload_ref}"


@dataclass(slots=True)
class Encoded:
    """A chunk ready to insert."""

    data: bytes
    messages: list[str]
    min_ts: int
    max_ts: int
    levels: int  # bit 1 << rank for every level present
    size: int  # UTF-8 bytes of the messages
    executions: set[str]


def encode(chunk: Sequence[base.NewRecord]) -> Encoded:
    """The blob of `chunk` (records of one origin), built column by column (with C-level maps:
    this runs for every record ingested)."""
    ts = array.array("q", map(_get_ts, chunk))
    messages = list(map(_get_message, chunk))
    level_codes = bytes(map(_LEVEL_RANK.get, map(_get_level, chunk), repeat(_INFO)))
    stream_codes = bytes(map(_STREAM_CODES.get, map(_get_stream, chunk), repeat(0)))
    flags = bytes([f & 0xFF for f in map(_get_flags, chunk)])
    joined = "".join(messages)
    text = joined.encode()
    if len(text) == len(joined):
        ends = array.array("I", accumulate(map(len, messages)))
    else:
        ends = array.array("I", accumulate(len(m.encode()) for m in messages))
    sparse: dict[str, list[Any]] = {}
    executions: set[str] = set()
    if any(map(_get_execution, chunk)) or any(map(_get_attrs, chunk)):
        for index, record in enumerate(chunk):
            if record.execution_id:
                sparse.setdefault("e", []).append((index, record.execution_id))
                executions.add(record.execution_id)
            if record.attrs:
                sparse.setdefault("a", []).append((index, record.attrs))
    if _SWAP:
        ts.byteswap()
        ends.byteswap()
    data = b"".join(
        (
            _HEADER.pack(len(chunk), len(text)),
            ts.tobytes(),
            ends.tobytes(),
            stream_codes,
            level_codes,
            flags,
            text,
            orjson.dumps(sparse) if sparse else b"",
        )
    )
    mask = 0
    for code in set(level_codes):
        mask |= 1 << code
    return Encoded(data, messages, min(ts), max(ts), mask, len(text), executions)


def runs(records: list[base.NewRecord]) -> Iterator[list[base.NewRecord]]:
    """`records` cut into runs of one origin (and one stream other than stdout/stderr, if any):
    consecutive records a chunk may hold together. An agent's batch is one run."""
    if not records:
        return
    origins = list(map(origin_of, records))
    odd = [odd_stream(stream) for stream in map(_get_stream, records)]
    count = len(records)
    if origins.count(origins[0]) == count and odd.count(odd[0]) == count:
        yield records
        return
    start = 0
    while start < count:
        key, stream = origins[start], odd[start]
        end = start + 1
        while end < count and origins[end] == key and odd[end] == stream:
            end += 1
        yield records[start:end]
        start = end


def split(run: list[base.StoredRecord]) -> Iterator[list[base.StoredRecord]]:
    """`run` (records of one origin) cut into chunks of at most CHUNK_RECORDS records spanning
    at most CHUNK_SPAN_NS each."""
    for start in range(0, len(run), CHUNK_RECORDS):
        piece = run[start : start + CHUNK_RECORDS]
        ts = [r.ts_ns for r in piece]
        if max(ts) - min(ts) <= CHUNK_SPAN_NS:
            yield piece
            continue
        first = 0
        low = high = ts[0]
        for i, t in enumerate(ts):
            low, high = min(low, t), max(high, t)
            if high - low > CHUNK_SPAN_NS:
                yield piece[first:i]
                first, low, high = i, t, t
        yield piece[first:]


@dataclass(slots=True)
class Origin:
    """A row of `origins`: what every record of a chunk shares."""

    namespace: str
    kind: str
    workload: str
    workload_uid: str
    pod: str
    pod_uid: str
    container: str
    container_id: str
    restart: int
    source: str
    stream: str  # the stream of records coded 0 (neither stdout nor stderr)


class Chunk:
    """A chunk read back: the fixed-width columns are read at once (a copy each), messages and
    the sparse columns only when asked for."""

    __slots__ = (
        "_executions",
        "_messages",
        "_sparse",
        "dead",
        "ends",
        "flags",
        "id",
        "levels",
        "n",
        "origin",
        "received_ns",
        "streams",
        "text",
        "ts",
    )

    def __init__(
        self, chunk_id: int, n: int, received_ns: int, origin: Origin, dead: int, data: bytes
    ) -> None:
        self.id = chunk_id
        self.n = n
        self.received_ns = received_ns
        self.origin = origin
        self.dead = dead
        count, text_size = _HEADER.unpack_from(data)
        at = _HEADER.size
        self.ts = array.array("q")
        self.ts.frombytes(data[at : at + 8 * count])
        at += 8 * count
        self.ends = array.array("I")
        self.ends.frombytes(data[at : at + 4 * count])
        at += 4 * count
        if _SWAP:
            self.ts.byteswap()
            self.ends.byteswap()
        self.streams = data[at : at + count]
        self.levels = data[at + count : at + 2 * count]
        self.flags = data[at + 2 * count : at + 3 * count]
        at += 3 * count
        self.text = data[at : at + text_size]
        self._sparse = data[at + text_size :]
        self._messages: list[str] | None = None
        self._executions: dict[int, str] | None = None

    def length(self, i: int) -> int:
        """UTF-8 bytes of record i's message."""
        return self.ends[i] - (self.ends[i - 1] if i else 0)

    def live(self) -> list[int]:
        """Indexes of the records not deleted."""
        if not self.dead:
            return list(range(self.n))
        dead = self.dead
        return [i for i in range(self.n) if not dead >> i & 1]

    def message(self, i: int) -> str:
        if self._messages is not None:
            return self._messages[i]
        raw = self.text[(self.ends[i - 1] if i else 0) : self.ends[i]]
        return raw.decode("ascii") if raw.isascii() else raw.decode("utf-8", "replace")

    def messages(self) -> list[str]:
        if self._messages is None:
            text, ends = self.text, self.ends
            starts = [0, *ends[:-1]]
            if text.isascii():
                whole = text.decode("ascii")
                self._messages = [whole[a:b] for a, b in zip(starts, ends, strict=True)]
            else:
                self._messages = [
                    text[a:b].decode("utf-8", "replace") for a, b in zip(starts, ends, strict=True)
                ]
        return self._messages

    def _sparse_columns(self) -> dict[str, list[Any]]:
        return orjson.loads(self._sparse) if self._sparse else {}

    def executions(self) -> dict[int, str]:
        if self._executions is None:
            self._executions = {i: e for i, e in self._sparse_columns().get("e", ())}
        return self._executions

    def stream(self, i: int) -> str:
        code = self.streams[i]
        return _STREAM_NAMES[code] if code else self.origin.stream

    def attrs(self, i: int) -> dict[str, Any]:
        if not self._sparse:
            return {}
        for index, value in self._sparse_columns().get("a", ()):
            if index == i:
                return value  # type: ignore[no-any-return]
        return {}

    def record(self, i: int) -> base.StoredRecord:
        o = self.origin
        return base.StoredRecord(
            ts_ns=self.ts[i],
            namespace=o.namespace,
            pod=o.pod,
            container=o.container,
            stream=self.stream(i),
            level=_LEVELS[self.levels[i]],
            message=self.message(i),
            kind=o.kind,
            workload=o.workload,
            workload_uid=o.workload_uid,
            pod_uid=o.pod_uid,
            container_id=o.container_id,
            restart=o.restart,
            execution_id=self.executions().get(i, "") if self._sparse else "",
            attrs=self.attrs(i),
            source=o.source,  # type: ignore[arg-type]
            flags=self.flags[i],
            id=self.id + i,
            received_ns=self.received_ns,
        )


def dead_bits(blob: bytes | None) -> int:
    return int.from_bytes(blob, "little") if blob else 0


def dead_blob(bits: int) -> bytes | None:
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little") if bits else None
