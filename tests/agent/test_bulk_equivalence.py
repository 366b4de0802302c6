"""The bulk path for whole CRI lines gives exactly what the general path gives, byte for byte.

Every generated file is read twice by a FileSource, once with the bulk path and once with every
line sent through the general path (parser lookup, merger, per-record enrichment), and the
serialized batches, counters and offsets must be identical. The lines mix what the bulk path takes
with everything it must leave alone: partials, malformed headers, other timestamp forms, CRLF,
invalid UTF-8, oversize lines, and JSON with odd field types, escapes and nesting.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tailrace.agent import filesource
from tailrace.bench import agent as bench
from tailrace.settings import LinePolicy
from tests.agent import pipeline
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


configs = st.builds(
    filesource.Config,
    node=st.just("n"),
    line_policy=st.builds(
        LinePolicy,
        st.sampled_from([1024, 16_384]),
        st.sampled_from(["truncate", "drop", "split"]),
    ),
    batch_max_records=st.just(1_000_000),
    batch_max_bytes=st.just(1 << 40),
    json_level_field=st.sampled_from(["level", "severity"]),
    json_execution_field=st.sampled_from(["executionId", "reqId"]),
    execution_id=st.sampled_from(["", "from-label"]),
)


def both_paths(
    data: bytes, config: filesource.Config, chunk: int, finish: bool
) -> tuple[pipeline.Outcome, pipeline.Outcome]:
    with tempfile.TemporaryDirectory() as temp:
        config.bulk = True
        fast = pipeline.outcome(Path(temp), data, config, chunk, finish)
        config.bulk = False
        general = pipeline.outcome(Path(temp), data, config, chunk, finish)
    return fast, general


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=log_file(),
    config=configs,
    chunk=st.sampled_from([0, 0, 7, 100, 1000, 4096]),
    finish=st.booleans(),
)
@example(
    data=cri_ts(0).encode() + b" stdout F [warning]: disk full\n",
    config=filesource.Config(),
    chunk=0,
    finish=False,
)
@example(
    data=cri_ts(0).encode()
    + b" stdout F ok\n"
    + cri_ts(1).encode().replace(b"T", b" ")
    + b" stdout F x\n",
    config=filesource.Config(),
    chunk=0,
    finish=False,
)
def test_bulk_and_general_paths_give_identical_batches(
    data: bytes, config: filesource.Config, chunk: int, finish: bool
) -> None:
    fast, general = both_paths(data, config, chunk, finish)
    assert fast == general


def test_the_bench_corpus_reads_the_same_on_both_paths() -> None:
    rng = random.Random(7)
    lines = [
        f"{cri_ts(i)} {rng.choice(['stdout', 'stdout', 'stderr'])} F ".encode()
        + bench._short_content(rng, i, rng.randint(150, 264)).encode()
        for i in range(3000)
    ]
    data = b"\n".join(lines) + b"\n"
    for label in ("", "from-label"):
        fast, general = both_paths(data, filesource.Config(execution_id=label), 0, False)
        assert fast == general
        assert fast.counts[0] == ("kept", 3000)
