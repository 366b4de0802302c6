"""Hypothesis strategies for container log lines: all a reader may meet, odd cases included."""

from __future__ import annotations

import json

import orjson
from hypothesis import strategies as st

from tests.agent.pods import cri_ts

LEVEL_FORMS = [
    b"ERROR ",
    b"error: ",
    b"[warn] ",
    b"[warning]: ",
    b"WARNING| ",
    b"Info, ",
    b"DEBUG",
    b"fatal",
    b"[information]: ",
    b"notice ",
    b"TRACE\t",
    b" info ",
    b"errors ",
    b"",
]
FIELD_NAMES = ["level", "severity", "executionId", "reqId", "method", "url", "status", "msg"]
strings = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=20
) | st.sampled_from(['a"b', "back\\slash", "\\", '"', "ünï", "info", "WARN", "Error", "200"])
scalars = (
    strings
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=3)
    ),
    max_leaves=4,
)


@st.composite
def json_content(draw: st.DrawFn) -> bytes:
    document = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=6))
    style = draw(st.sampled_from(["compact", "spaced", "ascii", "duplicate", "truncated"]))
    if style == "spaced":
        text = json.dumps(document).encode()
    elif style == "ascii":
        text = json.dumps(document, separators=(",", ":")).encode()  # \\uXXXX escapes
    else:
        try:
            text = orjson.dumps(document)
        except TypeError:  # an integer beyond 64 bits
            text = json.dumps(document, separators=(",", ":")).encode()
    if style == "duplicate" and len(text) > 2:
        name = draw(st.sampled_from(FIELD_NAMES))
        text = b'{"' + name.encode() + b'":"dup",' + text[1:]
    if style == "truncated":
        text = text[: draw(st.integers(1, max(1, len(text))))]
    return text


@st.composite
def plain_content(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from(LEVEL_FORMS))
    body = draw(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r")).map(
            str.encode
        )
        | st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" "))
    )
    return head + body


@st.composite
def physical_line(draw: st.DrawFn, n: int) -> bytes:
    shape = draw(
        st.sampled_from(
            ["whole"] * 12 + ["partial", "crlf", "oversize", "header", "timestamp", "garbage"]
        )
    )
    if shape == "garbage":
        return draw(st.binary(max_size=60)).replace(b"\n", b"")
    content = draw(json_content() | plain_content())
    ts = cri_ts(n).encode()
    stream = draw(st.sampled_from([b"stdout", b"stdout", b"stderr"]))
    tag = b"F"
    if shape == "partial":
        tag = b"P"
    elif shape == "crlf":
        content += b"\r"
    elif shape == "oversize":
        content += b"x" * draw(st.integers(1000, 1200))
    elif shape == "header":
        stream, tag = draw(
            st.sampled_from(
                [
                    (b"stdin", b"F"),
                    (b"stdout", b"X"),
                    (stream, b"F:x"),
                    (stream, b"FF"),
                    (b"", b"F"),
                ]
            )
        )
    elif shape == "timestamp":
        ts = draw(
            st.sampled_from(
                [
                    ts.replace(b"T", b" "),
                    ts.replace(b"T", b"t"),
                    ts[:23] + b"Z",
                    ts[:19] + b"+02:00",
                    ts[:20] + b"12x456789Z",
                    ts[:20] + b"+12345678Z",
                    b"2024-13-45T99:99:99.123456789Z",
                    ts[:29] + b"z",
                    ts + b"0",
                ]
            )
        )
    return ts + b" " + stream + b" " + tag + b" " + content


@st.composite
def log_file(draw: st.DrawFn) -> bytes:
    count = draw(st.integers(1, 40))
    # A valid first line: a parse error before any timestamp would take the clock's time.
    lines = [cri_ts(0).encode() + b" stdout F first"]
    lines += [draw(physical_line(n)) for n in range(1, count)]
    data = b"\n".join(lines) + b"\n"
    if draw(st.booleans()):
        data = data[:-1]  # the last line not terminated yet
    return data
