"""Byte-search field extraction agrees with a real JSON parser on generated JSON log lines."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tailrace.agent import enrichment
from tests.agent import linegen, reference_fields

WANTED = ("level", "executionId", "method", "url", "status")
levels = st.sampled_from(["info", "INFO", "warn", "Error", "debug", "fatal", "trace", "bogus"])
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
values = {
    "level": levels,
    "executionId": strings,
    "method": st.sampled_from(["GET", "POST", "PUT"]),
    "url": strings,
    "status": st.integers(100, 599),
}


@st.composite
def json_lines(draw: st.DrawFn) -> dict[str, object]:
    fields = draw(st.lists(st.sampled_from(WANTED), unique=True))
    document: dict[str, object] = {name: draw(values[name]) for name in fields}
    extra = draw(st.dictionaries(st.sampled_from(["msg", "ts", "p", "n"]), strings, max_size=3))
    document.update(extra)
    return document


@settings(max_examples=300, deadline=None)
@given(document=json_lines(), spaced=st.booleans())
def test_fields_found_by_byte_search_match_a_json_parse(
    document: dict[str, object], spaced: bool
) -> None:
    line = orjson.dumps(document)
    if spaced:
        line = line.replace(b'":', b'" : ', 1)
    level, execution_id, attrs = enrichment.Enricher().json_fields(line, enrichment.INFO)
    word = document.get("level")
    expected_level = enrichment.LEVEL_WORDS.get(str(word).encode().lower(), -1) if word else -1
    assert level == (expected_level if expected_level >= 0 else enrichment.INFO)
    assert execution_id == document.get("executionId", "")
    expected_attrs = {k: document[k] for k in ("method", "url", "status") if k in document}
    assert (orjson.loads(attrs) if attrs else {}) == expected_attrs


def expected_fields(
    content: bytes, level_field: str, execution_field: str, label: str, default: int
) -> tuple[int, str, bytes]:
    """What a line's fields are, said plainly: a JSON object's own fields, else a byte search."""
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        reference = reference_fields.Enricher(level_field, execution_field, label)
        return reference.json_fields(content, default)
    word = document.get(level_field)
    level = default
    if isinstance(word, str):
        level = enrichment.LEVEL_WORDS.get(word.lower().encode(), default)
    execution_id = document.get(execution_field)
    if not isinstance(execution_id, str):
        execution_id = label
    attrs = {
        name: document[name]
        for name in ("method", "url", "status")
        if isinstance(document.get(name), str)
        or (type(document.get(name)) is int and document[name] >= 0)
    }
    return level, execution_id, orjson.dumps(attrs) if attrs else b""


@settings(max_examples=1000, deadline=None)
@given(
    content=linegen.json_content() | linegen.plain_content() | st.binary(max_size=80),
    fields=st.sampled_from([("level", "executionId"), ("severity", "reqId"), ("lvl", "level")]),
    label=st.sampled_from(["", "from-label"]),
    default=st.sampled_from([enrichment.INFO, enrichment.ERROR]),
)
def test_fields_are_the_objects_own_or_else_those_a_byte_search_finds(
    content: bytes, fields: tuple[str, str], label: str, default: int
) -> None:
    """Odd types, escapes, nesting, duplicates, JSON cut short: exactly the expected fields."""
    level_field, execution_field = fields
    tuned = enrichment.Enricher(level_field, execution_field, label)
    expected = expected_fields(content, level_field, execution_field, label, default)
    assert tuned.json_fields(content, default) == expected


@settings(max_examples=500, deadline=None)
@given(
    contents=st.lists(linegen.json_content(), min_size=1, max_size=8),
    fields=st.sampled_from([("level", "executionId"), ("severity", "reqId"), ("lvl", "level")]),
    label=st.sampled_from(["", "from-label"]),
    defaults=st.lists(st.sampled_from([enrichment.INFO, enrichment.ERROR]), min_size=8),
)
def test_fields_of_many_lines_at_once_are_those_of_each_line(
    contents: list[bytes], fields: tuple[str, str], label: str, defaults: list[int]
) -> None:
    tuned = enrichment.Enricher(*fields, label)
    many = tuned.json_fields_many(contents, bytes(defaults[: len(contents)]))
    if many is None:
        return
    each = [tuned.json_fields(c, d) for c, d in zip(contents, defaults, strict=False)]
    assert list(zip(*many, strict=True)) == each


def test_access_log_lines_and_odd_ones_get_the_same_fields_at_once_as_one_by_one() -> None:
    access = [
        b'{"level":"info","executionId":"e-%d","method":"GET","url":"/a/%d","status":%d}'
        % (n, n, 200 + n)
        for n in range(5)
    ]
    odd = [
        b'{"level":"WaRnInG","method":"GET","url":"/b","status":true}',
        b'{"level":7,"executionId":3,"url":null,"status":-1}',
        b'{"level":["warn"],"executionId":""}',
        b'{"msg":"no fields at all"}',
        b'{"level":"bogus","method":{"a":1},"url":"/c","status":404}',
    ]
    escaped = [  # strings JSON cannot write as they are: orjson writes the attrs
        b'{"method":"GET","url":"/q?a=\\"b\\"","status":200}',
        b'{"method":"GET","url":"/back\\\\slash","status":200}',
        b'{"method":"GET","url":"/caf\xc3\xa9\\u0007","status":200}',
        b'{"method":"G\\tT","url":"/\x7f","status":0}',
    ]
    for contents in (
        access,
        access + odd,
        odd,
        odd[3:4] * 3,
        access[::-1] + odd[:2],
        *([line, *access] for line in escaped),
    ):
        for label in ("", "from-label"):
            tuned = enrichment.Enricher(execution_id=label)
            defaults = bytes([enrichment.INFO, enrichment.ERROR] * len(contents))[: len(contents)]
            many = tuned.json_fields_many(contents, defaults)
            assert many is not None
            each = [tuned.json_fields(c, d) for c, d in zip(contents, defaults, strict=True)]
            assert list(zip(*many, strict=True)) == each
