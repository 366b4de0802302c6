"""Property tests of the pure reassembly state machine: any P-chunking reassembles exactly."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tailrace import records
from tailrace.agent import reassembly

OUT, ERR = records.STREAM_CODES["stdout"], records.STREAM_CODES["stderr"]
lines = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=3000
).map(str.encode)


@st.composite
def chunked(draw: st.DrawFn, line: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(line)), max_size=12)))
    bounds = [0, *cuts, len(line)]
    return [line[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(
    merger: reassembly.Merger, chunks: list[tuple[int, bytes, bool]]
) -> list[reassembly.Line]:
    out: list[reassembly.Line] = []
    offset = 0
    for stream, content, partial in chunks:
        start = offset
        offset += len(content) + 40
        out += merger.feed(0, stream, partial, content, start, start + 39, offset, 0.0)
    return out + merger.flush()


def as_records(chunks: list[bytes], stream: int) -> list[tuple[int, bytes, bool]]:
    return [(stream, c, i < len(chunks) - 1) for i, c in enumerate(chunks)]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), line=lines)
def test_any_chunking_of_a_line_reassembles_exactly(data: st.DataObject, line: bytes) -> None:
    chunks = data.draw(chunked(line))
    merger = reassembly.Merger(max_line_bytes=1 << 20)
    [out] = feed_all(merger, as_records(chunks, OUT))
    assert out.message == line
    assert out.flags == 0
    assert merger.resume_offset(123) == 123


@settings(max_examples=100, deadline=None)
@given(data=st.data(), a=lines, b=lines)
def test_interleaved_streams_reassemble_apart_in_offset_order(
    data: st.DataObject, a: bytes, b: bytes
) -> None:
    left = as_records(data.draw(chunked(a)), OUT)
    right = as_records(data.draw(chunked(b)), ERR)
    order = data.draw(st.permutations([0] * len(left) + [1] * len(right)))
    queues = [list(left), list(right)]
    merged = [queues[i].pop(0) for i in order]
    out = feed_all(reassembly.Merger(max_line_bytes=1 << 20), merged)
    assert {(line.stream, line.message) for line in out} == {(OUT, a), (ERR, b)}
    ends = [line.end_offset for line in out]
    assert ends == sorted(set(ends))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), line=lines, limit=st.integers(4, 600))
def test_split_pieces_fit_the_limit_and_join_to_the_line(
    data: st.DataObject, line: bytes, limit: int
) -> None:
    chunks = data.draw(chunked(line))
    merger = reassembly.Merger(max_line_bytes=limit, on_overflow="split")
    out = feed_all(merger, as_records(chunks, OUT))
    assert b"".join(piece.message or b"" for piece in out) == line
    assert all(len(piece.message or b"") <= limit for piece in out)
    ends = [piece.end_offset for piece in out]
    assert ends == sorted(set(ends))
    for piece in out:
        (piece.message or b"").decode()  # every piece is valid UTF-8 on its own


@settings(max_examples=150, deadline=None)
@given(data=st.data(), line=lines, limit=st.integers(4, 600))
def test_truncation_keeps_a_valid_utf8_prefix_within_the_limit(
    data: st.DataObject, line: bytes, limit: int
) -> None:
    chunks = data.draw(chunked(line))
    [out] = feed_all(reassembly.Merger(max_line_bytes=limit), as_records(chunks, OUT))
    assert out.message is not None
    assert line.startswith(out.message)
    assert len(out.message) <= limit
    out.message.decode()
    if len(line) > limit:
        assert out.flags == records.FLAG_TRUNCATED
        assert len(out.message) >= limit - 3
    else:
        assert out.message == line


def test_a_line_still_arriving_is_not_flushed_by_the_timeout() -> None:
    merger = reassembly.Merger(timeout_s=4.0)
    offset = 0
    for second in range(20):  # a chunk every second, for longer than the timeout
        assert merger.feed(0, OUT, True, b"x", offset, offset, offset + 10, float(second)) == []
        offset += 10
        assert merger.expire(float(second) + 0.9) == []
    [line] = merger.feed(0, OUT, False, b"end", offset, offset, offset + 10, 20.0)
    assert line.message == b"x" * 20 + b"end"
    assert line.flags == 0


def test_a_dangling_partial_is_flushed_after_the_timeout_and_flagged() -> None:
    merger = reassembly.Merger(timeout_s=5.0)
    assert merger.feed(0, OUT, True, b"half", 0, 10, 20, 100.0) == []
    assert merger.expire(104.9) == []
    [line] = merger.expire(105.0)
    assert (line.message, line.flags, line.end_offset) == (b"half", records.FLAG_PARTIAL_FLUSH, 20)
    assert merger.resume_offset(20) == 20
