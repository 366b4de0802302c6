"""The golden table: formats, partials, the line limit and its edge cases, through a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailrace import records
from tests.agent import cases, pipeline
from tests.agent.pods import cri_line


@pytest.mark.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])
def test_golden_case(tmp_path: Path, case: cases.Case) -> None:
    result = pipeline.run(
        tmp_path, case.data, case.max_line_bytes, case.on_overflow, finish=case.finish
    )
    assert [(r.message, r.flags) for r in result.records] == case.expected
    assert result.dropped == case.dropped
    assert result.parse_errors == case.parse_errors
    if case.streams:
        assert [r.stream for r in result.records] == case.streams


@pytest.mark.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])
def test_golden_case_read_in_tiny_chunks_gives_the_same_records(
    tmp_path: Path, case: cases.Case
) -> None:
    whole = pipeline.run(
        tmp_path / "a", case.data, case.max_line_bytes, case.on_overflow, finish=case.finish
    )
    tiny = pipeline.run(
        tmp_path / "b",
        case.data,
        case.max_line_bytes,
        case.on_overflow,
        finish=case.finish,
        chunk=7,
    )
    assert [(r.message, r.flags, r.end_offset) for r in tiny.records] == [
        (r.message, r.flags, r.end_offset) for r in whole.records
    ]


def test_each_outcome_is_counted_by_reason(tmp_path: Path) -> None:
    data = cri_line(0, "ok") + cri_line(1, b"y" * 3000)
    for mode, outcome in (("truncate", "truncated"), ("drop", "dropped"), ("split", "split")):
        result = pipeline.run(tmp_path / mode, data, 1024, mode)  # type: ignore[arg-type]
        assert result.counts["kept"] == 1
        assert result.counts[outcome] == 1
        assert sum(result.counts.values()) == 2


def test_a_dropped_line_still_advances_the_covered_offset(tmp_path: Path) -> None:
    data = cri_line(0, b"z" * 5000)
    result = pipeline.run(tmp_path, data, 1024, "drop")
    assert result.records == []
    assert result.dropped == 1
    assert result.covered == len(data)


def test_unterminated_huge_line_is_read_in_fragments_and_truncated(tmp_path: Path) -> None:
    data = cri_line(0, b"q" * 300_000) + cri_line(1, "after")
    result = pipeline.run(tmp_path, data, long_line_bytes=64 * 1024)
    assert [(r.message[:3], len(r.message), r.flags) for r in result.records] == [
        ("qqq", cases.LIMIT, records.FLAG_TRUNCATED),
        ("aft", 5, 0),
    ]


def test_unterminated_huge_line_split_keeps_every_byte(tmp_path: Path) -> None:
    body = bytes(97 + i % 26 for i in range(200_000))
    data = cri_line(0, body) + cri_line(1, "after")
    result = pipeline.run(tmp_path, data, on_overflow="split", long_line_bytes=50_000)
    pieces = [r.message for r in result.records[:-1]]
    assert "".join(pieces).encode() == body
    assert all(len(p) <= cases.LIMIT for p in pieces)
    assert result.records[-1].message == "after"


def test_json_lines_give_level_execution_id_and_http_fields(tmp_path: Path) -> None:
    data = (
        cri_line(
            0,
            '{"level":"warn","msg":"slow","executionId":"e-1","method":"GET",'
            '"url":"/a?b=1","status":503}',
        )
        + cri_line(1, '{"level": "ERROR", "executionId": "e\\"2"}')
        + cri_line(2, '{"msg":"no level"}', "stderr")
        + cri_line(3, "DEBUG starting")
        + cri_line(4, "[warn] disk")
        + cri_line(5, "info: fine", "stderr")
        + cri_line(6, "Traceback (most recent call last):", "stderr")
        + cri_line(7, "plain")
        + cri_line(8, '{"status": 404, "url" : "/x", "method":"P\\"UT"}')
    )
    result = pipeline.run(tmp_path, data)
    got = [(r.level, r.execution_id, r.attrs) for r in result.records]
    assert got == [
        ("WARN", "e-1", {"method": "GET", "url": "/a?b=1", "status": 503}),
        ("ERROR", 'e"2', {}),
        ("ERROR", "", {}),
        ("DEBUG", "", {}),
        ("WARN", "", {}),
        ("INFO", "", {}),
        ("ERROR", "", {}),
        ("INFO", "", {}),
        ("INFO", "", {"status": 404, "url": "/x", "method": 'P"UT'}),
    ]
    assert result.records[0].message.startswith('{"level":"warn"')


def test_an_unparseable_line_takes_the_time_of_the_line_before_it(tmp_path: Path) -> None:
    data = cri_line(0, "before") + b"not a CRI line\n" + cri_line(5, "after")
    result = pipeline.run(tmp_path, data)
    before, bad, after = result.records
    assert bad.flags == records.FLAG_PARSE_ERROR
    assert bad.ts_ns == before.ts_ns < after.ts_ns
