"""Golden cases for the reading pipeline, shared between tests (Vector's `cases()` style)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tailrace import conventions, records
from tests.agent.pods import cri_line

TS = "2024-01-02T03:04:05.123456789Z"
T, S, PE, PF = (
    records.FLAG_TRUNCATED,
    records.FLAG_SPLIT,
    records.FLAG_PARSE_ERROR,
    records.FLAG_PARTIAL_FLUSH,
)
LIMIT = conventions.DEFAULT_MAX_LINE_BYTES


def p_chunks(n: int, text: bytes, stream: str = "stdout", size: int = 16_384) -> bytes:
    """`text` as containerd writes it: P records of `size` bytes closed by an F record."""
    pieces = [text[i : i + size] for i in range(0, len(text), size)] or [b""]
    out = b"".join(cri_line(n, piece, stream, "P") for piece in pieces[:-1])
    return out + cri_line(n, pieces[-1], stream, "F")


@dataclass
class Case:
    name: str
    data: bytes
    expected: list[tuple[str, int]]  # (message, flags)
    on_overflow: conventions.OverflowPolicy = "truncate"
    max_line_bytes: int = LIMIT
    finish: bool = False
    dropped: int = 0
    parse_errors: int = 0
    streams: list[str] = field(default_factory=list)


MIB = b"".join(bytes([97 + i % 26]) for i in range(26)) * (1024 * 1024 // 26 + 1)
MIB = MIB[: 1024 * 1024]
EURO = "€"  # three bytes in UTF-8

CASES = [
    Case("exactly 16384 bytes is kept", cri_line(0, b"a" * LIMIT), [("a" * LIMIT, 0)]),
    Case(
        "16385 bytes is truncated to 16384",
        cri_line(0, b"a" * (LIMIT + 1)),
        [("a" * LIMIT, T)],
    ),
    Case(
        "an unsplit 100 KiB line is truncated and the file read on",
        cri_line(0, b"u" * 102_400) + cri_line(1, "next"),
        [("u" * LIMIT, T), ("next", 0)],
    ),
    Case(
        "1 MiB in 16 KiB P chunks is truncated to its head",
        p_chunks(0, MIB),
        [(MIB[:LIMIT].decode(), T)],
    ),
    Case(
        "1 MiB in 16 KiB P chunks is split into 64 pieces",
        p_chunks(0, MIB),
        [(MIB[i : i + LIMIT].decode(), S) for i in range(0, len(MIB), LIMIT)],
        on_overflow="split",
    ),
    Case("1 MiB in 16 KiB P chunks is dropped", p_chunks(0, MIB), [], "drop", dropped=1),
    Case(
        "1 MiB reassembles whole when the limit allows it",
        p_chunks(0, MIB),
        [(MIB.decode(), 0)],
        max_line_bytes=conventions.MAX_MAX_LINE_BYTES,
    ),
    Case(
        "interleaved stdout and stderr partials are kept apart",
        cri_line(0, "out-1 ", "stdout", "P")
        + cri_line(1, "err-1 ", "stderr", "P")
        + cri_line(2, "out-2", "stdout", "F")
        + cri_line(3, "err-2", "stderr", "F"),
        [("out-1 out-2", 0), ("err-1 err-2", 0)],
        streams=["stdout", "stderr"],
    ),
    Case(
        "a complete line of one stream waits for the earlier partial of the other",
        cri_line(0, "out-1 ", "stdout", "P")
        + cri_line(1, "err", "stderr", "F")
        + cri_line(2, "out-2", "stdout", "F"),
        [("err", 0), ("out-1 out-2", 0)],
        streams=["stderr", "stdout"],
    ),
    Case(
        "a trailing P at end of file is flushed when the container exits",
        cri_line(0, "done") + cri_line(1, "half a line", tag="P"),
        [("done", 0), ("half a line", PF)],
        finish=True,
    ),
    Case(
        "a trailing P at end of file waits while the container runs",
        cri_line(0, "done") + cri_line(1, "half a line", tag="P"),
        [("done", 0)],
    ),
    Case(
        "invalid UTF-8 is replaced, not dropped",
        cri_line(0, b"bad \xff\xfe bytes"),
        [("bad \ufffd\ufffd bytes", 0)],
    ),
    Case("CRLF line endings lose the CR", cri_line(0, b"windows\r"), [("windows", 0)]),
    Case(
        "empty lines are kept",
        cri_line(0, b"") + f"{TS} stdout F\n".encode(),
        [("", 0), ("", 0)],
    ),
    Case(
        "a blank physical line is a parse error forwarded as-is",
        b"\n" + cri_line(0, "after"),
        [("", PE), ("after", 0)],
        parse_errors=1,
    ),
    Case(
        "malformed timestamps are parse errors forwarded as-is",
        b"2024-13-45T99:99:99Z stdout F bad date\n"
        + b"yesterday stdout F no date\n"
        + b"2024-01-02T03:04:05.12x4Z stdout F bad fraction\n"
        + cri_line(0, "good"),
        [
            ("2024-13-45T99:99:99Z stdout F bad date", PE),
            ("yesterday stdout F no date", PE),
            ("2024-01-02T03:04:05.12x4Z stdout F bad fraction", PE),
            ("good", 0),
        ],
        parse_errors=3,
    ),
    Case(
        "an unknown stream or tag is a parse error",
        f"{TS} stdin F x\n{TS} stdout X y\n".encode(),
        [(f"{TS} stdin F x", PE), (f"{TS} stdout X y", PE)],
        parse_errors=2,
    ),
    Case(
        "timestamps with offsets and short fractions parse",
        b"2024-01-02T03:04:05+02:00 stdout F zone\n2024-01-02T03:04:05.5Z stdout F short\n",
        [("zone", 0), ("short", 0)],
    ),
    Case(
        "a multibyte character is never cut at the limit (truncate)",
        cri_line(0, ("a" + EURO * 400).encode()),
        [("a" + EURO * 341, T)],
        max_line_bytes=1024,
    ),
    Case(
        "a multibyte character is never cut at the limit (split)",
        cri_line(0, ("a" + EURO * 400).encode()),
        [("a" + EURO * 341, S), (EURO * 59, S)],
        on_overflow="split",
        max_line_bytes=1024,
    ),
    Case(
        "truncate keeps the head of an oversize line",
        cri_line(0, b"x" * 2500) + cri_line(1, "next"),
        [("x" * 1024, T), ("next", 0)],
        max_line_bytes=1024,
    ),
    Case(
        "drop accounts for an oversize line without forwarding it",
        cri_line(0, b"x" * 2500) + cri_line(1, "next"),
        [("next", 0)],
        on_overflow="drop",
        max_line_bytes=1024,
        dropped=1,
    ),
    Case(
        "split forwards every byte of an oversize line in pieces",
        cri_line(0, b"x" * 2500) + cri_line(1, "next"),
        [("x" * 1024, S), ("x" * 1024, S), ("x" * 452, S), ("next", 0)],
        on_overflow="split",
        max_line_bytes=1024,
    ),
    Case(
        "docker json-file lines are read, partials joined",
        b'{"log":"hello\\n","stream":"stdout","time":"2024-01-02T03:04:05.1Z"}\n'
        b'{"log":"part-","stream":"stderr","time":"2024-01-02T03:04:05.2Z"}\n'
        b'{"log":"two \\"quoted\\"\\n","stream":"stderr","time":"2024-01-02T03:04:05.3Z"}\n'
        b"not json at all\n",
        [("hello", 0), ('part-two "quoted"', 0), ("not json at all", PE)],
        parse_errors=1,
    ),
]
