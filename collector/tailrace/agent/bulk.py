"""Whole CRI lines turned into batch columns a read buffer at a time.

Nearly every line of a container log is complete (`F`), ASCII, under the line limit, and starts
with the 40-byte header containerd writes: `2024-01-02T03:04:05.123456789Z stdout F `. For a run
of such lines each column of the batch is computed for the whole run with `map` over C functions
(slices, dict lookups, `int`, `accumulate`), so the interpreter does not execute a loop body per
line; only JSON lines get a Python call each, for their fields. At a few microseconds per line,
one bytecode loop iteration with a dozen operations is most of the budget.

`Chunk` finds, with the same bulk operations, the lines that do not have that shape (partials,
other timestamp forms, CRLF, non-ASCII or oversize lines, parse errors); `FileSource` feeds those,
and everything while a partial line is pending, through the general path. Both paths give the
same records; tests/agent/test_bulk_equivalence.py holds them to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate, compress, islice, repeat
from operator import add, itemgetter, sub
from typing import Final, TypeVar

from tailrace.agent import enrichment, timestamps
from tailrace.wire import codec

HEADER = 40  # bytes before the content: timestamp (30), " stdout F " (10)

# What bytes 29..40 of a line say about it: the end of the timestamp, stream, tag, and the first
# content byte, which tells a JSON line (`{`) from a plain one. Anything else is not whole-line
# material. A line that is exactly its header (empty content) has only bytes 29..39.
_PLAIN_OUT, _JSON_OUT, _PLAIN_ERR, _JSON_ERR = 1, 2, 3, 4


def _kinds() -> dict[bytes, int]:
    kinds = {}
    for stream, plain, json in (
        (b"stdout", _PLAIN_OUT, _JSON_OUT),
        (b"stderr", _PLAIN_ERR, _JSON_ERR),
    ):
        tail = b"Z " + stream + b" F "
        kinds[tail] = plain
        for byte in range(256):
            kinds[tail + bytes([byte])] = json if byte == 0x7B else plain  # `{`
    return kinds


_KINDS: Final = _kinds()


def _table(mapping: dict[int, int]) -> bytes:
    return bytes(mapping.get(kind, 0) for kind in range(256))


_STREAM_OF: Final = _table(
    {
        _PLAIN_OUT: enrichment.STDOUT,
        _JSON_OUT: enrichment.STDOUT,
        _PLAIN_ERR: enrichment.STDERR,
        _JSON_ERR: enrichment.STDERR,
    }
)
_DEFAULT_LEVEL_OF: Final = _table(
    {kind: enrichment.DEFAULT_LEVELS[stream] for kind, stream in enumerate(_STREAM_OF) if stream}
)
_IS_JSON: Final = _table({_JSON_OUT: 1, _JSON_ERR: 1})
_IS_PLAIN: Final = _table({_PLAIN_OUT: 1, _PLAIN_ERR: 1})

_KIND_BYTES = itemgetter(slice(29, HEADER + 1))
_PREFIX = itemgetter(slice(0, 20))  # `2024-01-02T03:04:05.`: the second, cached by timestamps
_FRACTION = itemgetter(slice(20, 29))
_CONTENT = itemgetter(slice(HEADER, None))
# Enough of the content to hold any leading level word and the space after it.
_WORD_WINDOW = itemgetter(slice(HEADER, HEADER + enrichment.LEADING_MAX + 1))
_FIRST = itemgetter(0)
_T = TypeVar("_T", str, bytes)


class Chunk:
    """The physical lines of one read buffer, classified for the bulk path."""

    __slots__ = ("bases", "fractions", "irregular", "kinds", "lengths", "lines", "prefixes")

    def __init__(self, lines: list[bytes], blocks: tuple[bytes, ...], max_line_bytes: int) -> None:
        """`blocks` hold the bytes of `lines` (and maybe more): one scan of each clears them all
        of a CR or a non-ASCII byte, so the per-line checks run only when one has such a byte."""
        self.lines = lines
        self.kinds = kinds = bytes(map(_KINDS.get, map(_KIND_BYTES, lines), repeat(0)))
        self.prefixes = prefixes = list(map(_PREFIX, lines))
        self.fractions = fractions = list(map(_FRACTION, lines))
        self.lengths = lengths = list(map(len, lines))
        self.bases = bases = {prefix: _base(prefix) for prefix in set(prefixes)}
        irregular: list[int] = []
        at = kinds.find(0)
        while at >= 0:
            irregular.append(at)
            at = kinds.find(0, at + 1)
        if None in bases.values():
            irregular += [i for i, prefix in enumerate(prefixes) if bases[prefix] is None]
        if not all(map(bytes.isdigit, fractions)):
            irregular += [i for i, fraction in enumerate(fractions) if not fraction.isdigit()]
        if lengths and max(lengths) > HEADER + max_line_bytes:
            longest = HEADER + max_line_bytes
            irregular += [i for i, length in enumerate(lengths) if length > longest]
        if not all(map(bytes.isascii, blocks)):
            irregular += [i for i, line in enumerate(lines) if not line.isascii()]
        if any(b"\r" in block for block in blocks):
            # containerd keeps a CR before the newline; the general path strips it.
            irregular += [i for i, line in enumerate(lines) if line.endswith(b"\r")]
        self.irregular = sorted(set(irregular)) if irregular else irregular

    def append_run(
        self,
        cols: codec.Columns,
        start: int,
        stop: int,
        offset: int,
        enricher: enrichment.Enricher,
    ) -> int:
        """Append lines[start:stop] (none of them irregular), the first starting at file offset
        `offset`, as kept records; returns their content bytes."""
        count = stop - start
        run = self.lines[start:stop]
        kinds = self.kinds[start:stop]
        lengths = self.lengths[start:stop]
        first = len(cols.ts)
        base = self.bases.__getitem__
        cols.ts += map(
            add, map(base, self.prefixes[start:stop]), map(int, self.fractions[start:stop])
        )
        cols.ends += islice(accumulate(map(add, lengths, repeat(1)), initial=offset), 1, None)
        cols.streams += kinds.translate(_STREAM_OF)
        cols.flags += bytes(count)
        contents = list(map(_CONTENT, run))
        cols.texts += contents
        cols.lengths += map(sub, lengths, repeat(HEADER))
        self._levels_and_fields(cols, first, run, contents, kinds, enricher)
        return sum(lengths) - HEADER * count

    @staticmethod
    def _levels_and_fields(
        cols: codec.Columns,
        first: int,
        run: list[bytes],
        contents: list[bytes],
        kinds: bytes,
        enricher: enrichment.Enricher,
    ) -> None:
        """The levels of a run, and its execution ids and attrs, the first line at index `first`.

        Plain lines get the level word leading them (else the stream's default) in bulk; JSON
        lines get their fields a run at a time (`Enricher.json_fields_many`), or, when one of
        them does not parse, a call each. The two level sequences are then merged back into
        line order.
        """
        label_execution_id = enricher.execution_id
        defaults = kinds.translate(_DEFAULT_LEVEL_OF)
        is_json = kinds.translate(_IS_JSON)
        is_plain = kinds.translate(_IS_PLAIN)
        words = map(
            _FIRST, map(bytes.partition, map(_WORD_WINDOW, compress(run, is_plain)), repeat(b" "))
        )
        plain_levels = map(enrichment.LEADING_WORDS.get, words, compress(defaults, is_plain))
        json_levels: list[int] = []
        ids = [label_execution_id] * len(run) if label_execution_id else None
        attrs_index, attrs_json = cols.attrs_index, cols.attrs_json
        exec_index, exec_ids = cols.exec_index, cols.exec_ids
        json_at = list(compress(range(len(run)), is_json))
        many = (
            enricher.json_fields_many(
                list(compress(contents, is_json)), bytes(compress(defaults, is_json))
            )
            if len(json_at) > 1
            else None
        )
        if many is not None:
            json_levels, json_ids, json_attrs = many
            if ids is not None:
                for k, execution_id in zip(json_at, json_ids, strict=True):
                    ids[k] = execution_id
            else:
                _add_sparse(exec_index, exec_ids, json_at, json_ids, first)
            _add_sparse(attrs_index, attrs_json, json_at, json_attrs, first)
        for k in json_at if many is None else ():
            level, execution_id, attrs = enricher.json_fields(contents[k], defaults[k])
            json_levels.append(level)
            if ids is not None:
                ids[k] = execution_id
            elif execution_id:
                exec_index.append(first + k)
                exec_ids.append(execution_id)
            if attrs:
                attrs_index.append(first + k)
                attrs_json.append(attrs)
        if not json_levels:
            cols.levels += bytes(plain_levels)
        else:
            cols.levels += bytes(_interleave(is_json, plain_levels, iter(json_levels)))
        if ids is not None:
            if "" in ids:  # a JSON line said `"executionId":""`: it has none, label or not
                kept = [k for k, execution_id in enumerate(ids) if execution_id]
                exec_index += [first + k for k in kept]
                exec_ids += [ids[k] for k in kept]
            else:
                exec_index += range(first, first + len(run))
                exec_ids += ids


def _add_sparse(
    index: list[int], values: list[_T], at: list[int], found: list[_T], first: int
) -> None:
    """Append the values found (not empty) and their indexes in the batch (`first` + `at`)."""
    if all(found):  # every line has one: no filtering
        index += map(add, at, repeat(first))
        values += found
    else:
        index += map(add, compress(at, found), repeat(first))
        values += filter(None, found)


def _interleave(mask: bytes, zeros: Iterator[int], ones: Iterator[int]) -> Iterator[int]:
    """The next of `zeros` where `mask` has a 0, the next of `ones` where it has a 1, in C."""
    return map(next, map((zeros, ones).__getitem__, mask))


def _base(prefix: bytes) -> int | None:
    """Nanoseconds of a `YYYY-MM-DDTHH:MM:SS.` prefix, or None when CRI parsing would refuse it.

    The timestamp grammar accepts a space for the `T`, but a CRI line's timestamp ends at its
    first space, so such a line is not CRI at all (a parse error on the general path).
    """
    if b" " in prefix:
        return None
    return timestamps.prefix_ns(prefix)
